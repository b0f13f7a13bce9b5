//! Shutdown in two steps, as load balancers need it: on SIGTERM or SIGINT
//! the server first reports itself draining (`/readyz` answers 503) while it
//! keeps serving, and only after `shutdown_drain_delay` stops accepting
//! connections and lets in-flight requests finish.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use actix_web::dev::ServerHandle;
use tokio::signal::unix::{signal, SignalKind};

/// Waits for SIGTERM or SIGINT, sets `draining`, waits `delay` (or until a
/// second signal), then stops every server gracefully. Runs until then; the
/// caller aborts it once the servers have stopped for another reason.
pub async fn on_signal(draining: Arc<AtomicBool>, delay: Duration, servers: Vec<ServerHandle>) {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("could not install the SIGTERM and SIGINT handlers");
        return;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    draining.store(true, Ordering::Relaxed);
    tracing::info!(
        signal = name,
        drain_delay_secs = delay.as_secs(),
        "shutting down: /readyz answers 503 while draining"
    );
    if !delay.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = term.recv() => tracing::info!("second signal: closing the listeners now"),
            _ = int.recv() => tracing::info!("second signal: closing the listeners now"),
        }
    }
    tracing::info!("closing the listeners; in-flight requests finish (up to 30 s)");
    // `stop` sends the command at once: every server drains concurrently.
    let stops: Vec<_> = servers.iter().map(|server| server.stop(true)).collect();
    for stop in stops {
        stop.await;
    }
}
