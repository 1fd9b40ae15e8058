//! The command line's parsing and checks, without running anything.

use clap::CommandFactory;

use std::ffi::OsString;

use super::convert::hyphen_prompt_tips;
use super::*;
use crate::commands::exec::{ExecOptions, Prompt};
use crate::commands::Verb;

fn exec(args: &[&str]) -> anyhow::Result<ExecOptions> {
    let command_line = ["claunch", "exec"].iter().chain(args);
    match Cli::try_parse_from(command_line)?.into_invocation()?.verb {
        Verb::Exec(o) => Ok(o),
        _ => unreachable!(),
    }
}

#[test]
fn hostile_prompts_reach_exec_as_text_through_prompt_or_stdin() {
    for hostile in [
        "--version",
        "-h",
        "--dangerously-skip-permissions",
        "--model=x",
        "-",
        "--all",
    ] {
        for args in [
            vec!["t", "--prompt", hostile],
            vec!["t", &format!("--prompt={hostile}")],
            vec!["--prompt", hostile, "t", "--max-turns", "1"],
        ] {
            let o = exec(&args).unwrap();
            assert_eq!(o.target.as_deref(), Some("t"), "{args:?}");
            assert_eq!(o.prompt, Prompt::Text(hostile.into()), "{args:?}");
        }
        let o = exec(&["--all", "--prompt", hostile]).unwrap();
        assert_eq!((o.target, o.prompt), (None, Prompt::Text(hostile.into())));
    }
    assert_eq!(exec(&["t", "-"]).unwrap().prompt, Prompt::Stdin);
    assert_eq!(exec(&["--all", "-"]).unwrap().prompt, Prompt::Stdin);
    let o = exec(&["t", "Say hello", "--max-turns", "2", "--", "--model", "x"]).unwrap();
    assert_eq!(o.prompt, Prompt::Text("Say hello".into()));
    assert_eq!(
        (o.max_turns, o.extra),
        (Some(2), vec!["--model".into(), "x".into()])
    );
}

#[test]
fn exec_takes_its_prompt_once_and_needs_a_target() {
    let err = |args: &[&str]| exec(args).unwrap_err().to_string();
    assert!(err(&["t", "hi", "--prompt", "x"]).contains("the prompt once"));
    assert!(err(&["--all", "hi", "--prompt", "x"]).contains("the prompt once"));
    assert!(err(&["--prompt", "x"]).contains("needs TARGET (or --all)"));
    assert!(err(&["t"]).contains("needs TARGET and PROMPT"));
}

#[test]
fn a_bare_hyphen_prompt_is_refused_with_tips_that_do_not_send_it_to_claude_as_an_option() {
    for (word, named) in [
        (
            "--dangerously-skip-permissions",
            "--dangerously-skip-permissions",
        ),
        ("--model=x", "--model"),
        ("--version", "--version"),
    ] {
        let args: Vec<OsString> = ["claunch", "exec", "t", word].map(OsString::from).into();
        let e = Cli::try_parse_from(&args).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument, "{word}");
        let shown = hyphen_prompt_tips(e, &args).to_string();
        assert!(
            shown.contains(&format!("unexpected argument '{named}'")),
            "{shown}"
        );
        assert!(shown.contains(&format!("use '--prompt={word}'")), "{shown}");
        assert!(shown.contains("after '--'"), "{shown}");
        assert!(
            !shown.contains(&format!("use '-- {named}'")),
            "clap's own tip: {shown}"
        );
    }
    // Elsewhere clap's errors stay as they are.
    let args: Vec<OsString> = ["claunch", "ps", "--nope"].map(OsString::from).into();
    let e = Cli::try_parse_from(&args).unwrap_err();
    assert!(!hyphen_prompt_tips(e, &args)
        .to_string()
        .contains("--prompt"));
}

#[test]
fn the_cli_is_well_formed() {
    super::Cli::command().debug_assert();
}
