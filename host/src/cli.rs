//! The `wasmgate` command line (`main.rs` only calls [`main`]: the binary crate then compiles
//! in seconds instead of re-instantiating the gateway's generic code).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "wasmgate",
    version,
    about = "An API gateway with WebAssembly policy plugins"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        /// The config file.
        #[arg(short, long, default_value = "gateway.toml")]
        config: PathBuf,
    },
    /// Validate a config file: exit 0 if it is good, or print every error and exit 1.
    Check {
        #[arg(short, long, default_value = "gateway.toml")]
        config: PathBuf,
    },
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match check(&config) {
            Ok(()) => {
                println!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Run { config } => match run(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wasmgate: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Everything a start would do short of binding: parse, validate, compile the plugins and run
/// their `init` with each route's config.
fn check(path: &std::path::Path) -> anyhow::Result<()> {
    let loaded = crate::config::load(path)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let host = crate::plugin::PluginHost::new(Default::default())?;
        crate::runtime::Runtime::build(loaded, None, 0, &host).await?;
        Ok(())
    })
}

fn run(path: PathBuf) -> anyhow::Result<()> {
    let loaded = crate::config::load(&path)?;
    let _log = crate::telemetry::init(&loaded.config.log);
    // Every proxied request holds two sockets; the default soft limit (often 1024) is too low.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open file limit"),
    }
    let workers = loaded
        .config
        .server
        .workers
        .map(crate::config::WorkerCount::get)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // One worker gets a single-threaded scheduler: no work stealing, no cross-thread wake-ups.
    let mut builder = if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    let rt = builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(crate::gateway::run(loaded))?;
    Ok(())
}
