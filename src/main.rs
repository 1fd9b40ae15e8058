use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = claunch::cli::Cli::parse();
    match claunch::run(cli).await {
        Ok(code) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(1)
        }
    }
}
