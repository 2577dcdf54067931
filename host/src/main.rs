//! The `wasmgate` command line: see `cli.rs`.

fn main() -> std::process::ExitCode {
    wasmgate::cli::main()
}
