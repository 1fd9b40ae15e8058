use std::process::ExitCode;

fn main() -> ExitCode {
    let invocation = match claunch::cli::Cli::parse_args(std::env::args_os()).into_invocation() {
        Ok(invocation) => invocation,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::from(1);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let status = runtime.block_on(async {
        tokio::select! {
            status = claunch::run(invocation) => status,
            // A second Ctrl-C: stop waiting for anything.
            () = claunch::interrupt::forced() => Ok(claunch::ExitStatus::Interrupted),
        }
    });
    // Do not wait for blocking work (a lock wait, a child process) after the answer is in.
    runtime.shutdown_background();
    match status {
        Ok(status) => ExitCode::from(status.code()),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
