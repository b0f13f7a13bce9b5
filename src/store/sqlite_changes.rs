//! The SQLite side of client-change notices. Every client change is a row in
//! `client_changes` (written by whichever process made it: the CLI, or a
//! server). A task of each server holds its own connection and, every
//! [`POLL`], asks `PRAGMA data_version` — answered from SQLite's memory,
//! no table read — whether any other connection committed since; only then
//! does it read the rows after the last one it saw and forward them as
//! [`ClientChange`]s. A change made by another process therefore reaches a
//! running server's client cache within [`POLL`] (plus the time to read the
//! rows), at no cost on the request path.

use std::time::Duration;

use sqlx::{sqlite::SqliteConnectOptions, ConnectOptions as _, SqliteConnection};
use tokio::sync::mpsc;

use super::ClientChange;

/// How often the task asks whether the database changed: the bound on how
/// long another process's client change takes to reach the cache.
pub const POLL: Duration = Duration::from_millis(100);

/// How long to wait before opening the connection again after a failure.
const RETRY: Duration = Duration::from_secs(1);

/// Notices waiting for the consumer before the task waits for it.
const BUFFER: usize = 256;

/// Change rows kept behind the newest (older ones are deleted by writers).
pub(super) const KEPT: i64 = 1000;

/// Starts the polling task; it ends when the receiver is dropped.
pub(super) fn subscribe(options: SqliteConnectOptions) -> mpsc::Receiver<ClientChange> {
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(async move {
        tokio::select! {
            () = tx.closed() => {}
            () = follow(&options, &tx) => {}
        }
    });
    rx
}

/// Opens the connection, forwards changes, and starts again a second after
/// any failure (reporting `Lost`, then `Subscribed`). Returns only when the
/// consumer is gone.
async fn follow(options: &SqliteConnectOptions, tx: &mpsc::Sender<ClientChange>) {
    loop {
        if let Err(e) = poll(options, tx).await {
            tracing::warn!(error.cause_chain = ?e, "watching SQLite for client changes failed; retrying");
            if tx.send(ClientChange::Lost).await.is_err() {
                return;
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// One connection's life: starts at the newest change (announcing
/// `Subscribed`), then forwards every later one. Returns on an error, or
/// `Ok` when the consumer is gone.
async fn poll(
    options: &SqliteConnectOptions,
    tx: &mpsc::Sender<ClientChange>,
) -> Result<(), sqlx::Error> {
    let mut conn: SqliteConnection = options.connect().await?;
    let mut version = data_version(&mut conn).await?;
    let mut last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM client_changes")
        .fetch_one(&mut conn)
        .await?;
    if tx.send(ClientChange::Subscribed).await.is_err() {
        return Ok(());
    }
    let mut interval = tokio::time::interval(POLL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let now = data_version(&mut conn).await?;
        if now == version {
            continue;
        }
        version = now;
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT seq, client_id FROM client_changes WHERE seq > ? ORDER BY seq")
                .bind(last)
                .fetch_all(&mut conn)
                .await?;
        for (seq, id) in rows {
            last = seq;
            if tx.send(ClientChange::Changed(id)).await.is_err() {
                return Ok(());
            }
        }
    }
}

/// SQLite's counter of commits by other connections (this one's own never
/// change it).
async fn data_version(conn: &mut SqliteConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("PRAGMA data_version")
        .fetch_one(conn)
        .await
}
