//! Reads the video track of a progressive MP4 into a sample table.
//!
//! Only what the camera simulator needs: one video track (avc1/avc3 or
//! hvc1/hev1), no B-frames required (a `ctts` box is ignored, so clips with
//! reordering would be sent in decode order with decode timestamps). Input is
//! untrusted: every size is checked, nothing panics (fuzzed).

use crate::h26x::{DecoderConfig, H26xError};

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("box '{0}' is truncated or has a bad size")]
    BadBox(String),
    #[error("no video track (avc1/hvc1) found")]
    NoVideo,
    #[error("missing required box '{0}'")]
    Missing(&'static str),
    #[error("sample table is inconsistent: {0}")]
    BadTable(&'static str),
    #[error("decoder configuration: {0}")]
    Config(#[from] H26xError),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClipSample {
    /// Byte range of the sample in the file.
    pub offset: u64,
    pub size: u32,
    /// Decode time and duration in 90 kHz units.
    pub time_90k: i64,
    pub duration_90k: u32,
    pub key: bool,
}

#[derive(Clone, Debug)]
pub struct Clip {
    pub config: DecoderConfig,
    /// The whole sample entry box (`avc1`/`hvc1` …), as an MP4 writer would reuse it.
    pub sample_entry: Vec<u8>,
    pub width: u16,
    pub height: u16,
    pub samples: Vec<ClipSample>,
}

impl Clip {
    pub fn duration_90k(&self) -> i64 {
        self.samples
            .last()
            .map(|s| s.time_90k + i64::from(s.duration_90k))
            .unwrap_or(0)
    }
}

/// Iterates the boxes in `data` as (type, body).
fn boxes(mut data: &[u8]) -> impl Iterator<Item = Result<([u8; 4], &[u8]), ReadError>> {
    std::iter::from_fn(move || {
        if data.is_empty() {
            return None;
        }
        let bad = |t: &[u8]| ReadError::BadBox(String::from_utf8_lossy(t).into_owned());
        if data.len() < 8 {
            data = &[];
            return Some(Err(bad(b"????")));
        }
        let size32 = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as u64;
        let typ = [data[4], data[5], data[6], data[7]];
        let (header, size) = match size32 {
            0 => (8, data.len() as u64),
            1 => {
                if data.len() < 16 {
                    data = &[];
                    return Some(Err(bad(&typ)));
                }
                (
                    16,
                    u64::from_be_bytes(data[8..16].try_into().expect("8 bytes")),
                )
            }
            n => (8, n),
        };
        if size < header || size > data.len() as u64 {
            data = &[];
            return Some(Err(bad(&typ)));
        }
        let body = &data[header as usize..size as usize];
        data = &data[size as usize..];
        Some(Ok((typ, body)))
    })
}

fn find<'a>(data: &'a [u8], typ: &[u8; 4]) -> Result<Option<&'a [u8]>, ReadError> {
    for b in boxes(data) {
        let (t, body) = b?;
        if &t == typ {
            return Ok(Some(body));
        }
    }
    Ok(None)
}

fn need<'a>(
    data: &'a [u8],
    typ: &'static [u8; 4],
    name: &'static str,
) -> Result<&'a [u8], ReadError> {
    find(data, typ)?.ok_or(ReadError::Missing(name))
}

fn be32(b: &[u8], at: usize) -> Result<u32, ReadError> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes(s.try_into().expect("4 bytes")))
        .ok_or(ReadError::BadTable("table shorter than its entry count"))
}

fn be64(b: &[u8], at: usize) -> Result<u64, ReadError> {
    b.get(at..at + 8)
        .map(|s| u64::from_be_bytes(s.try_into().expect("8 bytes")))
        .ok_or(ReadError::BadTable("table shorter than its entry count"))
}

/// Guards allocations driven by entry counts in the file.
fn count(b: &[u8], at: usize, entry_size: usize) -> Result<usize, ReadError> {
    let n = be32(b, at)? as usize;
    if n.saturating_mul(entry_size) > b.len() {
        return Err(ReadError::BadTable("entry count larger than the box"));
    }
    Ok(n)
}

/// Parses a whole MP4 file held in memory.
pub fn parse(file: &[u8]) -> Result<Clip, ReadError> {
    let moov = need(file, b"moov", "moov")?;
    for t in boxes(moov) {
        let (typ, trak) = t?;
        if &typ != b"trak" {
            continue;
        }
        let mdia = need(trak, b"mdia", "mdia")?;
        let hdlr = need(mdia, b"hdlr", "hdlr")?;
        if hdlr.get(8..12) != Some(b"vide") {
            continue;
        }
        let mdhd = need(mdia, b"mdhd", "mdhd")?;
        let timescale = match mdhd.first() {
            Some(1) => be32(mdhd, 20)?,
            _ => be32(mdhd, 12)?,
        };
        if timescale == 0 {
            return Err(ReadError::BadTable("zero timescale"));
        }
        let stbl = need(need(mdia, b"minf", "minf")?, b"stbl", "stbl")?;
        return parse_stbl(stbl, timescale);
    }
    Err(ReadError::NoVideo)
}

fn parse_stbl(stbl: &[u8], timescale: u32) -> Result<Clip, ReadError> {
    let stsd = need(stbl, b"stsd", "stsd")?;
    let entries = stsd.get(8..).ok_or(ReadError::BadTable("stsd"))?;
    let (entry_typ, entry) = boxes(entries)
        .next()
        .ok_or(ReadError::Missing("sample entry"))??;
    let entry_len = 8 + entry.len();
    let sample_entry = entries
        .get(..entry_len)
        .ok_or(ReadError::BadTable("stsd"))?
        .to_vec();
    // VisualSampleEntry: 6 reserved + 2 dref index + 16 predefined/reserved, then
    // width, height; child boxes start after the 78-byte fixed part.
    let width = u16::from_be_bytes([
        *entry.get(24).ok_or(ReadError::BadTable("stsd"))?,
        entry[25],
    ]);
    let height = u16::from_be_bytes([
        *entry.get(26).ok_or(ReadError::BadTable("stsd"))?,
        entry[27],
    ]);
    let children = entry
        .get(78..)
        .ok_or(ReadError::BadTable("sample entry too short"))?;
    let config = match &entry_typ {
        b"avc1" | b"avc3" => DecoderConfig::parse_avcc(need(children, b"avcC", "avcC")?)?,
        b"hvc1" | b"hev1" => DecoderConfig::parse_hvcc(need(children, b"hvcC", "hvcC")?)?,
        _ => return Err(ReadError::NoVideo),
    };

    let stsz = need(stbl, b"stsz", "stsz")?;
    let uniform = be32(stsz, 4)?;
    let n = if uniform == 0 {
        count(stsz, 8, 4)?
    } else {
        be32(stsz, 8)? as usize
    };
    if uniform != 0 && n > 100_000_000 {
        return Err(ReadError::BadTable("absurd sample count"));
    }
    let mut sizes = Vec::with_capacity(n);
    for i in 0..n {
        sizes.push(if uniform != 0 {
            uniform
        } else {
            be32(stsz, 12 + 4 * i)?
        });
    }

    let stts = need(stbl, b"stts", "stts")?;
    let mut durations = Vec::with_capacity(n);
    for i in 0..count(stts, 4, 8)? {
        let (c, d) = (be32(stts, 8 + 8 * i)?, be32(stts, 12 + 8 * i)?);
        for _ in 0..c {
            if durations.len() == n {
                break;
            }
            durations.push(u64::from(d));
        }
    }
    if durations.len() != n {
        return Err(ReadError::BadTable("stts covers fewer samples than stsz"));
    }

    let chunk_offsets: Vec<u64> = if let Some(stco) = find(stbl, b"stco")? {
        (0..count(stco, 4, 4)?)
            .map(|i| be32(stco, 8 + 4 * i).map(u64::from))
            .collect::<Result<_, _>>()?
    } else {
        let co64 = need(stbl, b"co64", "stco/co64")?;
        (0..count(co64, 4, 8)?)
            .map(|i| be64(co64, 8 + 8 * i))
            .collect::<Result<_, _>>()?
    };

    let stsc = need(stbl, b"stsc", "stsc")?;
    let stsc_n = count(stsc, 4, 12)?;
    let mut offsets = Vec::with_capacity(n);
    for e in 0..stsc_n {
        let first = be32(stsc, 8 + 12 * e)? as usize;
        let per = be32(stsc, 12 + 12 * e)? as usize;
        let last = if e + 1 < stsc_n {
            be32(stsc, 8 + 12 * (e + 1))? as usize
        } else {
            chunk_offsets.len() + 1
        };
        if first == 0 || last < first {
            return Err(ReadError::BadTable("stsc"));
        }
        for chunk in first..last {
            let mut off = *chunk_offsets
                .get(chunk - 1)
                .ok_or(ReadError::BadTable("stsc names a missing chunk"))?;
            for _ in 0..per {
                let Some(&size) = sizes.get(offsets.len()) else {
                    break;
                };
                offsets.push(off);
                off += u64::from(size);
            }
        }
    }
    if offsets.len() != n {
        return Err(ReadError::BadTable("chunks cover fewer samples than stsz"));
    }

    let keys: Option<Vec<u32>> = match find(stbl, b"stss")? {
        Some(stss) => Some(
            (0..count(stss, 4, 4)?)
                .map(|i| be32(stss, 8 + 4 * i))
                .collect::<Result<_, _>>()?,
        ),
        None => None,
    };

    let mut samples = Vec::with_capacity(n);
    let mut t: u64 = 0;
    for i in 0..n {
        let to90k = |v: u64| (u128::from(v) * 90_000 / u128::from(timescale)) as i64;
        let start = to90k(t);
        t += durations[i];
        let end = to90k(t);
        samples.push(ClipSample {
            offset: offsets[i],
            size: sizes[i],
            time_90k: start,
            duration_90k: u32::try_from(end - start)
                .map_err(|_| ReadError::BadTable("duration"))?,
            key: keys
                .as_ref()
                .is_none_or(|k| k.binary_search(&(i as u32 + 1)).is_ok()),
        });
    }
    Ok(Clip {
        config,
        sample_entry,
        width,
        height,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error() {
        assert!(parse(b"").is_err());
        assert!(parse(&[0, 0, 0, 9, b'm', b'o', b'o', b'v']).is_err());
        let mut huge = vec![0, 0, 0, 16, b'm', b'o', b'o', b'v', 0, 0, 0, 8];
        huge.extend_from_slice(b"trak");
        assert!(parse(&huge).is_err());
    }
}
