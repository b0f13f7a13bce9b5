//! The scheduling priority of the threads that do not answer requests.
//!
//! The serving threads keep the process's priority. The threads that do
//! not answer requests run a few `nice` steps below it, so that on a busy
//! core they do not stall the requests in flight, and still run at once
//! whenever the serving threads wait:
//!
//! - the background runtime (threads named `background`: the audit apply,
//!   maintenance, cache refresh, and their blocking threads),
//!   [`BACKGROUND_STEPS`] below: about a
//!   quarter of a core against one busy serving thread instead of half. A
//!   batch of audit rows being applied (up to 8,000 events, tens of
//!   milliseconds of CPU) no longer halves the serving thread's speed while
//!   it runs, which is what the slowest requests waited for;
//! - the audit journal's writer thread, [`JOURNAL_STEPS`] below (see
//!   [`crate::audit`]'s journal): a submission does not preempt the request
//!   being answered, so one sync carries the events of every request
//!   answered meanwhile.
//!
//! Raising `nice` needs no privilege; lowering it again does, so a thread is
//! only ever set to the serving priority plus its steps, never stepped down
//! twice. Where a thread has no priority of its own (outside Linux) or the
//! change fails, the thread keeps the serving priority.

use std::sync::OnceLock;

/// How far below the serving threads the background runtime runs, in `nice`
/// steps: weight 335 against 1,024, about a quarter of a core when both
/// want it. The audit apply needs about 4 µs of CPU per event; a quarter of
/// a core applies some 60,000 events a second, more than two saturated
/// serving cores issue.
pub const BACKGROUND_STEPS: i32 = 5;

/// How far below the serving threads the audit journal's writer thread
/// runs: about a tenth of a core against one busy serving thread, far more
/// than its syncs need. Measured on one core with 32 connections: 18 % more
/// tokens per second and a lower p99, 2.5 times as many events per sync; at
/// 128 connections 28–34 % more; no change with one connection.
pub const JOURNAL_STEPS: i32 = 10;

/// The serving threads' `nice` value, read once from the first thread that
/// asks (the main thread, before any runtime starts: see [`remember_serving`]).
static SERVING: OnceLock<i32> = OnceLock::new();

/// Records the calling thread's priority as the serving threads' own. Call
/// it on the main thread before starting any thread.
pub fn remember_serving() {
    serving();
}

fn serving() -> i32 {
    *SERVING.get_or_init(|| {
        #[cfg(target_os = "linux")]
        {
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(0)
        }
        #[cfg(not(target_os = "linux"))]
        {
            0
        }
    })
}

/// Puts the calling thread of the background runtime [`BACKGROUND_STEPS`]
/// below the serving threads (a runtime's `on_thread_start`).
pub fn run_in_background() {
    run_below_serving(BACKGROUND_STEPS);
}

/// Puts the calling thread `steps` below the serving threads (at most `nice`
/// 19). Calling it again, or from a thread that inherited the same
/// priority, changes nothing.
pub fn run_below_serving(steps: i32) {
    let target = (serving() + steps).min(19);
    #[cfg(target_os = "linux")]
    {
        let me = Some(rustix::thread::gettid());
        if let Err(e) = rustix::process::setpriority_process(me, target) {
            tracing::debug!(error = %e, "a background thread keeps the serving threads' priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = target;
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use rustix::{process::getpriority_process, thread::gettid};

    #[test]
    fn a_background_thread_runs_below_the_serving_threads_once() {
        super::remember_serving();
        let serving = super::serving();
        let here = getpriority_process(Some(gettid())).unwrap();
        let (once, twice, inherited) = std::thread::spawn(|| {
            let me = Some(gettid());
            super::run_below_serving(super::JOURNAL_STEPS);
            let once = getpriority_process(me).unwrap();
            super::run_below_serving(super::JOURNAL_STEPS);
            let twice = getpriority_process(me).unwrap();
            // A thread started by a background thread inherits its priority.
            let inherited = std::thread::spawn(|| {
                super::run_below_serving(super::JOURNAL_STEPS);
                getpriority_process(Some(gettid())).unwrap()
            })
            .join()
            .unwrap();
            (once, twice, inherited)
        })
        .join()
        .unwrap();
        let expected = (serving + super::JOURNAL_STEPS).min(19);
        assert_eq!(once, expected);
        assert_eq!(twice, expected, "not lowered twice");
        assert_eq!(inherited, expected, "not lowered twice through inheritance");
        assert_eq!(
            getpriority_process(Some(gettid())).unwrap(),
            here,
            "the other threads keep theirs"
        );
    }

    #[test]
    fn a_runtime_started_with_the_hook_runs_its_threads_in_background() {
        super::remember_serving();
        let expected = (super::serving() + super::BACKGROUND_STEPS).min(19);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .on_thread_start(super::run_in_background)
            .build()
            .unwrap();
        let worker = runtime.block_on(async {
            tokio::spawn(async { getpriority_process(Some(gettid())).unwrap() })
                .await
                .unwrap()
        });
        let blocking = runtime.block_on(async {
            tokio::task::spawn_blocking(|| getpriority_process(Some(gettid())).unwrap())
                .await
                .unwrap()
        });
        assert_eq!((worker, blocking), (expected, expected));
    }
}
