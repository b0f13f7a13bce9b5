//! Export of the audit trail for a SIEM (`audit_export`, `portcullis audit
//! export`): every committed event as one JSON line with the fields as stored
//! and its `prev_hash` and `hash`, so an archive verifies on its own
//! ([`super::verify_archive`]).
//!
//! The exporter tails the database by id (ids are committed in order, under
//! the audit lock), so it exports what every replica recorded, once committed.
//! Delivery across restarts and crashes:
//! - **file**: exactly once into the file. After each page the lines are
//!   written and synced, then the cursor (the last exported id) is saved next
//!   to the file (`<file>.cursor`). On start the exporter drops a partial last
//!   line (a crash while writing) and resumes after the larger of the saved
//!   cursor and the last complete line's id — so neither a crash before the
//!   cursor is saved (duplicates) nor a rotated-away file (a restart from the
//!   beginning) repeats events. Retention never removes events past the
//!   cursor of this process's file export.
//! - **stdout**: at most once: from the end of the trail at start; events
//!   committed while no process exported them are not written (export them
//!   with `portcullis audit export --after ID`).

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::task::JoinHandle;

use super::{chain::AuditRecord, AuditFilter};
use crate::{
    config::AuditExport,
    store::{AuditStore, Storage, Store, StoreError},
};

/// Events read and written at a time.
const PAGE: u32 = 1000;
/// How often the exporter looks for newly committed events.
const EVERY: Duration = Duration::from_secs(1);

/// Exporting failed; the exporter retries.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The events could not be read.
    #[error("could not read the audit trail")]
    Store(#[from] StoreError),
    /// The export could not be written.
    #[error("could not write the audit export")]
    Io(#[from] io::Error),
}

/// Writes `records` as JSON lines.
fn lines(records: &[AuditRecord]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(records.len() * 512);
    for r in records {
        // An `AuditRecord` always serializes (string keys, no maps of non-strings).
        if serde_json::to_writer(&mut buf, r).is_ok() {
            buf.push(b'\n');
        }
    }
    buf
}

/// Writes every stored event after `after` to `out`, in id order; returns
/// how many, and the last id written (or `after`).
pub async fn write_trail(
    store: &Storage,
    after: i64,
    out: &mut impl Write,
) -> Result<(u64, i64), ExportError> {
    let (mut count, mut cursor) = (0, after);
    loop {
        let page = next_page(store, cursor).await?;
        let Some(last) = page.last() else {
            out.flush()?;
            return Ok((count, cursor));
        };
        cursor = last.id;
        count += page.len() as u64;
        out.write_all(&lines(&page))?;
    }
}

async fn next_page(store: &Storage, after: i64) -> Result<Vec<AuditRecord>, StoreError> {
    let filter = AuditFilter {
        after_id: after,
        limit: PAGE,
        ..AuditFilter::default()
    };
    store.audit_events(&filter).await
}

/// An export file with its cursor.
#[derive(Debug)]
pub struct FileExport {
    path: PathBuf,
    file: File,
    cursor: i64,
}

impl FileExport {
    /// Opens (creating) the file and finds where to resume (see the module doc).
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let (complete, last_line) = last_complete_line(&mut file)?;
        file.set_len(complete)?;
        let in_file = last_line
            .and_then(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
            .and_then(|v| v["id"].as_i64())
            .unwrap_or(0);
        let saved = fs::read_to_string(cursor_path(path))
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok())
            .unwrap_or(0);
        Ok(Self {
            path: path.to_owned(),
            file,
            cursor: in_file.max(saved),
        })
    }

    /// The last exported id.
    #[must_use]
    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// Exports every event committed after the cursor, a synced page at a
    /// time, saving the cursor after each; returns how many.
    pub async fn pump(&mut self, store: &Storage) -> Result<u64, ExportError> {
        let mut count = 0;
        loop {
            let page = next_page(store, self.cursor).await?;
            let Some(last) = page.last() else {
                return Ok(count);
            };
            self.file.write_all(&lines(&page))?;
            self.file.sync_data()?;
            self.cursor = last.id;
            save_cursor(&self.path, self.cursor)?;
            count += page.len() as u64;
        }
    }
}

fn cursor_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".cursor");
    PathBuf::from(name)
}

fn save_cursor(path: &Path, cursor: i64) -> io::Result<()> {
    let target = cursor_path(path);
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(".tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(cursor.to_string().as_bytes())?;
    f.sync_data()?;
    fs::rename(&tmp, &target)
}

/// The length of the file up to its last newline, and the last complete
/// line, read backwards from the end.
fn last_complete_line(file: &mut File) -> io::Result<(u64, Option<String>)> {
    const STEP: u64 = 64 * 1024;
    let mut pos = file.metadata()?.len();
    let mut tail: Vec<u8> = Vec::new();
    loop {
        if let Some(end) = tail.iter().rposition(|&b| b == b'\n') {
            let start = tail[..end].iter().rposition(|&b| b == b'\n');
            if start.is_some() || pos == 0 {
                let from = start.map_or(0, |s| s + 1);
                let line = String::from_utf8_lossy(&tail[from..end]).into_owned();
                return Ok((pos + end as u64 + 1, Some(line)));
            }
        } else if pos == 0 {
            return Ok((0, None));
        }
        let step = pos.min(STEP);
        pos -= step;
        file.seek(SeekFrom::Start(pos))?;
        let mut block = vec![0; usize::try_from(step).unwrap_or(0)];
        file.read_exact(&mut block)?;
        block.extend_from_slice(&tail);
        tail = block;
    }
}

/// The running exporter.
#[derive(Debug)]
pub struct Exporter {
    /// The task; abort it at shutdown.
    pub task: JoinHandle<()>,
    /// For a file export, the last id written (0 until the file is opened):
    /// retention does not remove events beyond it.
    pub written: Option<Arc<AtomicI64>>,
}

/// Starts exporting to `target`; `None` for [`AuditExport::None`].
#[must_use]
pub fn spawn(store: Storage, target: &AuditExport) -> Option<Exporter> {
    match target {
        AuditExport::None => None,
        AuditExport::Stdout => Some(Exporter {
            task: tokio::spawn(to_stdout(store)),
            written: None,
        }),
        AuditExport::File(path) => {
            let written = Arc::new(AtomicI64::new(0));
            Some(Exporter {
                task: tokio::spawn(to_file(store, path.clone(), Arc::clone(&written))),
                written: Some(written),
            })
        }
    }
}

async fn to_file(store: Storage, path: PathBuf, written: Arc<AtomicI64>) {
    let mut export = loop {
        match FileExport::open(&path) {
            Ok(export) => break export,
            Err(e) => {
                tracing::error!(error.cause_chain = ?e, path = %path.display(), "audit export file cannot be opened; will retry");
                tokio::time::sleep(EVERY * 5).await;
            }
        }
    };
    loop {
        let result = export.pump(&store).await;
        written.store(export.cursor(), Ordering::Release);
        if let Err(e) = result {
            tracing::error!(error.cause_chain = ?e, "audit export failed; will retry");
        }
        tokio::time::sleep(EVERY).await;
    }
}

async fn to_stdout(store: Storage) {
    let mut cursor = loop {
        match store.audit_head().await {
            Ok((id, _)) => break id,
            Err(e) => {
                tracing::error!(error.cause_chain = ?e, "audit export cannot find the end of the trail; will retry");
                tokio::time::sleep(EVERY * 5).await;
            }
        }
    };
    loop {
        match write_trail(&store, cursor, &mut io::stdout()).await {
            Ok((_, last)) => cursor = last,
            Err(e) => tracing::error!(error.cause_chain = ?e, "audit export failed; will retry"),
        }
        tokio::time::sleep(EVERY).await;
    }
}
