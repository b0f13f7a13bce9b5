//! The `portcullis` binary: parse the command line and dispatch.

use std::process::ExitCode;

use clap::Parser;

// mimalloc returns freed memory to the system far better than glibc's
// per-thread arenas under this workload (argon2's 19 MiB blocks, many threads).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    match portcullis::cli::run(portcullis::cli::Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", portcullis::cli::describe_error(&e));
            ExitCode::FAILURE
        }
    }
}
