//! The PostgreSQL side of client-change notices: a task that holds a
//! `LISTEN` on [`CLIENT_CHANNEL`], reconnects every second while it cannot,
//! and forwards what it hears as [`ClientChange`]s.

use std::time::Duration;

use sqlx::{postgres::PgListener, PgPool};
use tokio::sync::mpsc;

use super::{ClientChange, CLIENT_CHANNEL};

/// How long to wait before subscribing again after a failure.
const RETRY: Duration = Duration::from_secs(1);

/// Notices waiting for the consumer before the listener waits for it.
const BUFFER: usize = 256;

/// Starts the listener task; it ends when the receiver is dropped.
pub(super) fn subscribe(pool: PgPool) -> mpsc::Receiver<ClientChange> {
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(async move {
        // Stop at once when the consumer goes away, even while waiting for a notice.
        tokio::select! {
            () = tx.closed() => {}
            () = listen(&pool, &tx) => {}
        }
    });
    rx
}

/// Subscribes, forwards notices, and subscribes again a second after any
/// failure. Returns only when the consumer is gone.
async fn listen(pool: &PgPool, tx: &mpsc::Sender<ClientChange>) {
    loop {
        if let Some(mut listener) = subscribed(pool).await {
            if tx.send(ClientChange::Subscribed).await.is_err() {
                return;
            }
            loop {
                let change = match listener.try_recv().await {
                    Ok(Some(notice)) => ClientChange::Changed(notice.payload().to_owned()),
                    Ok(None) => {
                        tracing::warn!(
                            error.cause_chain = "the connection closed",
                            "client-change subscription lost; client cache marked stale"
                        );
                        ClientChange::Lost
                    }
                    Err(e) => {
                        tracing::warn!(error.cause_chain = ?e, "client-change subscription lost; client cache marked stale");
                        ClientChange::Lost
                    }
                };
                let lost = change == ClientChange::Lost;
                if tx.send(change).await.is_err() {
                    return;
                }
                if lost {
                    break;
                }
            }
        } else if tx.send(ClientChange::Lost).await.is_err() {
            return;
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// A listener subscribed to [`CLIENT_CHANNEL`], or `None` (logged) on failure.
async fn subscribed(pool: &PgPool) -> Option<PgListener> {
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error.cause_chain = ?e, "could not listen for client changes; retrying");
            return None;
        }
    };
    // A dropped connection is reported (`Ok(None)`) rather than silently
    // re-established, so the consumer learns that notices may have been missed.
    listener.eager_reconnect(false);
    if let Err(e) = listener.listen(CLIENT_CHANNEL).await {
        tracing::error!(error.cause_chain = ?e, "could not subscribe to client changes");
        return None;
    }
    Some(listener)
}
