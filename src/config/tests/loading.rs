//! Successful loads: the full example, defaults, the several spellings, paths and project names.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::{one_agent, Fixture};
use crate::config::{CredentialsSpec, FileSpec, SmokeSpec};

const FULL: &str = r#"project: research              # a comment
credentials:
  file: ~/.claude/.credentials.json
agents:
  planner:
    image: my-agent:latest
    replicas: 2
    user: agent
    command: ["python", "worker.py"]
    entrypoint: ["/bin/sh", "-c"]
    working_dir: /work
    env: {LOG_LEVEL: info}
    network: agents
    extra_hosts: ["api.internal:10.0.0.5"]
    volumes: ["data:/data"]
    files:
      - {source: ~/.claude/mcp.json, target: .claude/mcp.json, mode: "0600"}
    smoke:
      prompt: Say hello
      max_turns: 1
      timeout: 120s
  coder:
    image: coder:1
"#;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn loads_the_full_example() {
    let fixture = Fixture::new(FULL);
    let loaded = fixture.ok();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let spec = loaded.spec;
    assert_eq!(spec.file, fixture.file());
    assert_eq!(spec.project, "research");
    assert_eq!(
        spec.credentials,
        CredentialsSpec::File("/home/me/.claude/.credentials.json".into())
    );
    let names: Vec<&str> = spec.agents.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["planner", "coder"]);
    let planner = spec.agent("planner").unwrap();
    assert_eq!(planner.image, "my-agent:latest");
    assert_eq!(planner.replicas, 2);
    assert_eq!(planner.user.as_deref(), Some("agent"));
    assert_eq!(planner.command, Some(strings(&["python", "worker.py"])));
    assert_eq!(planner.entrypoint, Some(strings(&["/bin/sh", "-c"])));
    assert_eq!(planner.working_dir.as_deref(), Some("/work"));
    assert_eq!(
        planner.env,
        BTreeMap::from([("LOG_LEVEL".into(), "info".into())])
    );
    assert_eq!(planner.network.as_deref(), Some("agents"));
    assert_eq!(planner.extra_hosts, strings(&["api.internal:10.0.0.5"]));
    assert_eq!(planner.volumes, strings(&["data:/data"]));
    let file = FileSpec {
        source: "/home/me/.claude/mcp.json".into(),
        target: ".claude/mcp.json".into(),
        mode: 0o600,
    };
    assert_eq!(planner.files, [file]);
    assert_eq!(planner.smoke, Some(SmokeSpec::default()));
    assert!(spec.agent("nobody").is_none());
}

#[test]
fn fills_in_defaults() {
    let fixture = Fixture::new("agents:\n  solo:\n    image: img\n");
    let spec = fixture.ok().spec;
    assert_eq!(spec.project, "research");
    assert_eq!(
        spec.credentials,
        CredentialsSpec::File("/home/me/.claude/.credentials.json".into())
    );
    let solo = &spec.agents[0];
    assert_eq!(solo.replicas, 1);
    assert_eq!(
        (
            solo.user.clone(),
            solo.command.clone(),
            solo.network.clone()
        ),
        (None, None, None)
    );
    assert!(solo.env.is_empty() && solo.files.is_empty() && solo.volumes.is_empty());
    let smoke = solo.smoke.clone().unwrap();
    assert_eq!((smoke.prompt.as_str(), smoke.max_turns), ("Say hello", 1));
    assert_eq!(smoke.timeout, Duration::from_secs(120));
    let json = serde_json::to_value(solo).unwrap();
    assert_eq!(json["smoke"]["timeout"], 120);
    assert_eq!(json["replicas"], 1);
}

#[test]
fn default_credentials_follow_claude_config_dir() {
    let fixture = Fixture::new(&one_agent("")).with_env(&[("CLAUDE_CONFIG_DIR", "/cfg/claude")]);
    assert_eq!(
        fixture.ok().spec.credentials,
        CredentialsSpec::File("/cfg/claude/.credentials.json".into())
    );
}

#[test]
fn env_as_map_and_as_list() {
    let map = "    env:\n      S: text\n      N: 3\n      F: 1.50\n      B: true\n      HOSTVAR:\n      GONE: ~\n";
    let fixture = Fixture::new(&one_agent(map)).with_env(&[("HOSTVAR", "from host")]);
    let env = fixture.ok().spec.agents[0].env.clone();
    let expected = [
        ("S", "text"),
        ("N", "3"),
        ("F", "1.50"),
        ("B", "true"),
        ("HOSTVAR", "from host"),
    ];
    let expected: BTreeMap<String, String> = expected
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    assert_eq!(env, expected);

    let list =
        "    env:\n      - A=1\n      - B=x=y\n      - EMPTY=\n      - HOSTVAR\n      - UNSET\n";
    let fixture = Fixture::new(&one_agent(list)).with_env(&[("HOSTVAR", "h")]);
    let env = fixture.ok().spec.agents[0].env.clone();
    let expected = [("A", "1"), ("B", "x=y"), ("EMPTY", ""), ("HOSTVAR", "h")];
    let expected: BTreeMap<String, String> = expected
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    assert_eq!(env, expected);
}

#[test]
fn smoke_false_true_and_partial() {
    let off = Fixture::new(&one_agent("    smoke: false\n")).ok();
    assert_eq!(off.spec.agents[0].smoke, None);
    let on = Fixture::new(&one_agent("    smoke: true\n")).ok();
    assert_eq!(on.spec.agents[0].smoke, Some(SmokeSpec::default()));
    let partial = Fixture::new(&one_agent("    smoke: {max_turns: 3, timeout: 90}\n")).ok();
    let expected = SmokeSpec {
        max_turns: 3,
        timeout: Duration::from_secs(90),
        ..SmokeSpec::default()
    };
    assert_eq!(partial.spec.agents[0].smoke, Some(expected));
    let prompt = Fixture::new(&one_agent(
        "    smoke:\n      prompt: Ping\n      timeout: 1m30s\n",
    ))
    .ok();
    let smoke = prompt.spec.agents[0].smoke.clone().unwrap();
    assert_eq!(
        (smoke.prompt.as_str(), smoke.timeout),
        ("Ping", Duration::from_secs(90))
    );
}

#[test]
fn modes_in_every_spelling() {
    let files = "    files:\n      - {source: a, target: a, mode: \"0644\"}\n      - {source: b, target: b, mode: \"644\"}\n      - {source: c, target: c, mode: 0755}\n      - {source: d, target: d, mode: 0o700}\n      - {source: e, target: /abs/e}\n";
    let fixture = Fixture::new(&one_agent(files));
    let modes: Vec<u32> = fixture.ok().spec.agents[0]
        .files
        .iter()
        .map(|f| f.mode)
        .collect();
    assert_eq!(modes, [0o644, 0o644, 0o755, 0o700, 0o600]);
}

#[test]
fn paths_expand_home_and_anchor_at_the_config_dir() {
    let files = "    files:\n      - {source: ~/x.json, target: x}\n      - {source: ./rel/y.json, target: y}\n      - {source: /abs/z, target: z}\n      - {source: ../up, target: u}\n";
    let yaml = format!("credentials:\n  file: creds.json\n{}", one_agent(files));
    let fixture = Fixture::new(&yaml);
    let spec = fixture.ok().spec;
    assert_eq!(
        spec.credentials,
        CredentialsSpec::File(fixture.dir.join("creds.json"))
    );
    let sources: Vec<PathBuf> = spec.agents[0]
        .files
        .iter()
        .map(|f| f.source.clone())
        .collect();
    let expected = [
        PathBuf::from("/home/me/x.json"),
        fixture.dir.join("rel/y.json"),
        PathBuf::from("/abs/z"),
        fixture.dir.join("../up"),
    ];
    assert_eq!(sources, expected);
}

#[test]
fn project_precedence() {
    let yaml = format!("project: FromFile\n{}", one_agent(""));
    let mut fixture = Fixture::new(&yaml).with_env(&[("CLAUNCH_PROJECT", "from-env")]);
    fixture.project_flag = Some("From.Flag".into());
    assert_eq!(fixture.ok().spec.project, "fromflag");
    fixture.project_flag = None;
    assert_eq!(fixture.ok().spec.project, "from-env");
    let fixture = fixture.without_env("CLAUNCH_PROJECT");
    assert_eq!(fixture.ok().spec.project, "fromfile");
    let fixture = Fixture::in_dir("My Dir_2", &one_agent(""));
    assert_eq!(fixture.ok().spec.project, "mydir_2");
}

#[test]
fn claunch_project_may_come_from_dotenv() {
    let fixture = Fixture::new(&one_agent(""));
    fixture.write(".env", "CLAUNCH_PROJECT=dotenv-name\n");
    assert_eq!(fixture.ok().spec.project, "dotenv-name");
}
