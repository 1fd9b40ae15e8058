//! The command line: clap's types, and their conversion into one validated
//! [`Invocation`] (durations parsed, targets and enums checked). No clap type goes further.
//!
//! `mod.rs` holds the top level (global options, the verbs), `args` each verb's options,
//! `convert` their checked conversion into an [`Invocation`].

mod args;
mod convert;
#[cfg(test)]
mod tests;

pub use args::*;

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

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
