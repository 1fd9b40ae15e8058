//! Each verb's options, as clap declares them.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

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
