//! `${VAR}` interpolation and the `.env` file, on their own and through `load`.

use std::collections::HashMap;

use super::{one_agent, Fixture};
use crate::config::interpolate::{interpolate, InterpError};

fn expand(text: &str, vars: &[(&str, &str)]) -> Result<(String, Vec<String>), InterpError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let done = interpolate(text, &|name| vars.get(name).cloned())?;
    let unset = done.warnings.into_iter().map(|w| w.name).collect();
    Ok((done.text, unset))
}

fn text(text: &str, vars: &[(&str, &str)]) -> String {
    expand(text, vars).unwrap().0
}

fn error(text: &str, vars: &[(&str, &str)]) -> (usize, usize, String) {
    let err = expand(text, vars).unwrap_err();
    (err.line, err.column, err.message)
}

#[test]
fn compose_forms() {
    let vars = [("A", "a"), ("E", "")];
    assert_eq!(text("${A} $A ${A}b $A-x", &vars), "a a ab a-x");
    assert_eq!(text("${E:-d} ${E-d} ${U:-d} ${U-d}", &vars), "d  d d");
    assert_eq!(
        text("${A:+alt} ${E:+alt} ${E+alt} ${U+alt}", &vars),
        "alt  alt "
    );
    assert_eq!(text("${U:-${A}} ${U:-${U2:-deep}}", &vars), "a deep");
    assert_eq!(text("cost: $$5 and $${A}", &vars), "cost: $5 and ${A}");
    assert_eq!(text("${A:?ok} ${E?ok}", &vars), "a ");
}

#[test]
fn unset_variables_warn_once() {
    let (out, unset) = expand("x: ${U}\ny: $U\nz: ${V:-d} $W", &[]).unwrap();
    assert_eq!(out, "x: \ny: \nz: d ");
    assert_eq!(unset, ["U", "W"]);
}

#[test]
fn comments_are_left_alone() {
    let yaml =
        "# ${NOPE:?x}\n  # $\na: $A # $ ${B:?}\nb: \"x # $A\" # $\nc: 'it''s # $A'\nd: x#$A\n";
    assert_eq!(
        text(yaml, &[("A", "v")]),
        "# ${NOPE:?x}\n  # $\na: v # $ ${B:?}\nb: \"x # v\" # $\nc: 'it''s # v'\nd: x#v\n"
    );
}

#[test]
fn errors_point_at_the_dollar() {
    assert_eq!(
        error("a: 1\nb: ${X:?set X first}", &[]),
        (
            2,
            4,
            "required variable X is missing a value: set X first".into()
        )
    );
    assert_eq!(
        error("b: ${X?}", &[("Y", "")]),
        (1, 4, "required variable X is missing a value".into())
    );
    assert_eq!(
        error("b: ${X:?}", &[("X", "")]).2,
        "required variable X is missing a value"
    );
    assert_eq!(
        error("b: x ${OPEN", &[]),
        (
            1,
            6,
            "unterminated `${`: add the closing `}`, or write `$$` for a literal `$`".into()
        )
    );
    assert_eq!(
        error("b: ${1X}", &[]),
        (1, 4, "invalid variable name in `${1X}`".into())
    );
    assert_eq!(
        error("b: ${}", &[]),
        (1, 4, "invalid variable name in `${}`".into())
    );
    assert_eq!(
        error("b: ${A B}", &[]),
        (1, 4, "invalid variable reference `${A B}`: after the name write `}`, `:-`, `-`, `:?`, `?`, `:+` or `+`".into())
    );
    assert_eq!(
        error("b: costs $5", &[]),
        (
            1,
            10,
            "invalid `$`: use `${NAME}` or `$NAME`, or write `$$` for a literal `$`".into()
        )
    );
    assert_eq!(
        error("b: ${U:-x ${Y:?inner}}", &[]),
        (
            1,
            11,
            "required variable Y is missing a value: inner".into()
        )
    );
}

#[test]
fn load_reports_interpolation_errors_and_warnings() {
    let fixture = Fixture::new(&one_agent("    user: ${AGENT_USER:?set AGENT_USER}\n"));
    assert_eq!(
        fixture.err(),
        "claunch.yaml:4:11: required variable AGENT_USER is missing a value: set AGENT_USER"
    );
    let fixture = Fixture::new(&one_agent("    user: ${AGENT_USER}\n"));
    let loaded = fixture.ok();
    // As in compose, the blank makes `user:` null.
    assert_eq!(loaded.spec.agents[0].user, None);
    let warnings: Vec<String> = loaded
        .warnings
        .iter()
        .map(|w| super::strip(w, &fixture.dir))
        .collect();
    assert_eq!(
        warnings,
        ["claunch.yaml:4:11: the AGENT_USER variable is not set, defaulting to a blank string"]
    );
}

#[test]
fn positions_survive_substitution() {
    // The value is longer than the reference; the error must still point
    // at `replicas` as written in the file.
    let yaml = "agents:\n  a:\n    image: ${IMAGE}\n    user: ${U}\n    replicas: ${N}\n";
    let fixture = Fixture::new(yaml).with_env(&[
        ("IMAGE", "a-very-long-image-name:latest"),
        ("U", "u"),
        ("N", "many"),
    ]);
    assert_eq!(
        fixture.err(),
        "claunch.yaml:5:15: agents.a.replicas: invalid type: string \"many\", expected a whole number"
    );
    let yaml = "agents:\n  a: {image: ${IMAGE}, replica: 2}\n";
    let fixture = Fixture::new(yaml).with_env(&[("IMAGE", "a-very-long-image-name:latest")]);
    assert_eq!(
        fixture.err(),
        "claunch.yaml:2:24: agents.a.replica: unknown key `replica`\n  hint: did you mean `replicas`?"
    );
}

#[test]
fn dotenv_fills_in_after_the_process_env() {
    let yaml = "agents:\n  a:\n    image: ${IMAGE}\n    user: ${WHO}\n    env: [FROM_DOTENV]\n";
    let fixture = Fixture::new(yaml).with_env(&[("WHO", "process")]);
    fixture.write(
        ".env",
        "# settings\nexport IMAGE='img:1'\nWHO=dotenv\n\nFROM_DOTENV=\"yes # really\"\n",
    );
    let agent = fixture.ok().spec.agents[0].clone();
    assert_eq!(agent.image, "img:1");
    assert_eq!(agent.user.as_deref(), Some("process"));
    assert_eq!(agent.env["FROM_DOTENV"], "yes # really");
}

#[test]
fn malformed_dotenv_names_its_line() {
    let fixture = Fixture::new(&one_agent(""));
    fixture.write(".env", "A=1\nB\n");
    assert_eq!(
        fixture.err(),
        ".env:2: expected KEY=VALUE (the line is not shown: it may hold a secret)"
    );
}
