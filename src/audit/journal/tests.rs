//! The journal on a real directory: append, reopen, torn tails, segments,
//! the size limit and the lock.

use std::{fs, io::Write as _, path::Path, sync::Arc};

use super::*;

fn payloads(n: usize, size: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| vec![b'a' + (i % 26) as u8; size]).collect()
}

fn append(journal: &mut Journal, payloads: &[Vec<u8>]) -> Result<(u64, usize), Refused> {
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    journal.append(&refs)
}

fn read_all(files: &Arc<Files>) -> Vec<(u64, Vec<u8>)> {
    Reader::new(Arc::clone(files)).read(usize::MAX).unwrap()
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| Path::new(n).extension().is_some_and(|e| e == "seg"))
        .collect();
    names.sort();
    names
}

#[test]
fn appended_events_are_numbered_and_read_back_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let written = payloads(3, 40);
    let id = {
        let mut journal = Journal::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(append(&mut journal, &written).unwrap(), (1, 3));
        assert_eq!(journal.files().durable(), 3);
        journal.files().id().to_owned()
    };
    let mut journal = Journal::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(journal.files().id(), id, "the id persists");
    assert_eq!(journal.files().durable(), 3);
    let read = read_all(journal.files());
    assert_eq!(
        read,
        written
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, p)| (i as u64 + 1, p))
            .collect::<Vec<_>>()
    );
    assert_eq!(append(&mut journal, &payloads(1, 10)).unwrap(), (4, 1));
    assert_eq!(read_all(journal.files()).len(), 4);
}

#[test]
fn a_torn_tail_is_discarded_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut journal = Journal::open(dir.path(), 1 << 20).unwrap();
        append(&mut journal, &payloads(2, 30)).unwrap();
    }
    // A crash in the middle of the third record: its header and half its payload.
    let segment = dir.path().join(&segment_files(dir.path())[0]);
    let mut frame = Vec::new();
    record::write_frame(&mut frame, 3, &[b'x'; 30]);
    let good = 2 * (record::HEADER as u64 + 30);
    fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap()
        .write_all(&frame[..frame.len() / 2])
        .unwrap();

    let mut journal = Journal::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(fs::metadata(&segment).unwrap().len(), good, "cut back");
    assert_eq!(journal.files().durable(), 2);
    assert_eq!(append(&mut journal, &payloads(1, 5)).unwrap(), (3, 1));
    let seqs: Vec<u64> = read_all(journal.files()).iter().map(|r| r.0).collect();
    assert_eq!(seqs, [1, 2, 3]);
}

#[test]
fn the_segment_is_filled_with_zeros_ahead_of_its_records_and_cut_to_them_when_done() {
    let dir = tempfile::tempdir().unwrap();
    let frame = record::HEADER as u64 + 40;
    let mut journal = Journal::open_with(dir.path(), 1 << 20, 10 * frame).unwrap();
    append(&mut journal, &payloads(1, 40)).unwrap();
    let first = journal.files().path(1);
    // One record, zeros up to a segment's length ahead of it.
    assert_eq!(fs::metadata(&first).unwrap().len(), 10 * frame);
    append(&mut journal, &payloads(8, 40)).unwrap();
    assert_eq!(
        fs::metadata(&first).unwrap().len(),
        10 * frame,
        "written in place"
    );
    // A batch reaching past the zeros extends them a segment's length on.
    append(&mut journal, &payloads(3, 40)).unwrap();
    assert_eq!(fs::metadata(&first).unwrap().len(), 20 * frame);
    assert_eq!(
        journal.files().bytes(),
        12 * frame,
        "records count, zeros do not"
    );
    // Rolling over cuts the full segment back to its records.
    append(&mut journal, &payloads(1, 40)).unwrap();
    assert_eq!(fs::metadata(&first).unwrap().len(), 12 * frame);
    let second = journal.files().path(13);
    assert_eq!(fs::metadata(&second).unwrap().len(), 10 * frame);
    drop(journal);

    // Reopened, the zeros after the last record are no torn write: the
    // records stay and numbering goes on.
    let mut journal = Journal::open_with(dir.path(), 1 << 20, 10 * frame).unwrap();
    assert_eq!(fs::metadata(&second).unwrap().len(), frame, "zeros cut off");
    assert_eq!(journal.files().durable(), 13);
    assert_eq!(append(&mut journal, &payloads(1, 40)).unwrap(), (14, 1));
    let seqs: Vec<u64> = read_all(journal.files()).iter().map(|r| r.0).collect();
    assert_eq!(seqs, (1..=14).collect::<Vec<_>>());
}

#[test]
fn a_corrupt_record_ends_the_valid_part() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut journal = Journal::open(dir.path(), 1 << 20).unwrap();
        append(&mut journal, &payloads(3, 30)).unwrap();
    }
    let segment = dir.path().join(&segment_files(dir.path())[0]);
    let mut bytes = fs::read(&segment).unwrap();
    let second = record::HEADER + 30;
    bytes[second + record::HEADER + 3] ^= 0xff;
    fs::write(&segment, bytes).unwrap();
    let journal = Journal::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(journal.files().durable(), 1);
    assert_eq!(read_all(journal.files()).len(), 1);
}

#[test]
fn segments_roll_and_applied_ones_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open_with(dir.path(), 1 << 20, 100).unwrap();
    for _ in 0..4 {
        append(&mut journal, &payloads(2, 40)).unwrap();
    }
    assert_eq!(
        segment_files(dir.path()).len(),
        4,
        "one segment per batch of 112 bytes"
    );
    let files = Arc::clone(journal.files());
    let before = files.bytes();
    assert_eq!(before, 4 * 2 * (record::HEADER as u64 + 40));

    files.set_applied(3);
    assert_eq!(
        files.release().unwrap(),
        1,
        "only the first segment (1-2) is applied"
    );
    files.set_applied(8);
    assert_eq!(files.release().unwrap(), 2, "the newest segment stays");
    assert_eq!(segment_files(dir.path()), [format!("{:020}.seg", 7)]);
    assert!(files.bytes() < before);
    drop(journal);

    // Sequence numbers keep rising after everything was applied and deleted.
    let mut journal = Journal::open_with(dir.path(), 1 << 20, 100).unwrap();
    assert_eq!(append(&mut journal, &payloads(1, 5)).unwrap().0, 9);
    let seqs: Vec<u64> = read_all(journal.files()).iter().map(|r| r.0).collect();
    assert_eq!(
        seqs,
        [7, 8, 9],
        "the reader starts at the oldest kept segment"
    );
}

#[test]
fn a_full_journal_refuses_until_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let frame = record::HEADER as u64 + 50;
    let mut journal = Journal::open_with(dir.path(), 3 * frame, frame).unwrap();
    assert_eq!(
        append(&mut journal, &payloads(5, 50)).unwrap(),
        (1, 3),
        "what fits is accepted, in order"
    );
    let refused = append(&mut journal, &payloads(1, 50)).unwrap_err();
    assert!(
        matches!(refused, Refused::Full { bytes, max } if bytes == 3 * frame && max == 3 * frame),
        "{refused}"
    );
    assert!(!journal.files().has_room());
    journal.files().set_applied(3);
    journal.files().release().unwrap();
    assert_eq!(append(&mut journal, &payloads(1, 50)).unwrap(), (4, 1));
    assert!(
        append(&mut journal, &payloads(1, 10 * 50)).is_err(),
        "bigger than the limit"
    );
}

#[test]
fn a_second_opener_is_refused_while_the_first_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), 1 << 20).unwrap();
    let err = Journal::open(dir.path(), 1 << 20).unwrap_err();
    assert!(matches!(err, JournalError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("audit_journal_dir"), "{err}");
    drop(journal);
    Journal::open(dir.path(), 1 << 20).expect("free again once closed");
}

#[test]
fn an_unusable_directory_is_refused_naming_the_setting_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    fs::write(&file, b"x").unwrap();
    let err = Journal::open(&file.join("journal"), 1 << 20).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("audit_journal_dir"), "{message}");
    assert!(message.contains(&file.display().to_string()), "{message}");
}

#[test]
fn the_reader_follows_the_writer_and_stops_at_the_durable_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open_with(dir.path(), 1 << 20, 150).unwrap();
    let mut reader = Reader::new(Arc::clone(journal.files()));
    assert!(reader.read(10).unwrap().is_empty());
    append(&mut journal, &payloads(3, 40)).unwrap();
    let first: Vec<u64> = reader.read(2).unwrap().iter().map(|r| r.0).collect();
    assert_eq!(first, [1, 2], "at most the batch size");
    // Bytes beyond the durable end (a write in progress) are not read.
    let segment = journal.files().path(1);
    fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap()
        .write_all(&[0_u8; 7])
        .unwrap();
    assert_eq!(reader.read(10).unwrap().len(), 1);
    assert!(reader.read(10).unwrap().is_empty());
    fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(3 * 56)
        .unwrap();
    for _ in 0..3 {
        append(&mut journal, &payloads(2, 40)).unwrap();
    }
    let rest: Vec<u64> = reader.read(100).unwrap().iter().map(|r| r.0).collect();
    assert_eq!(rest, [4, 5, 6, 7, 8, 9], "across segments");
}
