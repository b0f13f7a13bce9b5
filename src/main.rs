//! The `portcullis` binary: parse the command line and dispatch.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    portcullis::cli::run(portcullis::cli::Cli::parse()).await
}
