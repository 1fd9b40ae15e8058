//! claunch: launch and run fleets of headless Claude Code agents in Docker containers on a
//! Claude subscription (OAuth) login.
//!
//! `main` parses the command line into [`cli::Cli`] and calls [`run`]; everything else
//! lives in the library so tests can drive it.

pub mod cli;
pub mod commands;
pub mod config;
pub mod credentials;
pub mod engine;
pub mod fleet;
pub mod image;
pub mod interrupt;
pub mod plan;
pub mod report;
pub mod secret;
pub mod smoke;

use clap::CommandFactory;

use cli::{Cli, Command, OutputFormat};
use commands::Global;

/// Runs one parsed command line and returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let global = Global {
        file: cli.global.file,
        project_name: cli.global.project_name,
        host: cli.global.host,
    };
    match cli.command {
        Command::Up(a) => {
            let reporter = report::pick(a.json);
            let options = commands::up::UpOptions {
                agents: a.agents,
                scale: a.scale,
                no_smoke: a.no_smoke,
                parallel: a.parallel,
                force_recreate: a.force_recreate,
                remove_orphans: a.remove_orphans,
            };
            commands::up::run(&global, options, reporter).await
        }
        Command::Exec(a) => {
            let (target, prompt) = match (a.all, a.args.as_slice()) {
                (true, [prompt]) => (None, prompt.clone()),
                (false, [target, prompt]) => (Some(target.clone()), prompt.clone()),
                (true, _) => anyhow::bail!("exec --all takes only PROMPT, e.g. claunch exec --all \"Say hello\""),
                (false, _) => anyhow::bail!("exec needs TARGET and PROMPT, e.g. claunch exec planner-1 \"Say hello\" (or --all PROMPT)"),
            };
            let timeout = a
                .timeout
                .as_deref()
                .map(|t| {
                    config::parse_duration(t).map_err(|e| anyhow::anyhow!("--timeout {t}: {e}"))
                })
                .transpose()?;
            let output_format = match a.output_format {
                OutputFormat::Text => "text",
                OutputFormat::Json => "json",
                OutputFormat::StreamJson => "stream-json",
            };
            let options = commands::exec::ExecOptions {
                target,
                all: a.all,
                prompt,
                max_turns: a.max_turns,
                output_format: output_format.to_string(),
                timeout,
                extra: a.extra,
            };
            commands::exec::run(&global, options).await
        }
        Command::Image(cli::ImageCommand::Build(a)) => {
            let options = commands::image::BuildOptions {
                claude: a.claude,
                base: a.base,
                tag: a.tag,
            };
            commands::image::build(&global, options, report::pick(false)).await
        }
        Command::Creds(c) => {
            let duration = |flag: &str, v: &str| {
                config::parse_duration(v).map_err(|e| anyhow::anyhow!("--{flag} {v}: {e}"))
            };
            match c {
                cli::CredsCommand::Sync(a) => {
                    let options = commands::creds::SyncOptions {
                        watch: a.watch,
                        ahead: duration("ahead", &a.ahead)?,
                        interval: duration("interval", &a.interval)?,
                    };
                    commands::creds::sync(&global, options, report::pick(false)).await
                }
                cli::CredsCommand::Push { target } => {
                    commands::creds::push(&global, target.as_deref(), report::pick(false)).await
                }
                cli::CredsCommand::Status(a) => {
                    let options = commands::creds::StatusOptions {
                        json: a.json,
                        warn: duration("warn", &a.warn)?,
                        critical: duration("critical", &a.critical)?,
                    };
                    commands::creds::status(&global, options).await
                }
                cli::CredsCommand::Export {
                    to,
                    id,
                    name,
                    vault,
                    region,
                    profile,
                    project,
                    from,
                } => {
                    let options = commands::creds::export::ExportOptions {
                        to,
                        id,
                        name,
                        vault,
                        region,
                        profile,
                        project,
                        from,
                    };
                    commands::creds::export::run(options).await
                }
            }
        }
        Command::Doctor(a) => {
            let options = commands::doctor::DoctorOptions {
                target: a.target,
                smoke: a.smoke,
                json: a.json,
            };
            commands::doctor::run(&global, &options).await
        }
        Command::Ps(a) => commands::ps::run(&global, a.json).await,
        Command::Logs(a) => {
            commands::logs::run(&global, a.target.as_deref(), a.follow, a.tail).await
        }
        Command::Down(a) => commands::down::run(&global, a.volumes, report::pick(false)).await,
        Command::Init(a) => {
            let dir = match &global.file {
                Some(f) => f
                    .parent()
                    .map(std::path::Path::to_path_buf)
                    .unwrap_or_default(),
                None => std::env::current_dir()?,
            };
            commands::init::run(&dir, a.force)
        }
        Command::Completions { shell } => {
            let shell = match shell {
                cli::Shell::Bash => clap_complete::Shell::Bash,
                cli::Shell::Zsh => clap_complete::Shell::Zsh,
                cli::Shell::Fish => clap_complete::Shell::Fish,
            };
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "claunch",
                &mut std::io::stdout(),
            );
            Ok(0)
        }
    }
}
