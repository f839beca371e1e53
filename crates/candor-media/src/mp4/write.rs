//! Builds a standard, progressive MP4 (`ftyp`, `moov`, then `mdat`) for export.
//!
//! The caller describes the samples; this module lays out the header so that the
//! sample bytes can be streamed straight after it, in order, with no seeking and
//! no transcoding. Because the whole `moov` is computed from the index before any
//! sample is read, the first byte of an export is available at once.

use crate::Time90k;

/// One sample of the output, in decode (= presentation, no B-frames) order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanSample {
    pub size: u32,
    pub duration_90k: u32,
    pub key: bool,
    /// 1-based index into [`Mp4Plan::sample_entries`].
    pub entry: u32,
}

#[derive(Clone, Debug)]
pub struct Mp4Plan {
    /// Complete sample entry boxes (`avc1`/`hvc1` with their `avcC`/`hvcC`).
    pub sample_entries: Vec<Vec<u8>>,
    pub width: u16,
    pub height: u16,
    pub samples: Vec<PlanSample>,
    /// Sample indexes at which a new chunk starts; must begin with 0 and be increasing.
    /// Export starts a chunk per recorded segment.
    pub chunk_starts: Vec<usize>,
    /// How far into the first sample's media time presentation begins. Frames before
    /// it are decoded (they are needed from the key frame on) but hidden by the edit list.
    pub edit_start_90k: u64,
    /// Presented duration; the last sample is cut by the edit list so the file ends
    /// exactly here.
    pub edit_duration_90k: u64,
    pub creation_time: Time90k,
}

pub(super) const TIMESCALE: u32 = 90_000;
/// Seconds from 1904-01-01 (the MP4 epoch) to 1970-01-01.
const MP4_EPOCH_OFFSET: i64 = 2_082_844_800;

pub(super) fn bx(buf: &mut Vec<u8>, typ: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0, 0, 0, 0]);
    buf.extend_from_slice(typ);
    body(buf);
    let len = u32::try_from(buf.len() - start).expect("header boxes are far below 4 GiB");
    buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

pub(super) fn full(buf: &mut Vec<u8>, version: u8, flags: u32) {
    buf.extend_from_slice(&(u32::from(version) << 24 | flags).to_be_bytes());
}

pub(super) fn u16b(buf: &mut Vec<u8>, v: u16) {
    buf.extend_from_slice(&v.to_be_bytes());
}
pub(super) fn u32b(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_be_bytes());
}
pub(super) fn u64b(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_be_bytes());
}

/// `hdlr` for a video track.
pub(super) fn video_hdlr(b: &mut Vec<u8>, name: &[u8]) {
    bx(b, b"hdlr", |b| {
        full(b, 0, 0);
        u32b(b, 0);
        b.extend_from_slice(b"vide");
        b.extend_from_slice(&[0; 12]);
        b.extend_from_slice(name);
    });
}

/// `vmhd` and a `dinf` saying the data is in this file: the fixed start of a
/// video track's `minf`.
pub(super) fn vmhd_dinf(b: &mut Vec<u8>) {
    bx(b, b"vmhd", |b| {
        full(b, 0, 1);
        b.extend_from_slice(&[0; 8]);
    });
    bx(b, b"dinf", |b| {
        bx(b, b"dref", |b| {
            full(b, 0, 0);
            u32b(b, 1);
            bx(b, b"url ", |b| full(b, 0, 1)); // data in this file
        });
    });
}

pub(super) const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

impl Mp4Plan {
    pub fn mdat_body_len(&self) -> u64 {
        self.samples.iter().map(|s| u64::from(s.size)).sum()
    }

    fn mdat_header_len(&self) -> u64 {
        if self.mdat_body_len() + 8 > u64::from(u32::MAX) {
            16
        } else {
            8
        }
    }

    /// `ftyp` + `moov` + the `mdat` header. Sample bytes follow it directly.
    pub fn header(&self) -> Vec<u8> {
        // The layout is fixed once we know whether 32-bit chunk offsets suffice,
        // so build once to learn the header's length and once with real offsets.
        let probe = self.build(0, true);
        let fits32 = probe.len() as u64 + self.mdat_body_len() <= u64::from(u32::MAX);
        let probe = if fits32 { probe } else { self.build(0, false) };
        let out = self.build(probe.len() as u64, fits32);
        debug_assert_eq!(out.len(), probe.len());
        out
    }

    pub fn total_len(&self) -> u64 {
        self.header().len() as u64 + self.mdat_body_len()
    }

    fn build(&self, data_start: u64, stco32: bool) -> Vec<u8> {
        let media_duration: u64 = self.samples.iter().map(|s| u64::from(s.duration_90k)).sum();
        let ctime = (self.creation_time.0 / 90_000 + MP4_EPOCH_OFFSET).max(0) as u64;
        let is_h264 = self
            .sample_entries
            .iter()
            .any(|e| e.get(4..8) == Some(b"avc1"));
        let mut b = Vec::with_capacity(1024 + self.samples.len() * 12);
        bx(&mut b, b"ftyp", |b| {
            b.extend_from_slice(b"isom");
            u32b(b, 0x200);
            b.extend_from_slice(b"isomiso2mp41");
            if is_h264 {
                b.extend_from_slice(b"avc1");
            }
        });
        bx(&mut b, b"moov", |b| {
            bx(b, b"mvhd", |b| {
                full(b, 1, 0);
                u64b(b, ctime);
                u64b(b, ctime);
                u32b(b, TIMESCALE);
                u64b(b, self.edit_duration_90k);
                u32b(b, 0x0001_0000); // rate 1.0
                u16b(b, 0x0100); // volume 1.0
                b.extend_from_slice(&[0; 10]);
                MATRIX.iter().for_each(|&m| u32b(b, m));
                b.extend_from_slice(&[0; 24]); // pre_defined
                u32b(b, 2); // next_track_ID
            });
            bx(b, b"trak", |b| {
                bx(b, b"tkhd", |b| {
                    full(b, 1, 0x3); // enabled, in movie
                    u64b(b, ctime);
                    u64b(b, ctime);
                    u32b(b, 1); // track_ID
                    u32b(b, 0);
                    u64b(b, self.edit_duration_90k);
                    b.extend_from_slice(&[0; 8]);
                    u16b(b, 0); // layer
                    u16b(b, 0); // alternate_group
                    u16b(b, 0); // volume: 0 for video
                    u16b(b, 0);
                    MATRIX.iter().for_each(|&m| u32b(b, m));
                    u32b(b, u32::from(self.width) << 16);
                    u32b(b, u32::from(self.height) << 16);
                });
                bx(b, b"edts", |b| {
                    bx(b, b"elst", |b| {
                        full(b, 1, 0);
                        u32b(b, 1);
                        u64b(b, self.edit_duration_90k);
                        u64b(b, self.edit_start_90k);
                        u32b(b, 0x0001_0000); // media_rate 1.0
                    });
                });
                bx(b, b"mdia", |b| {
                    bx(b, b"mdhd", |b| {
                        full(b, 1, 0);
                        u64b(b, ctime);
                        u64b(b, ctime);
                        u32b(b, TIMESCALE);
                        u64b(b, media_duration);
                        u16b(b, 0x55c4); // language "und"
                        u16b(b, 0);
                    });
                    video_hdlr(b, b"Candor video\0");
                    bx(b, b"minf", |b| {
                        vmhd_dinf(b);
                        bx(b, b"stbl", |b| self.stbl(b, data_start, stco32));
                    });
                });
            });
        });
        let body = self.mdat_body_len();
        if self.mdat_header_len() == 16 {
            u32b(&mut b, 1);
            b.extend_from_slice(b"mdat");
            u64b(&mut b, body + 16);
        } else {
            u32b(&mut b, (body + 8) as u32);
            b.extend_from_slice(b"mdat");
        }
        b
    }

    fn stbl(&self, b: &mut Vec<u8>, data_start: u64, stco32: bool) {
        bx(b, b"stsd", |b| {
            full(b, 0, 0);
            u32b(b, self.sample_entries.len() as u32);
            self.sample_entries
                .iter()
                .for_each(|e| b.extend_from_slice(e));
        });
        bx(b, b"stts", |b| {
            full(b, 0, 0);
            let mut runs: Vec<(u32, u32)> = Vec::new();
            for s in &self.samples {
                match runs.last_mut() {
                    Some((n, d)) if *d == s.duration_90k => *n += 1,
                    _ => runs.push((1, s.duration_90k)),
                }
            }
            u32b(b, runs.len() as u32);
            for (n, d) in runs {
                u32b(b, n);
                u32b(b, d);
            }
        });
        if !self.samples.iter().all(|s| s.key) {
            bx(b, b"stss", |b| {
                full(b, 0, 0);
                let keys: Vec<u32> = (0..self.samples.len())
                    .filter(|&i| self.samples[i].key)
                    .map(|i| i as u32 + 1)
                    .collect();
                u32b(b, keys.len() as u32);
                keys.iter().for_each(|&k| u32b(b, k));
            });
        }
        bx(b, b"stsz", |b| {
            full(b, 0, 0);
            u32b(b, 0);
            u32b(b, self.samples.len() as u32);
            self.samples.iter().for_each(|s| u32b(b, s.size));
        });
        // Chunks: split at the caller's boundaries and wherever the sample entry changes.
        let mut chunks: Vec<(usize, usize)> = Vec::new(); // (first sample, count)
        for (i, s) in self.samples.iter().enumerate() {
            let boundary = self.chunk_starts.binary_search(&i).is_ok()
                || i == 0
                || self.samples[i - 1].entry != s.entry;
            if boundary {
                chunks.push((i, 1));
            } else if let Some(c) = chunks.last_mut() {
                c.1 += 1;
            }
        }
        bx(b, b"stsc", |b| {
            full(b, 0, 0);
            let mut entries: Vec<(u32, u32, u32)> = Vec::new();
            for (ci, &(first, n)) in chunks.iter().enumerate() {
                let e = self.samples[first].entry;
                match entries.last() {
                    Some(&(_, pn, pe)) if pn == n as u32 && pe == e => {}
                    _ => entries.push((ci as u32 + 1, n as u32, e)),
                }
            }
            u32b(b, entries.len() as u32);
            for (c, n, e) in entries {
                u32b(b, c);
                u32b(b, n);
                u32b(b, e);
            }
        });
        let mut offsets = Vec::with_capacity(chunks.len());
        let mut pos = data_start;
        let mut next = 0;
        for (i, s) in self.samples.iter().enumerate() {
            if next < chunks.len() && chunks[next].0 == i {
                offsets.push(pos);
                next += 1;
            }
            pos += u64::from(s.size);
        }
        if stco32 {
            bx(b, b"stco", |b| {
                full(b, 0, 0);
                u32b(b, offsets.len() as u32);
                offsets.iter().for_each(|&o| u32b(b, o as u32));
            });
        } else {
            bx(b, b"co64", |b| {
                full(b, 0, 0);
                u32b(b, offsets.len() as u32);
                offsets.iter().for_each(|&o| u64b(b, o));
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mp4::read;

    fn avc1_entry() -> Vec<u8> {
        let avcc = [
            1u8, 0x4d, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x4d, 0, 0x1f, 1, 0, 2, 0x68, 0xee,
        ];
        let mut e = Vec::new();
        bx(&mut e, b"avc1", |b| {
            b.extend_from_slice(&[0; 6]);
            u16b(b, 1);
            b.extend_from_slice(&[0; 16]);
            u16b(b, 640);
            u16b(b, 480);
            b.extend_from_slice(&[0; 50]);
            bx(b, b"avcC", |b| b.extend_from_slice(&avcc));
        });
        e
    }

    #[test]
    fn header_offsets_point_at_streamed_samples() {
        let samples: Vec<PlanSample> = (0..25)
            .map(|i| PlanSample {
                size: 100 + i,
                duration_90k: 9000,
                key: i % 10 == 0,
                entry: 1,
            })
            .collect();
        let plan = Mp4Plan {
            sample_entries: vec![avc1_entry()],
            width: 640,
            height: 480,
            samples: samples.clone(),
            chunk_starts: vec![0, 10, 20],
            edit_start_90k: 4500,
            edit_duration_90k: 200_000,
            creation_time: Time90k(0),
        };
        let mut file = plan.header();
        assert_eq!(file.len() as u64 + plan.mdat_body_len(), plan.total_len());
        for (i, s) in samples.iter().enumerate() {
            file.extend(std::iter::repeat_n(i as u8, s.size as usize));
        }
        let clip = read::parse(&file).unwrap();
        assert_eq!(clip.samples.len(), 25);
        for (i, s) in clip.samples.iter().enumerate() {
            assert_eq!(s.size, samples[i].size);
            assert_eq!(s.key, samples[i].key);
            assert_eq!(file[s.offset as usize], i as u8, "sample {i} offset");
            assert_eq!(s.time_90k, 9000 * i as i64);
        }
        assert_eq!((clip.width, clip.height), (640, 480));
    }
}
