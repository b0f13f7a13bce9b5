//! Group commit: one thread (blocking I/O, off the serving threads) takes
//! every event submitted since its last write, appends them to the journal
//! with one `fdatasync`, then acknowledges each — so many concurrent
//! requests share one sync. Changes between accepting and refusing events
//! are logged once each, not per event.
//!
//! The thread runs below the serving threads ([`crate::priority`]). Woken
//! by a submission, it then does not take the core from a serving thread that
//! still has requests to answer: those requests submit their events too,
//! and one sync covers them all. When the serving threads have nothing left
//! but to wait for it, it runs at once.

use std::{
    io,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Condvar, Mutex, MutexGuard,
    },
    time::Instant,
};

use tokio::sync::oneshot;

use super::journal::{Journal, Refused};
use crate::metrics::Metrics;

/// The answer to a submission: the event's sequence number (for a flush,
/// the last durable one), or `Err` when refused.
pub(super) type Ack = Result<u64, ()>;

struct Item {
    payload: Option<Vec<u8>>,
    ack: oneshot::Sender<Ack>,
}

#[derive(Default)]
struct Pending {
    items: Vec<Item>,
    closed: bool,
    /// The thread waits for items (only then does a submission wake it:
    /// while it writes, it takes everything submitted meanwhile anyway).
    waiting: bool,
}

/// Where submissions wait for the writer thread.
pub(super) struct Inbox {
    pending: Mutex<Pending>,
    ready: Condvar,
    writable: AtomicBool,
}

impl Default for Inbox {
    fn default() -> Self {
        Self {
            pending: Mutex::default(),
            ready: Condvar::new(),
            writable: AtomicBool::new(true),
        }
    }
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("writable", &self.writable())
            .finish_non_exhaustive()
    }
}

impl Inbox {
    /// Submits an event's payload (or, with `None`, a flush marker); the
    /// receiver gets the answer once it is durable or refused.
    pub(super) fn submit(&self, payload: Option<Vec<u8>>) -> oneshot::Receiver<Ack> {
        let (ack, answer) = oneshot::channel();
        let mut pending = self.lock();
        if pending.closed {
            let _ = ack.send(Err(()));
        } else {
            pending.items.push(Item { payload, ack });
            if pending.waiting {
                self.ready.notify_one();
            }
        }
        answer
    }

    /// Whether the last write succeeded.
    pub(super) fn writable(&self) -> bool {
        self.writable.load(Ordering::Relaxed)
    }

    /// Lets the thread finish what is submitted, then end (closing the journal).
    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Everything submitted so far, waiting for something; `None` once closed and empty.
    fn take(&self) -> Option<Vec<Item>> {
        let mut pending = self.lock();
        loop {
            if !pending.items.is_empty() {
                return Some(std::mem::take(&mut pending.items));
            }
            if pending.closed {
                return None;
            }
            pending.waiting = true;
            pending = self
                .ready
                .wait(pending)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            pending.waiting = false;
        }
    }
}

/// Starts the writer thread.
pub(super) fn spawn(journal: Journal, inbox: Arc<Inbox>, metrics: Metrics) -> io::Result<()> {
    std::thread::Builder::new()
        .name("audit-journal".to_owned())
        .spawn(move || {
            crate::priority::run_below_serving(crate::priority::JOURNAL_STEPS);
            run(journal, &inbox, &metrics);
        })
        .map(|_| ())
}

fn run(mut journal: Journal, inbox: &Inbox, metrics: &Metrics) {
    while let Some(items) = inbox.take() {
        let payloads: Vec<&[u8]> = items.iter().filter_map(|i| i.payload.as_deref()).collect();
        let started = Instant::now();
        let result = journal.append(&payloads);
        let (first, accepted) = match &result {
            Ok(appended) => *appended,
            Err(_) => (0, 0),
        };
        if accepted > 0 {
            metrics.audit_journal_synced(started.elapsed().as_secs_f64(), accepted);
        }
        let refused = match result {
            Err(e) => Some(e),
            Ok((_, n)) if n < payloads.len() => Some(Refused::Full {
                bytes: journal.files().bytes(),
                max: journal.files().max_bytes(),
            }),
            Ok(_) => None,
        };
        report(inbox, &journal, refused.as_ref());
        drop(payloads);
        let durable = journal.files().durable();
        let mut seq = first..first + accepted as u64;
        for item in items {
            let answer = match item.payload {
                Some(_) => seq.next().ok_or(()),
                None => Ok(durable),
            };
            let _ = item.ack.send(answer);
        }
    }
}

/// Logs a change between accepting and refusing events.
fn report(inbox: &Inbox, journal: &Journal, refused: Option<&Refused>) {
    let was = inbox.writable.swap(refused.is_none(), Ordering::Relaxed);
    let dir = journal.files().dir().display();
    match refused {
        Some(reason) if was => tracing::error!(
            journal = %dir,
            reason = %reason,
            "the audit journal refuses events: no token is issued (503 temporarily_unavailable) \
             until it accepts them again"
        ),
        None if !was => tracing::warn!(journal = %dir, "the audit journal accepts events again"),
        _ => {}
    }
}
