//! From clap's types to one validated [`Invocation`]: every duration, size, target and
//! enum checked, and exec's own tips for a prompt that looks like an option.

use std::ffi::OsString;
use std::time::Duration;

use anyhow::bail;
use clap::{CommandFactory, Parser};

use super::{Cli, Command, CredsCommand, ImageCommand, OutputFormat, PsFormat, Shell};
use crate::commands::creds::export::ExportOptions;
use crate::commands::creds::{StatusOptions, SyncOptions};
use crate::commands::doctor::DoctorOptions;
use crate::commands::exec::{ExecOptions, OutputFormat as ClaudeFormat, Prompt};
use crate::commands::image::BuildOptions;
use crate::commands::logs::{LogsOptions, Since};
use crate::commands::ps::PsOptions;
use crate::commands::resolved::Show;
use crate::commands::run::RunOptions;
use crate::commands::up::UpOptions;
use crate::commands::version::Asked;
use crate::commands::{Global, Invocation, Verb};
use crate::config;

fn duration(flag: &str, value: &str) -> anyhow::Result<Duration> {
    config::parse_duration(value).map_err(|e| anyhow::anyhow!("--{flag} {value}: {e}"))
}

/// `4096`, `64KiB`, `200MiB`, `1GiB` (also `K`, `M`, `G`, `KB`…: powers of 1024).
fn size(flag: &str, value: &str) -> anyhow::Result<u64> {
    let t = value.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => anyhow::bail!("--{flag} {value}: not a size (e.g. 4096, 64KiB, 200MiB, 1GiB)"),
    };
    n.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| {
            anyhow::anyhow!("--{flag} {value}: not a size (e.g. 4096, 64KiB, 200MiB, 1GiB)")
        })
}

impl Cli {
    /// [`Parser::parse_from`], with exec's own tips for an argument that looks like an
    /// option: clap's (`use '-- ARG'`) would make it one of claude's options instead.
    pub fn parse_args<I, T>(args: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        Self::try_parse_from(&args).unwrap_or_else(|e| hyphen_prompt_tips(e, &args).exit())
    }

    /// The validated invocation: what to do, with every value parsed and checked.
    pub fn into_invocation(self) -> anyhow::Result<Invocation> {
        let g = self.global;
        let global = Global {
            file: g.file,
            project_name: g.project_name,
            host: g.host,
            parallel: usize::try_from(g.parallel).unwrap_or(8),
        };
        let command = match self.command {
            _ if self.version => {
                return Ok(Invocation {
                    global,
                    verb: Verb::Version(Asked::Flag),
                })
            }
            Some(command) => command,
            None => {
                bail!("no command given\n  hint: `claunch --help` lists them, e.g. `claunch up`")
            }
        };
        let verb = match command {
            Command::Up(a) => Verb::Up(
                UpOptions {
                    agents: a.agents,
                    scale: a.scale,
                    no_smoke: a.no_smoke,
                    force_recreate: a.force_recreate,
                    remove_orphans: a.remove_orphans,
                },
                a.json,
            ),
            Command::Exec(a) => {
                let positional = |p: &String| {
                    if p == "-" {
                        Prompt::Stdin
                    } else {
                        Prompt::Text(p.clone())
                    }
                };
                let (target, prompt) = match (a.all, a.prompt, a.args.as_slice()) {
                    (true, None, [prompt]) => (None, positional(prompt)),
                    (false, None, [target, prompt]) => (Some(target.clone()), positional(prompt)),
                    (true, Some(text), []) => (None, Prompt::Text(text)),
                    (false, Some(text), [target]) => (Some(target.clone()), Prompt::Text(text)),
                    (false, Some(_), []) => bail!("exec needs TARGET (or --all), e.g. claunch exec planner-1 --prompt \"--version\""),
                    (_, Some(_), _) => bail!("exec takes the prompt once: as PROMPT or with --prompt TEXT, e.g. claunch exec planner-1 --prompt \"--version\""),
                    (true, None, _) => bail!("exec --all takes only PROMPT, e.g. claunch exec --all \"Say hello\""),
                    (false, None, _) => bail!("exec needs TARGET and PROMPT, e.g. claunch exec planner-1 \"Say hello\" (or --all PROMPT)"),
                };
                let timeout = a
                    .timeout
                    .as_deref()
                    .map(|t| duration("timeout", t))
                    .transpose()?;
                Verb::Exec(ExecOptions {
                    target,
                    all: a.all,
                    prompt,
                    max_turns: a.max_turns,
                    output_format: match a.output_format {
                        OutputFormat::Text => ClaudeFormat::Text,
                        OutputFormat::Json => ClaudeFormat::Json,
                        OutputFormat::StreamJson => ClaudeFormat::StreamJson,
                    },
                    timeout,
                    extra: a.extra,
                    json: a.json,
                })
            }
            Command::Run(a) => Verb::Run(RunOptions {
                tasks: a.tasks,
                results: a.results,
                agents: a.agents,
                retries: a.retries,
                timeout: a
                    .timeout
                    .as_deref()
                    .map(|t| duration("timeout", t))
                    .transpose()?,
                max_turns: a.max_turns,
                collect_bounds: crate::engine::archive::Bounds {
                    bytes: size("collect-max-bytes", &a.collect_max_bytes)?,
                    entries: a.collect_max_entries,
                },
                up: a.up,
                json: a.json,
                metrics: a.metrics,
                claude_args: a.claude_args,
            }),
            Command::Image(ImageCommand::Build(a)) => Verb::ImageBuild(
                BuildOptions {
                    claude: a.claude,
                    base: a.base,
                    tag: a.tag,
                },
                a.json,
            ),
            Command::Creds(CredsCommand::Sync(a)) => Verb::CredsSync(
                SyncOptions {
                    // `--once` is the default, said for cron; the two conflict.
                    watch: a.watch && !a.once,
                    ahead: duration("ahead", &a.ahead)?,
                    interval: duration("interval", &a.interval)?,
                    metrics: a.metrics,
                },
                a.json,
            ),
            Command::Creds(CredsCommand::Push(a)) => Verb::CredsPush {
                target: a.target,
                json: a.json,
            },
            Command::Creds(CredsCommand::Status(a)) => Verb::CredsStatus(StatusOptions {
                json: a.json,
                warn: duration("warn", &a.warn)?,
                critical: duration("critical", &a.critical)?,
            }),
            Command::Creds(CredsCommand::Export(a)) => Verb::CredsExport(ExportOptions {
                to: a.to,
                id: a.id,
                name: a.name,
                vault: a.vault,
                region: a.region,
                profile: a.profile,
                project: a.project,
                from: a.from,
            }),
            Command::Doctor(a) => Verb::Doctor(DoctorOptions {
                target: a.target,
                smoke: a.smoke,
                json: a.json,
            }),
            Command::Ps(a) => Verb::Ps(PsOptions {
                all: a.all,
                quiet: a.quiet,
                json: a.json || a.format == Some(PsFormat::Json),
            }),
            Command::Logs(a) => Verb::Logs(LogsOptions {
                target: a.target,
                follow: a.follow,
                tail: a.tail,
                timestamps: a.timestamps,
                since: a
                    .since
                    .as_deref()
                    .map(|s| Since::parse(s).map_err(|e| anyhow::anyhow!("--since {s}: {e}")))
                    .transpose()?,
                json: a.json,
            }),
            Command::Stop(a) => Verb::Stop {
                targets: a.targets,
                json: a.json,
            },
            Command::Start(a) => Verb::Start {
                targets: a.targets,
                restart: false,
                json: a.json,
            },
            Command::Restart(a) => Verb::Start {
                targets: a.targets,
                restart: true,
                json: a.json,
            },
            Command::Pull(a) => Verb::Pull {
                agents: a.agents,
                json: a.json,
            },
            Command::Config(a) => Verb::Config(match (a.quiet, a.services) {
                (true, _) => Show::Nothing,
                (false, true) => Show::Agents,
                (false, false) => Show::Config,
            }),
            Command::Version(a) => Verb::Version(Asked::Command { json: a.json }),
            Command::Down(a) => Verb::Down {
                volumes: a.volumes,
                json: a.json,
            },
            Command::Init(a) => {
                let dir = match &global.file {
                    Some(f) => f
                        .parent()
                        .map(std::path::Path::to_path_buf)
                        .unwrap_or_default(),
                    None => std::env::current_dir()?,
                };
                Verb::Init {
                    dir,
                    force: a.force,
                }
            }
            Command::Completions { shell } => {
                let shell = match shell {
                    Shell::Bash => clap_complete::Shell::Bash,
                    Shell::Zsh => clap_complete::Shell::Zsh,
                    Shell::Fish => clap_complete::Shell::Fish,
                };
                let mut script = Vec::new();
                clap_complete::generate(shell, &mut Cli::command(), "claunch", &mut script);
                Verb::Print(script)
            }
        };
        Ok(Invocation { global, verb })
    }
}

/// For `claunch exec TARGET --version` and the like: how to send that text as the prompt
/// (`--prompt=TEXT`, or stdin) and how to give it to claude as an option (after `--`).
pub(super) fn hyphen_prompt_tips(mut e: clap::Error, args: &[OsString]) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let in_exec = matches!(e.get(ContextKind::Usage),
        Some(ContextValue::StyledStr(usage)) if usage.to_string().contains("claunch exec "));
    let Some(ContextValue::String(invalid)) = e.get(ContextKind::InvalidArg) else {
        return e;
    };
    if e.kind() != ErrorKind::UnknownArgument || !in_exec {
        return e;
    }
    // clap names `--model` for `--model=x`: the tip shows the word as it was typed.
    let word = args
        .iter()
        .filter_map(|a| a.to_str())
        .skip_while(|a| *a != "exec")
        .find(|a| a.starts_with(invalid.as_str()))
        .unwrap_or(invalid)
        .to_string();
    e.insert(
        ContextKind::Suggested,
        ContextValue::StyledStrs(vec![
            format!("to send '{word}' as the prompt, use '--prompt={word}' (or PROMPT '-' to read it from stdin)").into(),
            format!("to give '{word}' to claude as an option, put it at the end, after '--'").into(),
        ]),
    );
    e
}
