//! The `wasmgate` command line (`main.rs` only calls [`main`]: the binary crate then compiles
//! in seconds instead of re-instantiating the gateway's generic code).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

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
    /// Print the JSON Schema of gateway.toml (for editors: Even Better TOML, taplo).
    Schema,
    /// Tools for plugin authors.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Run one plugin on a sample request and print what it changed: no gateway, no upstream.
    /// The request phases run on the request given here; then a sample upstream response
    /// (`--status`, `--response-header`, `--response-body`) goes through the response phases.
    /// The plugin's logs and stderr go to stderr.
    Run {
        /// The plugin's `.wasm` file.
        file: PathBuf,
        /// Path and query of the request.
        #[arg(default_value = "/")]
        target: String,
        /// The plugin's config, as JSON (what its table in gateway.toml would hold).
        #[arg(short, long, default_value = "{}")]
        config: String,
        #[arg(short = 'X', long, default_value = "GET")]
        method: String,
        /// A request header, `name: value` (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// The request body.
        #[arg(short = 'd', long)]
        body: Option<String>,
        /// The upstream's status.
        #[arg(long, default_value_t = 200)]
        status: u16,
        /// A header of the upstream's response, `name: value` (repeatable).
        #[arg(long = "response-header")]
        response_headers: Vec<String>,
        /// The upstream's response body.
        #[arg(long)]
        response_body: Option<String>,
    },
    /// Write a new plugin project (a crate or package that builds and tests on its own).
    New {
        /// The plugin's name: lowercase letters, digits and `-`.
        name: String,
        #[arg(short, long, value_enum)]
        lang: crate::scaffold::Lang,
        /// Where to create the project's folder.
        #[arg(short, long, default_value = ".")]
        dir: PathBuf,
        /// The plugin-sdk folder of a wasmgate checkout (default: the one this binary was built
        /// from, or WASMGATE_SDK).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Build the plugin project in DIR into DIR/<name>.wasm.
    Build {
        #[arg(default_value = ".")]
        dir: PathBuf,
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// The gateway's own compile child: a component on stdin, compiled into OUT.
    #[command(hide = true)]
    Compile { out: PathBuf },
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Schema => {
            match serde_json::to_string_pretty(&crate::config::reference::json_schema()) {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check { config } => match check(&config) {
            Ok(summary) => {
                println!("{}: ok: {summary}", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Run { config } => exit(run(config)),
        Command::Plugin { command } => exit(plugin(command)),
    }
}

fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wasmgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn plugin(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::Compile { out } => {
            crate::plugin::compile::compile_stdin_into(&out).map_err(anyhow::Error::msg)
        }
        PluginCommand::New {
            name,
            lang,
            dir,
            sdk,
        } => {
            let sdk = crate::scaffold::sdk(sdk.as_deref())?;
            let made = crate::scaffold::new(&name, lang, &dir, &sdk)?;
            println!(
                "{}: build it with `wasmgate plugin build {}`; its README says how to test and use it",
                made.display(),
                made.display()
            );
            Ok(())
        }
        PluginCommand::Build { dir, sdk } => {
            let sdk = crate::scaffold::sdk(sdk.as_deref())?;
            let out = crate::scaffold::build(&dir, &sdk)?;
            println!("built {}", out.display());
            Ok(())
        }
        PluginCommand::Run {
            file,
            target,
            config,
            method,
            headers,
            body,
            status,
            response_headers,
            response_body,
        } => {
            // The plugin's own log lines and the host's warnings about it (traps, refusals).
            let filter = tracing_subscriber::filter::Targets::new()
                .with_default(tracing::Level::WARN)
                .with_target("wasmgate::plugin::caps::log", tracing::Level::TRACE);
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(std::io::stderr)
                        .with_ansi(false)
                        .with_target(false),
                )
                .try_init();
            let sample = crate::dry_run::Sample {
                method,
                target,
                headers,
                body: body.map(String::into_bytes),
                status,
                response_headers,
                response_body: response_body.map(String::into_bytes),
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let report = rt.block_on(crate::dry_run::run(&file, &config, &sample))?;
            print!("{report}");
            Ok(())
        }
    }
}

/// Everything a start would do short of binding: parse, validate, compile the plugins and run
/// their `init` with each route's config. Every error it can find, in one run: when the file
/// has errors, its plugin files are still compiled, so a broken `.wasm` shows too. On success,
/// what the config serves.
fn check(path: &std::path::Path) -> anyhow::Result<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let host = crate::plugin::PluginHost::new(Default::default(), None)?;
        let loaded = match crate::source::load(path).await {
            Ok(loaded) => loaded,
            Err(mut errors) => {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                // A missing file is already an error of the config.
                for (_, file, at) in crate::config::plugin_files(&text, path) {
                    if !file.exists() {
                        continue;
                    }
                    if let Err(why) = host.check_file(file).await {
                        errors.0.push(crate::config::ConfigError {
                            message: format!("{}: {why}", at.message),
                            ..at
                        });
                    }
                }
                // In the file's order, however each phase found them.
                errors.0.sort_by_key(|e| (e.file.clone(), e.line, e.column));
                return Err(errors.into());
            }
        };
        let cfg = &loaded.config;
        let summary = format!(
            "{} listener(s), {} route(s), {} upstream(s), {} plugin(s)",
            cfg.listeners.len(),
            cfg.routes.len(),
            cfg.upstreams.len(),
            cfg.plugins.len()
        );
        crate::runtime::Runtime::build(loaded, None, 0, &host).await?;
        Ok(summary)
    })
}

fn run(path: PathBuf) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let loaded = crate::source::load_now(&path)?;
    let log = &loaded.config.log;
    let _log = crate::telemetry::init(&log.level, log.format.json());
    let access_file = log
        .access_file
        .as_deref()
        .map(|f| loaded.resolve(std::path::Path::new(f)));
    let _access = crate::telemetry::access::init(access_file.as_deref()).with_context(|| {
        format!(
            "cannot open the access log {}",
            access_file
                .as_deref()
                .unwrap_or(std::path::Path::new("-"))
                .display()
        )
    })?;
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
    rt.block_on(crate::gateway::run(loaded, started))?;
    Ok(())
}
