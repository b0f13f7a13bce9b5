//! [`Reader`]: the database writer's view of the journal, reading durable
//! records in sequence order, segment after segment. It reads only up to
//! the last durable sequence number, so never a record still being written.

use std::{fs::File, io, ops::Bound, os::unix::fs::FileExt, sync::Arc};

use super::{record, Files};

/// Bytes read at once.
const CHUNK: usize = 256 << 10;

/// Reads the journal from its oldest segment on.
#[derive(Debug)]
pub struct Reader {
    files: Arc<Files>,
    /// The segment being read (its first sequence number) and its file.
    segment: Option<(u64, Option<File>)>,
    offset: u64,
    last_seq: u64,
    buf: Vec<u8>,
}

impl Reader {
    /// A reader at the start of the oldest segment.
    #[must_use]
    pub fn new(files: Arc<Files>) -> Self {
        Self {
            files,
            segment: None,
            offset: 0,
            last_seq: 0,
            buf: Vec::new(),
        }
    }

    /// The next durable records, at most `max`: (sequence number, payload).
    pub fn read(&mut self, max: usize) -> io::Result<Vec<(u64, Vec<u8>)>> {
        let mut out = Vec::new();
        while out.len() < max {
            let durable = self.files.durable();
            if self.last_seq >= durable {
                break;
            }
            if self.segment.is_none() && !self.next_segment() {
                break;
            }
            let before = out.len();
            if self.read_segment(durable, max, &mut out)? {
                if !self.next_segment() {
                    break;
                }
            } else if out.len() == before {
                break;
            }
        }
        Ok(out)
    }

    /// Reads from the current segment; true when its valid end is reached.
    fn read_segment(
        &mut self,
        durable: u64,
        max: usize,
        out: &mut Vec<(u64, Vec<u8>)>,
    ) -> io::Result<bool> {
        let Some((first, file)) = &mut self.segment else {
            return Ok(true);
        };
        if file.is_none() {
            match File::open(self.files.path(*first)) {
                Ok(f) => *file = Some(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
                Err(e) => return Err(e),
            }
        }
        let Some(file) = file.as_ref() else {
            return Ok(true);
        };
        let mut want = CHUNK;
        loop {
            self.buf.resize(want, 0);
            let got = read_at_most(file, &mut self.buf, self.offset)?;
            let mut pos = 0;
            let stop = loop {
                if out.len() >= max || self.last_seq >= durable {
                    break Stop::Enough;
                }
                match record::parse(&self.buf[pos..got]) {
                    record::Parsed::Frame { seq, payload, len } => {
                        if seq > durable {
                            break Stop::Enough;
                        }
                        if seq <= self.last_seq {
                            break Stop::End;
                        }
                        out.push((seq, payload.to_vec()));
                        self.last_seq = seq;
                        pos += len;
                    }
                    // The buffer ends inside a frame: read on from it.
                    record::Parsed::Incomplete(total) if got == want => break Stop::More(total),
                    record::Parsed::Incomplete(_) | record::Parsed::Invalid => break Stop::End,
                }
            };
            self.offset += pos as u64;
            match stop {
                Stop::Enough => return Ok(false),
                Stop::End => return Ok(true),
                Stop::More(total) => want = CHUNK.max(total),
            }
        }
    }

    /// Moves to the segment after the current one; false if there is none.
    fn next_segment(&mut self) -> bool {
        let after = self
            .segment
            .as_ref()
            .map_or(Bound::Unbounded, |(first, _)| Bound::Excluded(*first));
        let next = self
            .files
            .segments()
            .range((after, Bound::Unbounded))
            .next()
            .map(|(first, _)| *first);
        match next {
            Some(first) => {
                self.segment = Some((first, None));
                self.offset = 0;
                true
            }
            None => false,
        }
    }
}

/// Why reading a segment stopped.
enum Stop {
    /// Enough records, or everything durable.
    Enough,
    /// The valid end of the segment.
    End,
    /// A frame of this size continues past the buffer.
    More(usize),
}

/// Reads into `buf` from `offset` until it is full or the file ends.
fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
