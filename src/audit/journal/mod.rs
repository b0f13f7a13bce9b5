//! The local audit journal: an append-only, segmented log on disk where an
//! audit event becomes durable (written and `fdatasync`ed) before the
//! response that caused it is sent. The writer thread ([`crate::audit`])
//! appends whole batches with one sync; the database writer reads them back
//! in order ([`Reader`]) and, once the database holds them, the segments
//! whose events are all applied are deleted ([`Files::release`]).
//!
//! A directory holds `LOCK` (locked while a process uses the journal),
//! `journal-id` (a UUID naming the journal in the database's cursor table)
//! and segments `<first sequence number>.seg` of frames (length, CRC-32,
//! sequence number, the event as JSON). The segment being appended to is
//! filled with zeros up to 1 MiB beyond its records, so most syncs
//! flush data alone (no change of the file's size to commit); zeros end
//! the records like the end of the file does, and a segment is cut back to
//! its records when the next one starts or the journal is opened. The
//! newest segment is never deleted, so sequence numbers keep rising across
//! restarts even when everything was applied.

mod reader;
mod record;
#[cfg(test)]
mod tests;

use std::{
    collections::BTreeMap,
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex, MutexGuard,
    },
};

pub use reader::Reader;
pub use record::{decode_event, encode_event, encode_token_issued};

/// Largest segment file (smaller for small journals: a sixteenth of the limit).
const MAX_SEGMENT: u64 = 64 << 20;
/// How far ahead of its data the current segment is filled with zeros (at
/// most a segment). A sync after writing into blocks that already exist
/// flushes the data alone; one that grows the file also commits the
/// file system's metadata — once per this many bytes instead of every time.
const ZERO_AHEAD: u64 = 1 << 20;
/// The zeros written at once.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// The journal could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The directory or a file in it cannot be created, read or written.
    #[error("the audit journal directory {} (audit_journal_dir) is not usable: {source}", .path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// Another process uses the journal.
    #[error("the audit journal directory {} (audit_journal_dir) is locked by another process; each server needs its own", .path.display())]
    Locked {
        /// The directory.
        path: PathBuf,
    },
}

/// Why the journal refused events.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The journal holds `audit_journal_max_bytes` already.
    #[error("the audit journal is full ({bytes} of {max} bytes, audit_journal_max_bytes): events wait for the database")]
    Full {
        /// Bytes held.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// Writing or syncing failed.
    #[error("the audit journal cannot be written: {0}")]
    Io(#[from] io::Error),
}

/// What the writer and the database writer share: the segments and how far
/// the journal is durable and applied.
#[derive(Debug)]
pub struct Files {
    dir: PathBuf,
    id: String,
    max_bytes: u64,
    segment_bytes: u64,
    /// First sequence number of each segment → its bytes.
    segments: Mutex<BTreeMap<u64, u64>>,
    durable: AtomicU64,
    applied: AtomicU64,
}

impl Files {
    /// The journal's persistent id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes in segment files.
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.segments().values().sum()
    }

    /// `audit_journal_max_bytes`.
    #[must_use]
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Whether a request may start that will record events: the journal
    /// holds less than its limit minus a reserve (a sixty-fourth of the
    /// limit, at most 64 KiB), so the events of a request admitted now — an
    /// admin change's carries the client before and after — still fit.
    #[must_use]
    pub fn has_room(&self) -> bool {
        let reserve = (self.max_bytes / 64).min(64 * 1024);
        self.bytes().saturating_add(reserve) < self.max_bytes
    }

    /// The sequence number of the last durable event (0: none).
    #[must_use]
    pub fn durable(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// The sequence number up to which the database holds every event.
    #[must_use]
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// Records that the database holds every event up to `seq`.
    pub fn set_applied(&self, seq: u64) {
        self.applied.fetch_max(seq, Ordering::AcqRel);
    }

    /// Deletes every segment but the newest whose events are all applied;
    /// returns how many.
    pub fn release(&self) -> io::Result<usize> {
        let applied = self.applied();
        let done: Vec<u64> = {
            let segments = self.segments();
            let firsts: Vec<u64> = segments.keys().copied().collect();
            firsts
                .windows(2)
                .filter(|w| w[1] - 1 <= applied)
                .map(|w| w[0])
                .collect()
        };
        for first in &done {
            match fs::remove_file(self.path(*first)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            self.segments().remove(first);
        }
        Ok(done.len())
    }

    fn segments(&self) -> MutexGuard<'_, BTreeMap<u64, u64>> {
        self.segments
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn path(&self, first: u64) -> PathBuf {
        self.dir.join(format!("{first:020}.seg"))
    }
}

/// The segment appended to.
#[derive(Debug)]
struct Segment {
    first: u64,
    file: File,
    /// Bytes of records.
    len: u64,
    /// Bytes of the file (records, then zeros).
    zeroed: u64,
}

impl Segment {
    /// Writes `frames` after the records, first extending the zeros ahead
    /// of them when they would reach past, then syncs.
    fn write(&mut self, frames: &[u8], ahead: u64) -> io::Result<()> {
        let end = self.len + frames.len() as u64;
        if end > self.zeroed {
            let to = end.max(self.zeroed + ahead);
            let mut at = self.zeroed;
            while at < to {
                let n = (to - at).min(ZEROS.len() as u64);
                self.file.write_all_at(&ZEROS[..n as usize], at)?;
                at += n;
            }
            self.zeroed = to;
        }
        self.file.write_all_at(frames, self.len)?;
        self.file.sync_data()
    }

    /// Cuts the zeros off a segment that is no longer appended to.
    fn finish(&self) -> io::Result<()> {
        if self.zeroed > self.len {
            self.file.set_len(self.len)?;
        }
        Ok(())
    }
}

/// The writing end of a journal; holds the directory lock until dropped.
#[derive(Debug)]
pub struct Journal {
    files: std::sync::Arc<Files>,
    current: Option<Segment>,
    next_seq: u64,
    _lock: File,
}

impl Journal {
    /// Opens (creating) the journal in `dir`, locks it, keeps the valid part
    /// of each segment (a torn last record is cut off) and starts a new
    /// segment, which proves the directory writable.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, JournalError> {
        Self::open_with(dir, max_bytes, (max_bytes / 16).clamp(1, MAX_SEGMENT))
    }

    fn open_with(dir: &Path, max_bytes: u64, segment_bytes: u64) -> Result<Self, JournalError> {
        let io_error = |source| JournalError::Io {
            path: dir.to_owned(),
            source,
        };
        fs::create_dir_all(dir).map_err(io_error)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))
            .map_err(io_error)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(JournalError::Locked {
                    path: dir.to_owned(),
                })
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_error(e)),
        }
        let id = journal_id(dir).map_err(io_error)?;
        let (segments, last_seq) = recover(dir).map_err(io_error)?;
        let floor = segments.keys().next_back().copied().unwrap_or(1);
        let oldest = segments.keys().next().copied().unwrap_or(1);
        let files = Files {
            dir: dir.to_owned(),
            id,
            max_bytes,
            segment_bytes,
            segments: Mutex::new(segments),
            durable: AtomicU64::new(last_seq),
            applied: AtomicU64::new(oldest - 1),
        };
        let mut journal = Self {
            files: std::sync::Arc::new(files),
            current: None,
            next_seq: (last_seq + 1).max(floor),
            _lock: lock,
        };
        journal.start_segment().map_err(io_error)?;
        Ok(journal)
    }

    /// What the database writer needs.
    #[must_use]
    pub fn files(&self) -> &std::sync::Arc<Files> {
        &self.files
    }

    /// Appends as many of `payloads` as fit, in order, with one sync; returns
    /// the first one's sequence number and how many were appended (the
    /// others are refused). Nothing is appended on error.
    pub fn append(&mut self, payloads: &[&[u8]]) -> Result<(u64, usize), Refused> {
        if payloads.is_empty() {
            return Ok((self.next_seq, 0));
        }
        let roll = self
            .current
            .as_ref()
            .is_none_or(|s| s.len > 0 && s.len >= self.files.segment_bytes);
        if roll {
            if let Some(done) = &self.current {
                if let Err(e) = done.finish() {
                    tracing::warn!(error = %e, "could not cut the zeros off a full audit journal segment");
                }
            }
            self.start_segment()?;
            if let Err(e) = self.files.release() {
                tracing::warn!(error = %e, "could not delete applied audit journal segments");
            }
        }
        let held = self.files.bytes();
        let room = self.files.max_bytes.saturating_sub(held);
        let (mut size, mut accepted) = (0, 0);
        for p in payloads {
            let more = record::frame_len(p.len());
            if size + more > room {
                break;
            }
            size += more;
            accepted += 1;
        }
        if accepted == 0 {
            return Err(Refused::Full {
                bytes: held,
                max: self.files.max_bytes,
            });
        }
        let first_seq = self.next_seq;
        let mut buf = Vec::with_capacity(size as usize);
        for (seq, p) in (first_seq..).zip(&payloads[..accepted]) {
            record::write_frame(&mut buf, seq, p);
        }
        let Some(seg) = self.current.as_mut() else {
            return Err(Refused::Io(io::Error::other("no open segment")));
        };
        let ahead = ZERO_AHEAD.min(self.files.segment_bytes);
        if let Err(e) = seg.write(&buf, ahead) {
            // After a failed write or sync the file's tail is unknown: cut it
            // back and continue in a new segment; if it cannot be cut, its
            // sequence numbers are not used again.
            let cut = seg
                .file
                .set_len(seg.len)
                .and_then(|()| seg.file.sync_data());
            let on_disk = seg.file.metadata().map_or(seg.len, |m| m.len());
            self.files.segments().insert(seg.first, on_disk);
            if cut.is_err() {
                self.next_seq += accepted as u64;
            }
            self.current = None;
            return Err(Refused::Io(e));
        }
        seg.len += size;
        self.files.segments().insert(seg.first, seg.len);
        self.next_seq += accepted as u64;
        self.files
            .durable
            .store(self.next_seq - 1, Ordering::Release);
        Ok((first_seq, accepted))
    }

    /// Starts the segment of `next_seq` (reusing it if it exists, empty).
    fn start_segment(&mut self) -> io::Result<()> {
        let first = self.next_seq;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.files.path(first))?;
        let len = file.metadata()?.len();
        sync_dir(&self.files.dir)?;
        self.files.segments().insert(first, len);
        self.current = Some(Segment {
            first,
            file,
            len,
            zeroed: len,
        });
        Ok(())
    }
}

/// The journal's id, created (durably) on first use.
fn journal_id(dir: &Path) -> io::Result<String> {
    let path = dir.join("journal-id");
    match fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let id = uuid::Uuid::new_v4().to_string();
    let tmp = dir.join("journal-id.tmp");
    fs::write(&tmp, format!("{id}\n"))?;
    File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, &path)?;
    sync_dir(dir)?;
    Ok(id)
}

/// Reads every segment, cuts off invalid tails; returns the segments'
/// valid sizes and the last valid sequence number.
fn recover(dir: &Path) -> io::Result<(BTreeMap<u64, u64>, u64)> {
    let mut firsts = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(first) = name
            .strip_suffix(".seg")
            .and_then(|n| n.parse::<u64>().ok())
        {
            firsts.push(first);
        }
    }
    firsts.sort_unstable();
    let (mut segments, mut last_seq) = (BTreeMap::new(), 0);
    for first in firsts {
        let path = dir.join(format!("{first:020}.seg"));
        let bytes = fs::read(&path)?;
        let mut valid = 0;
        while let record::Parsed::Frame { seq, len, .. } = record::parse(&bytes[valid..]) {
            if seq < first || seq <= last_seq {
                break;
            }
            last_seq = seq;
            valid += len;
        }
        if valid < bytes.len() {
            let file = OpenOptions::new().write(true).open(&path)?;
            file.set_len(valid as u64)?;
            file.sync_all()?;
        }
        // Zeros are the space filled ahead of the records, not a torn write.
        if bytes[valid..].iter().any(|b| *b != 0) {
            tracing::warn!(
                segment = %path.display(),
                discarded_bytes = bytes.len() - valid,
                "discarded the torn end of an audit journal segment (never acknowledged)"
            );
        }
        segments.insert(first, valid as u64);
    }
    Ok((segments, last_seq))
}

/// Makes created, renamed or deleted entries of `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
