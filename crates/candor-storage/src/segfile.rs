//! The segment file: an append-only log of one camera's frames.
//!
//! ```text
//! header:  "CNDRSEG1" | segment id i64 | camera id i64 | start_90k i64 |
//!          entry_len u16 | sample entry bytes | crc32 u32 (of all before it)
//! record:  size u32 | pts u32 | flags u32 | crc32 u32 | payload[size]
//! ```
//! All integers little-endian. `pts` is media time (90 kHz, the camera's
//! clock) since the segment's first frame; flag bit 0 marks a key frame; the
//! record CRC covers the first 12 header bytes and the payload.
//!
//! A record is appended with one `write(2)`, so after `kill -9` the file ends
//! in whole records, or in one torn record that recovery truncates (its CRC or
//! length fails). The file alone can rebuild its index row; see
//! `docs/design/storage.md`.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

pub const MAGIC: &[u8; 8] = b"CNDRSEG1";
pub const RECORD_HEADER: u64 = 16;
/// Larger frames are treated as corruption: a 4K H.265 I-frame is a few MB.
pub const MAX_FRAME: u32 = 64 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub segment_id: i64,
    pub camera_id: i64,
    pub start_90k: i64,
    pub sample_entry: Vec<u8>,
}

impl Header {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(40 + self.sample_entry.len());
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&self.segment_id.to_le_bytes());
        b.extend_from_slice(&self.camera_id.to_le_bytes());
        b.extend_from_slice(&self.start_90k.to_le_bytes());
        b.extend_from_slice(&(self.sample_entry.len() as u16).to_le_bytes());
        b.extend_from_slice(&self.sample_entry);
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn encoded_len(&self) -> u64 {
        8 + 24 + 2 + self.sample_entry.len() as u64 + 4
    }
}

/// Builds the 16-byte record header for a frame.
pub fn record_header(payload: &[u8], pts: u32, key: bool) -> [u8; 16] {
    record_header_pieces(&[payload], pts, key)
}

/// The record header for a frame held in pieces, to be written in order
/// after it (one `writev`): the benchmark prices writing frames this way.
pub fn record_header_pieces<P: AsRef<[u8]>>(pieces: &[P], pts: u32, key: bool) -> [u8; 16] {
    let len: usize = pieces.iter().map(|p| p.as_ref().len()).sum();
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&(len as u32).to_le_bytes());
    h[4..8].copy_from_slice(&pts.to_le_bytes());
    h[8..12].copy_from_slice(&u32::from(key).to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h[0..12]);
    for p in pieces {
        crc.update(p.as_ref());
    }
    h[12..16].copy_from_slice(&crc.finalize().to_le_bytes());
    h
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// Offset of the payload in the file.
    pub offset: u64,
    pub size: u32,
    pub pts: u32,
    pub key: bool,
}

#[derive(Debug)]
pub struct Scan {
    pub header: Header,
    pub records: Vec<Record>,
    /// Length of the valid prefix: the file should be truncated to this.
    pub valid_len: u64,
    /// Bytes after `valid_len` (a torn or corrupt tail).
    pub trailing: u64,
}

fn read_header(r: &mut impl Read) -> io::Result<Header> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_owned());
    let mut fixed = [0u8; 34];
    r.read_exact(&mut fixed)?;
    if &fixed[0..8] != MAGIC {
        return Err(bad("not a Candor segment file (bad magic)"));
    }
    let i64at = |o: usize| i64::from_le_bytes(fixed[o..o + 8].try_into().expect("8 bytes"));
    let entry_len = usize::from(u16::from_le_bytes([fixed[32], fixed[33]]));
    let mut entry = vec![0u8; entry_len + 4];
    r.read_exact(&mut entry)?;
    let crc_stored = u32::from_le_bytes(entry[entry_len..].try_into().expect("4 bytes"));
    entry.truncate(entry_len);
    let mut h = crc32fast::Hasher::new();
    h.update(&fixed);
    h.update(&entry);
    if h.finalize() != crc_stored {
        return Err(bad("segment header checksum mismatch"));
    }
    Ok(Header {
        segment_id: i64at(8),
        camera_id: i64at(16),
        start_90k: i64at(24),
        sample_entry: entry,
    })
}

/// Reads a segment file's records.
///
/// With `verify`, payloads are read and checked against their CRC (recovery);
/// without, only headers are read and lengths checked against the file size,
/// which is what a reader of a segment still being written needs: a record
/// whose end lies within the file length has been fully written, because the
/// single writer appends records in order (a batch of them with one `writev`,
/// whose bytes land in order too).
pub fn scan(file: &File, verify: bool) -> io::Result<Scan> {
    let file_len = file.metadata()?.len();
    let mut r = BufReader::with_capacity(256 * 1024, file);
    r.seek(SeekFrom::Start(0))?;
    scan_reader(&mut r, file_len, verify)
}

/// [`scan`] over any buffered reader of `file_len` bytes, positioned at 0
/// (the fuzz target's entry point).
pub fn scan_reader<R: Read + Seek>(
    r: &mut BufReader<R>,
    file_len: u64,
    verify: bool,
) -> io::Result<Scan> {
    let header = read_header(r)?;
    let mut pos = header.encoded_len();
    let mut records = Vec::new();
    let mut payload = Vec::new();
    let mut prev_pts: Option<u32> = None;
    loop {
        if pos + RECORD_HEADER > file_len {
            break;
        }
        let mut h = [0u8; 16];
        if r.read_exact(&mut h).is_err() {
            break;
        }
        let size = u32::from_le_bytes(h[0..4].try_into().expect("4"));
        let pts = u32::from_le_bytes(h[4..8].try_into().expect("4"));
        let flags = u32::from_le_bytes(h[8..12].try_into().expect("4"));
        let crc = u32::from_le_bytes(h[12..16].try_into().expect("4"));
        let end = pos + RECORD_HEADER + u64::from(size);
        if size == 0
            || size > MAX_FRAME
            || end > file_len
            || flags > 1
            || prev_pts.is_some_and(|p| pts <= p)
        {
            break;
        }
        if verify {
            payload.resize(size as usize, 0);
            if r.read_exact(&mut payload).is_err() {
                break;
            }
            let mut c = crc32fast::Hasher::new();
            c.update(&h[0..12]);
            c.update(&payload);
            if c.finalize() != crc {
                break;
            }
        } else {
            // Within the buffer this moves a cursor; no syscall.
            r.seek_relative(i64::from(size))?;
        }
        records.push(Record {
            offset: pos + RECORD_HEADER,
            size,
            pts,
            key: flags & 1 == 1,
        });
        prev_pts = Some(pts);
        pos = end;
    }
    Ok(Scan {
        header,
        records,
        valid_len: pos,
        trailing: file_len - pos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_seg(path: &std::path::Path, frames: &[(&[u8], u32, bool)]) {
        let h = Header {
            segment_id: 7,
            camera_id: 1,
            start_90k: 123,
            sample_entry: vec![1, 2, 3],
        };
        let mut f = File::create(path).unwrap();
        f.write_all(&h.encode()).unwrap();
        for (p, pts, key) in frames {
            f.write_all(&record_header(p, *pts, *key)).unwrap();
            f.write_all(p).unwrap();
        }
    }

    #[test]
    fn a_header_over_pieces_is_the_header_over_their_concatenation() {
        let whole = record_header(b"abcdefgh", 9000, true);
        let pieces: [&[u8]; 4] = [b"abc", b"", b"defg", b"h"];
        assert_eq!(record_header_pieces(&pieces, 9000, true), whole);
        // The CRC covers the pieces in the order they are written.
        let swapped: [&[u8]; 2] = [b"defgh", b"abc"];
        assert_ne!(record_header_pieces(&swapped, 9000, true), whole);
    }

    #[test]
    fn torn_tail_is_cut_at_the_last_whole_record() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        write_seg(
            &p,
            &[
                (b"aaaa", 0, true),
                (b"bbbbbb", 3000, false),
                (b"cccccccc", 6000, false),
            ],
        );
        let full_len = std::fs::metadata(&p).unwrap().len();
        // Chop the last record mid-payload, as kill -9 during a write could.
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(full_len - 3).unwrap();
        let s = scan(&File::open(&p).unwrap(), true).unwrap();
        assert_eq!(s.records.len(), 2);
        assert_eq!(
            s.records[1],
            Record {
                offset: s.header.encoded_len() + 16 + 4 + 16,
                size: 6,
                pts: 3000,
                key: false
            }
        );
        assert_eq!(s.valid_len, full_len - (16 + 8));
        assert_eq!(s.trailing, 16 + 8 - 3);
    }

    #[test]
    fn flipped_payload_bit_is_detected_by_crc() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        write_seg(&p, &[(b"aaaa", 0, true), (b"bbbb", 3000, false)]);
        let mut bytes = std::fs::read(&p).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(
            scan(&File::open(&p).unwrap(), true).unwrap().records.len(),
            1
        );
        // A reader that trusts lengths only still sees both.
        assert_eq!(
            scan(&File::open(&p).unwrap(), false).unwrap().records.len(),
            2
        );
    }
}
