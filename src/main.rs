//! The `portcullis` binary: parse the command line and dispatch.

use std::process::ExitCode;

use clap::Parser;

// mimalloc returns freed memory to the system far better than glibc's
// per-thread arenas under this workload (argon2's 19 MiB blocks, many threads).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    keep_the_heap_in_small_pages();
    // The runtime started here runs the background work (the audit apply,
    // maintenance, cache refresh): below the serving threads, which actix
    // starts from this thread at its priority.
    portcullis::priority::remember_serving();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("background")
        .on_thread_start(portcullis::priority::run_in_background)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: the async runtime could not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match portcullis::cli::run(portcullis::cli::Cli::parse()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {}", portcullis::cli::describe_error(&e));
                ExitCode::FAILURE
            }
        }
    })
}

/// Turns transparent huge pages off for this process, before the runtime
/// allocates. mimalloc asks for huge pages on its arenas, and with THP in
/// `madvise` mode (the Debian default) every 2 MiB region the heap touches
/// becomes resident whole: an idle server held 16 MiB of heap instead of 3.
/// (mimalloc's own `MIMALLOC_ALLOW_THP=0` does the same from the environment.)
fn keep_the_heap_in_small_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("warning: transparent huge pages could not be turned off: {e}");
    }
}
