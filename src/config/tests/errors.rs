//! Every class of config error, asserted on its exact rendered text.

use super::{one_agent, strip, Fixture};
use crate::config::{load, ConfigError, LoadOptions};

fn err_of(yaml: &str) -> String {
    Fixture::new(yaml).err()
}

#[test]
fn unknown_key_suggests_the_closest() {
    let yaml = "agents:\n  planner:\n    image: x\n    replica: 2\n";
    assert_eq!(
        err_of(yaml),
        "claunch.yaml:4:5: agents.planner.replica: unknown key `replica`\n  hint: did you mean `replicas`?"
    );
    let yaml = one_agent("    files:\n      - {source: a, target: b, mod: \"0600\"}\n");
    assert_eq!(
        err_of(&yaml),
        "claunch.yaml:5:32: agents.a.files[0].mod: unknown key `mod`\n  hint: did you mean `mode`?"
    );
    let yaml = one_agent("    smoke: {promt: hi}\n");
    assert_eq!(
        err_of(&yaml),
        "claunch.yaml:4:13: agents.a.smoke.promt: unknown key `promt`\n  hint: did you mean `prompt`?"
    );
}

#[test]
fn unknown_key_far_from_any_lists_them() {
    let yaml = format!("colour: red\n{}", one_agent(""));
    assert_eq!(
        err_of(&yaml),
        "claunch.yaml:1:1: colour: unknown key `colour`\n  hint: valid keys are `project`, `credentials`, `onboarding`, `agents`"
    );
    let yaml = format!("credentials:\n  path: x\n{}", one_agent(""));
    assert_eq!(
        err_of(&yaml),
        "claunch.yaml:2:3: credentials.path: unknown key `path`\n  hint: valid keys are `file`, `env`, `command`, `write_command`, `aws_secret`, `gcp_secret`, `azure_secret`, `oauth_token`, `api_key`, `timeout`"
    );
}

#[test]
fn wrong_types() {
    let yaml = "project: p\ncredentials:\n  file: /c\nagents:\n  planner:\n    image: x\n    replicas: two\n";
    assert_eq!(
        err_of(yaml),
        "claunch.yaml:7:15: agents.planner.replicas: invalid type: string \"two\", expected a whole number"
    );
    assert_eq!(
        err_of(&one_agent("    volumes: [a, [b]]\n")),
        "claunch.yaml:4:18: agents.a.volumes[1]: invalid type: sequence, expected a string"
    );
    assert_eq!(
        err_of(&one_agent("    smoke: maybe\n")),
        "claunch.yaml:4:12: agents.a.smoke: invalid type: string \"maybe\", expected `true`, `false` or a map with prompt, max_turns and timeout"
    );
    assert_eq!(
        err_of(&one_agent("    env: {A: [1]}\n")),
        "claunch.yaml:4:14: agents.a.env.A: invalid type: sequence, expected a string, number or boolean"
    );
}

#[test]
fn command_as_a_string_hints_the_list_form() {
    assert_eq!(
        err_of(&one_agent("    command: python worker.py\n")),
        "claunch.yaml:4:14: agents.a.command: invalid type: string \"python worker.py\", expected a list of strings\n  hint: write it as a list: [\"python\", \"worker.py\"]"
    );
}

#[test]
fn missing_image_points_at_the_agent() {
    assert_eq!(
        err_of("agents:\n  planner:\n    replicas: 2\n"),
        "claunch.yaml:2:3: agents.planner: missing required key `image`"
    );
}

#[test]
fn bad_values() {
    let cases = [
        ("    smoke: {max_turns: 0}\n", "claunch.yaml:4: agents.a.smoke.max_turns: max_turns must be at least 1"),
        ("    smoke: {timeout: 0s}\n", "claunch.yaml:4: agents.a.smoke.timeout: timeout must be more than 0"),
        ("    smoke: {timeout: soon}\n", "claunch.yaml:4:22: agents.a.smoke.timeout: invalid duration \"soon\": write it like `120s`, `2m`, `1h30m`, `500ms` or a number of seconds"),
        ("    files: [{source: s, target: t, mode: \"0999\"}]\n", "claunch.yaml:4:42: agents.a.files[0].mode: invalid mode \"0999\": expected octal permissions like \"0644\""),
        ("    files: [{source: s, target: t, mode: 17777}]\n", "claunch.yaml:4:42: agents.a.files[0].mode: invalid mode \"17777\": the largest mode is 07777"),
        ("    files: [{source: s, target: ../x}]\n", "claunch.yaml:4: agents.a.files[0].target: target \"../x\" must not contain `..`\n  hint: give a path under the agent user's HOME, or an absolute one"),
        ("    files: [{source: s, target: \"\"}]\n", "claunch.yaml:4: agents.a.files[0].target: target must not be empty"),
        ("    env: {\"A=B\": 1}\n", "claunch.yaml:4: agents.a.env.A=B: variable name `A=B` contains `=`"),
        ("    env: [X=1, =2]\n", "claunch.yaml:4: agents.a.env[1]: empty variable name"),
    ];
    for (body, expected) in cases {
        assert_eq!(err_of(&one_agent(body)), expected, "for {body:?}");
    }
    assert_eq!(
        err_of("agents:\n  a:\n    image: \" \"\n"),
        "claunch.yaml:3: agents.a.image: image must not be empty"
    );
}

#[test]
fn agent_names_and_duplicates() {
    assert_eq!(
        err_of("agents:\n  bad name!:\n    image: x\n"),
        "claunch.yaml:2: agents.bad name!: invalid agent name `bad name!`\n  hint: use letters, digits, `_`, `.` and `-`, starting with a letter or digit"
    );
    assert_eq!(
        err_of("agents:\n  a:\n    image: x\n  b: {image: y}\n  a:\n    image: z\n"),
        "claunch.yaml:5: agents.a: agent `a` is defined more than once"
    );
    assert_eq!(
        err_of(&one_agent("    image: again\n")),
        "claunch.yaml:4:5: agents.a.image: duplicate key `image`"
    );
}

#[test]
fn no_agents() {
    assert_eq!(
        err_of("project: x\nagents: {}\n"),
        "claunch.yaml:2: agents: at least one agent is required\n  hint: add one, e.g. `agents: {worker: {image: my-agent:latest}}`"
    );
    assert_eq!(
        err_of("# nothing yet\n"),
        "claunch.yaml: agents: at least one agent is required\n  hint: add one, e.g. `agents: {worker: {image: my-agent:latest}}`"
    );
}

#[test]
fn shapes_use_user_words() {
    assert_eq!(
        err_of("- a\n"),
        "claunch.yaml:1:1: invalid type: sequence, expected a map"
    );
    assert_eq!(
        err_of(&one_agent("    files: [{source: s}]\n")),
        "claunch.yaml:4:13: agents.a.files[0]: missing required key `target`"
    );
    assert_eq!(
        err_of("agents: ~\n"),
        "claunch.yaml:1: agents: at least one agent is required\n  hint: add one, e.g. `agents: {worker: {image: my-agent:latest}}`"
    );
}

#[test]
fn yaml_syntax() {
    assert_eq!(
        err_of("agents:\n  a:\n    volumes: [x\n"),
        "claunch.yaml:4:1: agents.a.volumes: did not find expected ',' or ']', while parsing a flow sequence at line 3 column 14"
    );
}

#[test]
fn credentials_need_one_source() {
    let yaml = format!("credentials: {{}}\n{}", one_agent(""));
    assert_eq!(
        err_of(&yaml),
        "claunch.yaml:1: credentials: no credentials source given\n  hint: give one of `file`, `env`, `command`, `aws_secret`, `gcp_secret`, `azure_secret`, `oauth_token`, `api_key`, or remove `credentials:` to use ~/.claude/.credentials.json"
    );
    let yaml = format!("credentials:\n  file: ~/c.json\n{}", one_agent(""));
    assert_eq!(
        Fixture::new(&yaml).without_env("HOME").err(),
        "claunch.yaml:2: credentials.file: HOME is not set, so `~` cannot be expanded\n  hint: write the full path"
    );
    assert_eq!(
        Fixture::new(&one_agent("")).without_env("HOME").err(),
        "claunch.yaml: credentials: cannot find the default credentials file: neither CLAUDE_CONFIG_DIR nor HOME is set\n  hint: set `credentials.file` in the config"
    );
}

#[test]
fn empty_project_names() {
    assert_eq!(
        Fixture::in_dir("___", &one_agent("")).err(),
        "claunch.yaml: project: the directory name \"___\" gives an empty project name\n  hint: set `project:` in the file or pass -p NAME"
    );
    let yaml = format!("project: \"!!!\"\n{}", one_agent(""));
    assert_eq!(
        err_of(&yaml),
        "claunch.yaml:1: project: project name \"!!!\" in the file has no letter or digit to keep\n  hint: use lowercase letters, digits, `_` and `-`, starting with a letter or digit"
    );
}

#[test]
fn unreadable_files() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = LoadOptions {
        file: Some(tmp.path().join("nope.yaml")),
        project_name: None,
    };
    let err = load(&opts, &|_| None).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    assert!(
        strip(&err.to_string(), tmp.path()).starts_with("nope.yaml: cannot read: "),
        "{err}"
    );
}
