//! The command line: clap's types, and their conversion into one validated
//! [`Invocation`] (durations parsed, targets and enums checked). No clap type goes further.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::{ArgAction, Args, CommandFactory, Parser, Subcommand, ValueEnum};

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

#[derive(Debug, Parser)]
#[command(
    name = "claunch",
    version,
    // Its own `-V/--version`: the engine's version too, which clap's cannot print.
    disable_version_flag = true,
    arg_required_else_help = true,
    override_usage = "claunch [OPTIONS] <COMMAND>",
    about = "Launch and run fleets of headless Claude Code agents in Docker on a Claude subscription login",
    long_about = "Launch and run fleets of headless Claude Code agents in Docker on a Claude subscription login.\n\n\
claunch reads claunch.yaml, creates the agents' containers through the Docker Engine API, \
puts your OAuth credentials into each one as a tar stream (never a bind mount, an env var \
or an argument), starts them and smoke-tests each with a real `claude -p`.",
    after_help = "Examples:\n  claunch init\n  claunch up\n  claunch exec planner-1 \"Say hello\"\n  claunch ps\n  claunch down"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Print version: claunch's, the engine's and the API version they speak
    #[arg(short = 'V', long, action = ArgAction::SetTrue)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The config file [default: ./claunch.yaml]
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The project name [default: `project:` in the file, else the directory's name]
    #[arg(
        short = 'p',
        long = "project-name",
        value_name = "NAME",
        env = "CLAUNCH_PROJECT"
    )]
    pub project_name: Option<String>,
    /// The Docker engine, e.g. `unix:///var/run/docker.sock` or `tcp://host:2376` [default: `$DOCKER_HOST`]
    #[arg(short = 'H', long = "host", value_name = "HOST")]
    pub host: Option<String>,
    /// How many containers to work on at once, in every command that fans out
    #[arg(long, global = true, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub parallel: u32,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, deliver credentials to, start and smoke-test the fleet
    #[command(
        after_help = "Examples:\n  claunch up\n  claunch up planner --scale planner=4\n  claunch up --no-smoke --json"
    )]
    Up(UpArgs),
    /// Run a prompt with claude in one agent or a whole fleet, streaming the answer
    #[command(
        after_help = "Examples:\n  claunch exec planner-1 \"Say hello\"\n  claunch exec planner \"Summarize TODO.md\" --output-format stream-json\n  echo \"Say hello\" | claunch exec --all -\n  claunch exec planner-1 --prompt \"--help me read this log\"\n  claunch exec planner-1 \"Fix the tests\" -- --model sonnet\n\n\
A prompt that begins with `-` is read as an option when given as PROMPT: pass it with --prompt TEXT \
(or --prompt=TEXT), or on stdin with PROMPT `-`. claude gets it as text, never as one of its options."
    )]
    Exec(ExecArgs),
    /// Run a queue of tasks across the fleet: results collected, resumable
    #[command(
        after_help = "Tasks: a JSON Lines file, one object per line; id and prompt are required:\n  {\"id\": \"t1\", \"prompt\": \"Summarize README.md\"}\n  {\"id\": \"t2\", \"prompt\": \"Fix the tests\", \"agent\": \"coder\", \"max_turns\": 5, \"timeout\": \"10m\",\n   \"args\": [\"--model\", \"sonnet\"], \"workdir\": \"/work\",\n   \"files\": [{\"source\": \"src\", \"target\": \"/work/src\"}], \"collect\": [\"/work/out\"]}\n\nExamples:\n  claunch run tasks.jsonl\n  claunch run tasks.jsonl --agent coder --retries 3 --timeout 10m --json\n  claunch run tasks.jsonl --up -- --permission-mode acceptEdits\n  generate-tasks | claunch run - --results out.jsonl"
    )]
    Run(RunArgs),
    /// List the project's containers with their state and credentials expiry
    #[command(after_help = "Examples:\n  claunch ps\n  claunch ps --json")]
    Ps(PsArgs),
    /// Show the agents' logs, prefixed by container
    #[command(
        after_help = "Examples:\n  claunch logs\n  claunch logs planner -f --tail 20\n  claunch logs planner-1 -t --since 10m"
    )]
    Logs(LogsArgs),
    /// Stop containers, keeping them: `claunch start` starts them again
    #[command(after_help = "Examples:\n  claunch stop\n  claunch stop planner coder-2")]
    Stop(TargetsArgs),
    /// Start stopped containers again, each given the current login first
    #[command(
        after_help = "A container stopped for a while may hold an expired access token: each gets the\nlogin in force before its command starts (a rotating login's leader the whole file,\nfollowers the access token), as `claunch up` does.\n\nExamples:\n  claunch start\n  claunch start planner-1"
    )]
    Start(TargetsArgs),
    /// Stop and start containers again, each given the current login before it starts
    #[command(
        after_help = "Stopped ones are started too, as in compose.\n\nExamples:\n  claunch restart\n  claunch restart planner --json"
    )]
    Restart(TargetsArgs),
    /// Stop and remove the project's containers and the network claunch made
    #[command(after_help = "Examples:\n  claunch down\n  claunch down --volumes")]
    Down(DownArgs),
    /// Pull the agents' images from their registries
    #[command(
        after_help = "No registry? `claunch image build` makes an agent image on the engine itself.\n\nExamples:\n  claunch pull\n  claunch pull planner"
    )]
    Pull(PullArgs),
    /// Print the config as claunch reads it: interpolated, defaults filled in, secrets redacted
    #[command(
        after_help = "Secrets are shown as <redacted>: `oauth_token`, `api_key`, the value of each env variable\nwhose name says secret (…TOKEN, …KEY, …SECRET, …PASSWORD…), and anything shaped like a\nClaude token. `$` is written `$$`, so that the output loads again as a claunch.yaml.\n\nExamples:\n  claunch config\n  claunch config --quiet && claunch up\n  claunch config --services"
    )]
    Config(ConfigArgs),
    /// Write a commented claunch.yaml and keep credentials out of git
    #[command(after_help = "Examples:\n  claunch init\n  claunch init --force")]
    Init(InitArgs),
    /// Keep the fleet's login alive: sync refreshed tokens back, push, check expiry
    #[command(subcommand)]
    Creds(CredsCommand),
    /// Check the login, the engine and each container, and say how to fix what is wrong
    #[command(
        after_help = "Examples:\n  claunch doctor\n  claunch doctor planner-1 --smoke\n  claunch doctor --json"
    )]
    Doctor(DoctorArgs),
    /// Build agent images with the real Claude Code CLI in them
    #[command(subcommand)]
    Image(ImageCommand),
    /// Print claunch's version, the engine's and the API version they speak
    #[command(
        after_help = "Exits 1 when the engine cannot be reached (`claunch --version` still exits 0).\n\nExamples:\n  claunch version\n  claunch version --json"
    )]
    Version(VersionArgs),
    /// Print shell completions
    #[command(
        after_help = "Examples:\n  claunch completions bash > /etc/bash_completion.d/claunch\n  claunch completions zsh > \"${fpath[1]}/_claunch\""
    )]
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Only these agents [default: all]
    pub agents: Vec<String>,
    /// Accepted for docker compose habits; changes nothing: `claunch up` always leaves the
    /// fleet running in the background and returns
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Run N replicas of AGENT, overriding `replicas:` (repeatable)
    #[arg(long, value_name = "AGENT=N")]
    pub scale: Vec<String>,
    /// Skip the smoke tests
    #[arg(long)]
    pub no_smoke: bool,
    /// Recreate containers even if their config is unchanged
    #[arg(long)]
    pub force_recreate: bool,
    /// Remove containers of agents no longer in the config
    #[arg(long)]
    pub remove_orphans: bool,
    /// One JSON object per line instead of progress
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
    StreamJson,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// One JSON object per line: each line of output with its container, then each exit code
    #[arg(long)]
    pub json: bool,
    /// TARGET PROMPT: a container name, <agent>-<n> or an agent name, then the prompt (`-` reads stdin); with --all, only PROMPT
    #[arg(required_unless_present = "prompt", num_args = 1..=2, value_names = ["TARGET", "PROMPT"])]
    pub args: Vec<String>,
    /// The prompt, taken as text whatever it begins with (`--prompt --version`, `--prompt=-h`), instead of PROMPT
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub prompt: Option<String>,
    /// Every container of the project
    #[arg(long)]
    pub all: bool,
    /// claude's --max-turns
    #[arg(long, value_name = "N")]
    pub max_turns: Option<u32>,
    /// claude's --output-format (stream-json adds --verbose, as claude requires)
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output_format: OutputFormat,
    /// Give up after this long, e.g. 90s or 10m
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// More arguments for claude, after `--`
    #[arg(last = true, value_name = "CLAUDE_ARGS")]
    pub extra: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The tasks: a JSON Lines file, `-` for stdin
    #[arg(value_name = "TASKS")]
    pub tasks: PathBuf,
    /// Where each finished task's line goes [default: TASKS with .results.jsonl for its extension]
    #[arg(long, value_name = "FILE")]
    pub results: Option<PathBuf>,
    /// Only this agent's containers take tasks (repeatable) [default: every running container]
    #[arg(long = "agent", value_name = "AGENT")]
    pub agents: Vec<String>,
    /// Tries again after a passing failure (API 5xx or 529, connection reset, engine error, timeout)
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub retries: u32,
    /// Give up a task after this long, e.g. 90s or 10m (a task's own `timeout` wins)
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// claude's --max-turns for every task (a task's own `max_turns` wins)
    #[arg(long, value_name = "N")]
    pub max_turns: Option<u32>,
    /// At most this much file content from one task's `collect`, e.g. 1GiB, 200MiB, 4096
    #[arg(long, default_value = "1GiB", value_name = "SIZE")]
    pub collect_max_bytes: String,
    /// At most this many entries (files, directories, anything refused) from one task's `collect`
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub collect_max_entries: u64,
    /// Run `claunch up` first
    #[arg(long)]
    pub up: bool,
    /// One JSON object per line: task started/finished/retried, login paused/resumed, summary
    #[arg(long)]
    pub json: bool,
    /// Serve Prometheus metrics (GET /metrics) on ADDR while the run lasts; a port alone means 127.0.0.1
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// More arguments for claude in every task, after `--`
    #[arg(last = true, value_name = "CLAUDE_ARGS")]
    pub claude_args: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum CredsCommand {
    /// Take the newest login from the leader, write it back to its source, update every container
    #[command(
        after_help = "Examples:\n  claunch creds sync            # once, now\n  claunch creds sync --watch    # keep the fleet logged in until interrupted\n  */10 * * * * cd /srv/agents && claunch creds sync --once   # from cron"
    )]
    Sync(SyncArgs),
    /// Deliver the current login to running containers now, without restarting them
    #[command(after_help = "Examples:\n  claunch creds push\n  claunch creds push planner")]
    Push(PushArgs),
    /// Expiry, holder role and scopes of the source and of each container (exit 0 ok, 1 warning, 2 critical)
    #[command(
        after_help = "Examples:\n  claunch creds status\n  claunch creds status --json --warn 2h --critical 30m"
    )]
    Status(StatusArgs),
    /// Put the host's login into a secrets manager (creating the secret), or print it base64-encoded for an env var
    #[command(
        after_help = "Examples:\n  claunch creds export --to aws_secret --id claude-oauth-credentials --region us-east-1\n  claunch creds export --to gcp_secret --name claude-oauth-credentials --project my-project\n  claunch creds export --to azure_secret --vault my-vault --name claude-oauth-credentials\n  export CLAUDE_CREDENTIALS=\"$(claunch creds export --to env)\""
    )]
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// A container name, <agent>-<n> or an agent name [default: all]
    pub target: Option<String>,
    /// One JSON object per line instead of progress
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Where the login goes (`env` prints it on stdout, base64-encoded)
    #[arg(long, value_name = "KIND", value_parser = ["aws_secret", "gcp_secret", "azure_secret", "env"])]
    pub to: String,
    /// For `aws_secret`: the secret's name or ARN
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// For `gcp_secret`, `azure_secret`: the secret's name; for `env`: the variable the hint names
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// For `azure_secret`: the Key Vault's name
    #[arg(long, value_name = "VAULT")]
    pub vault: Option<String>,
    /// For `aws_secret`: the region [default: the AWS CLI's]
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// For `aws_secret`: the AWS CLI profile [default: the AWS CLI's]
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<String>,
    /// For `gcp_secret`: the project [default: gcloud's]
    #[arg(long, value_name = "PROJECT")]
    pub project: Option<String>,
    /// The credentials file to export [default: ~/.claude/.credentials.json]
    #[arg(long, value_name = "PATH")]
    pub from: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Keep syncing in the foreground, acting ahead of each expiry, until interrupted
    #[arg(long, conflicts_with = "once")]
    pub watch: bool,
    /// Sync once and exit (the default; for cron)
    #[arg(long)]
    pub once: bool,
    /// One JSON object per line instead of progress
    #[arg(long)]
    pub json: bool,
    /// With --watch: how long before expiry to make sure a refresh happened
    #[arg(long, default_value = "15m", value_name = "DURATION")]
    pub ahead: String,
    /// With --watch: how often to look at the containers
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub interval: String,
    /// With --watch: serve Prometheus metrics (GET /metrics) on ADDR; a port alone means 127.0.0.1
    #[arg(long, value_name = "ADDR", requires = "watch")]
    pub metrics: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// One JSON object per line: the source, then each container
    #[arg(long)]
    pub json: bool,
    /// Warn when a token nobody can refresh has less than this left
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub warn: String,
    /// Critical when a token nobody can refresh has less than this left
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub critical: String,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Only this container, <agent>-<n> or agent [default: all]
    pub target: Option<String>,
    /// Also run a live smoke test (one real request per container)
    #[arg(long)]
    pub smoke: bool,
    /// One JSON object per check, per line
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build an image holding `claude`, from scratch or on top of one of yours (no registry, no Dockerfile)
    #[command(
        after_help = "Examples:\n  claunch image build\n  claunch image build --claude ~/.local/bin/claude --tag agents/claude:dev\n  claunch image build --base my-worker:latest"
    )]
    Build(ImageBuildArgs),
}

#[derive(Debug, Args)]
pub struct ImageBuildArgs {
    /// The claude binary to put in the image [default: `claude` on PATH]
    #[arg(long, value_name = "PATH")]
    pub claude: Option<PathBuf>,
    /// Add claude on top of this image (already on the engine) instead of a minimal one
    #[arg(long, value_name = "IMAGE")]
    pub base: Option<String>,
    /// The image's tag [default: one carrying claude's version]
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
    /// One JSON object per line instead of progress
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Stopped containers too [default: only those running]
    #[arg(short, long)]
    pub all: bool,
    /// Only the containers' ids, one a line
    #[arg(short, long, conflicts_with_all = ["json", "format"])]
    pub quiet: bool,
    /// A table, or one JSON object per container per line (as --json)
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<PsFormat>,
    /// One JSON object per container, per line
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum PsFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct TargetsArgs {
    /// Container names, <agent>-<n> or agent names [default: every container of the project]
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,
    /// One JSON object per line instead of progress
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Only these agents' images [default: all]
    pub agents: Vec<String>,
    /// One JSON object per line instead of progress
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print nothing: only check the config (the exit code says whether it is valid)
    #[arg(short, long, conflicts_with = "services")]
    pub quiet: bool,
    /// Only the agents' names, one a line (compose's services)
    #[arg(long)]
    pub services: bool,
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// One JSON object: claunch's version and the engine's (or why it is out of reach)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// A container name, <agent>-<n> or an agent name [default: all]
    pub target: Option<String>,
    /// Keep following
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines of each
    #[arg(long, value_name = "N")]
    pub tail: Option<u64>,
    /// Each line with the time the engine got it (RFC 3339)
    #[arg(short, long)]
    pub timestamps: bool,
    /// Only lines since then: a duration back from now (10m, 1h30m) or an RFC 3339 time
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// One JSON object per line of output, with its container and stream
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Also remove the named volumes claunch created
    #[arg(short, long)]
    pub volumes: bool,
    /// One JSON object per line instead of progress
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Overwrite an existing claunch.yaml
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

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
fn hyphen_prompt_tips(mut e: clap::Error, args: &[OsString]) -> clap::Error {
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;
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
}
