//! Fragmented MP4 for live view: one init segment (`ftyp` + `moov` with
//! `mvex`), then one `moof` + `mdat` per frame, which Media Source Extensions
//! append as they arrive.
//!
//! One frame per fragment keeps the server's added latency to the time it
//! takes to write ~100 bytes of header; a GOP per fragment would add up to a
//! GOP of delay. The frame's duration is not known until the next frame
//! arrives, so the caller passes the previous inter-frame interval as an
//! estimate; each fragment's `tfdt` carries the true decode time, so an
//! estimate never accumulates drift.

use super::write::{MATRIX, TIMESCALE, bx, full, u16b, u32b, u64b, video_hdlr, vmhd_dinf};

/// `ftyp` + `moov` for one video track whose samples all use `sample_entry`
/// (a complete `avc1`/`hvc1` box).
pub fn init_segment(sample_entry: &[u8], width: u16, height: u16) -> Vec<u8> {
    let mut b = Vec::with_capacity(sample_entry.len() + 700);
    bx(&mut b, b"ftyp", |b| {
        b.extend_from_slice(b"iso5");
        u32b(b, 0x200);
        b.extend_from_slice(b"iso5iso6mp41");
    });
    bx(&mut b, b"moov", |b| {
        bx(b, b"mvhd", |b| {
            full(b, 0, 0);
            u32b(b, 0);
            u32b(b, 0);
            u32b(b, TIMESCALE);
            u32b(b, 0); // duration: unknown, live
            u32b(b, 0x0001_0000);
            u16b(b, 0x0100);
            b.extend_from_slice(&[0; 10]);
            MATRIX.iter().for_each(|&m| u32b(b, m));
            b.extend_from_slice(&[0; 24]);
            u32b(b, 2);
        });
        bx(b, b"trak", |b| {
            bx(b, b"tkhd", |b| {
                full(b, 0, 0x3);
                u32b(b, 0);
                u32b(b, 0);
                u32b(b, 1);
                u32b(b, 0);
                u32b(b, 0);
                b.extend_from_slice(&[0; 8]);
                u16b(b, 0);
                u16b(b, 0);
                u16b(b, 0);
                u16b(b, 0);
                MATRIX.iter().for_each(|&m| u32b(b, m));
                u32b(b, u32::from(width) << 16);
                u32b(b, u32::from(height) << 16);
            });
            bx(b, b"mdia", |b| {
                bx(b, b"mdhd", |b| {
                    full(b, 0, 0);
                    u32b(b, 0);
                    u32b(b, 0);
                    u32b(b, TIMESCALE);
                    u32b(b, 0);
                    u16b(b, 0x55c4);
                    u16b(b, 0);
                });
                video_hdlr(b, b"Candor live\0");
                bx(b, b"minf", |b| {
                    vmhd_dinf(b);
                    bx(b, b"stbl", |b| {
                        bx(b, b"stsd", |b| {
                            full(b, 0, 0);
                            u32b(b, 1);
                            b.extend_from_slice(sample_entry);
                        });
                        for t in [b"stts", b"stsc", b"stco"] {
                            bx(b, t, |b| {
                                full(b, 0, 0);
                                u32b(b, 0);
                            });
                        }
                        bx(b, b"stsz", |b| {
                            full(b, 0, 0);
                            u32b(b, 0);
                            u32b(b, 0);
                        });
                    });
                });
            });
        });
        bx(b, b"mvex", |b| {
            bx(b, b"trex", |b| {
                full(b, 0, 0);
                u32b(b, 1); // track_ID
                u32b(b, 1); // default sample description index
                u32b(b, 0);
                u32b(b, 0);
                u32b(b, 0);
            });
        });
    });
    b
}

/// Sample flags (ISO 14496-12 8.8.3.1): a sync sample depends on nothing;
/// any other sample depends on others and is a "non-sync sample".
const KEY_FLAGS: u32 = 0x0200_0000;
const DELTA_FLAGS: u32 = 0x0101_0000;

/// Length of the `moof` + `mdat` header that [`fragment_header`] writes.
pub const FRAGMENT_HEADER_LEN: usize = 8 + 16 + 8 + 16 + 20 + 32 + 8;

/// The `moof` and the `mdat` header for one frame; the frame's bytes
/// (length-prefixed NAL units, as stored) follow directly.
pub fn fragment_header(
    sequence: u32,
    decode_time_90k: u64,
    duration_90k: u32,
    key: bool,
    size: u32,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(FRAGMENT_HEADER_LEN);
    bx(&mut b, b"moof", |b| {
        bx(b, b"mfhd", |b| {
            full(b, 0, 0);
            u32b(b, sequence);
        });
        bx(b, b"traf", |b| {
            // default-base-is-moof: data offsets count from this moof.
            bx(b, b"tfhd", |b| {
                full(b, 0, 0x02_0000);
                u32b(b, 1);
            });
            bx(b, b"tfdt", |b| {
                full(b, 1, 0);
                u64b(b, decode_time_90k);
            });
            // data-offset, sample-duration, sample-size and sample-flags present.
            bx(b, b"trun", |b| {
                full(b, 0, 0x0001 | 0x0100 | 0x0200 | 0x0400);
                u32b(b, 1);
                let moof_len = 8 + 16 + 8 + 16 + 20 + 32;
                u32b(b, moof_len + 8); // data starts after mdat's header
                u32b(b, duration_90k);
                u32b(b, size);
                u32b(b, if key { KEY_FLAGS } else { DELTA_FLAGS });
            });
        });
    });
    u32b(&mut b, size + 8);
    b.extend_from_slice(b"mdat");
    debug_assert_eq!(b.len(), FRAGMENT_HEADER_LEN);
    b
}

/// The sample entry's type (`avc1`, `hvc1`…) and its decoder configuration
/// box body (`avcC`/`hvcC`).
fn config_box(sample_entry: &[u8]) -> Option<(&[u8], &[u8])> {
    let typ = sample_entry.get(4..8)?;
    // Visual sample entry: 8 header + 78 fixed bytes, then child boxes.
    let mut children = sample_entry.get(86..)?;
    while children.len() >= 8 {
        let len = u32::from_be_bytes(children[..4].try_into().ok()?) as usize;
        if len < 8 || len > children.len() {
            return None;
        }
        let (name, body) = (&children[4..8], &children[8..len]);
        match (typ, name) {
            (b"avc1" | b"avc3", b"avcC") | (b"hvc1" | b"hev1", b"hvcC") => {
                return Some((typ, body));
            }
            _ => {}
        }
        children = &children[len..];
    }
    None
}

/// The parameter sets and NAL framing of an `avc1`/`hvc1` sample entry, as a
/// decoder needs them.
pub fn decoder_config(sample_entry: &[u8]) -> Option<crate::h26x::DecoderConfig> {
    let (typ, body) = config_box(sample_entry)?;
    match typ {
        b"avc1" | b"avc3" => crate::h26x::DecoderConfig::parse_avcc(body).ok(),
        _ => crate::h26x::DecoderConfig::parse_hvcc(body).ok(),
    }
}

/// The RFC 6381 `codecs` parameter for an `avc1`/`hvc1` sample entry, as MSE's
/// `isTypeSupported` wants it, or `None` if the entry is not understood.
pub fn rfc6381_codec(sample_entry: &[u8]) -> Option<String> {
    let (typ, body) = config_box(sample_entry)?;
    match typ {
        b"avc1" | b"avc3" if body.len() >= 4 => Some(format!(
            "{}.{:02x}{:02x}{:02x}",
            std::str::from_utf8(typ).ok()?,
            body[1],
            body[2],
            body[3]
        )),
        b"hvc1" | b"hev1" if body.len() >= 13 => {
            // ISO 14496-15 E.3: profile space+idc, compatibility flags
            // (bit-reversed, hex, trailing zeros dropped), tier+level,
            // constraint bytes (trailing zero bytes dropped).
            let space = ["", "A", "B", "C"][usize::from(body[1] >> 6)];
            let tier = if body[1] & 0x20 != 0 { 'H' } else { 'L' };
            let idc = body[1] & 0x1f;
            let compat = u32::from_be_bytes(body[2..6].try_into().ok()?).reverse_bits();
            let mut s = format!(
                "{}.{space}{idc}.{compat:x}.{tier}{}",
                std::str::from_utf8(typ).ok()?,
                body[12]
            );
            let cons = &body[6..12];
            let n = cons.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
            for c in &cons[..n] {
                s.push_str(&format!(".{c:02X}"));
            }
            Some(s)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(typ: &[u8; 4], child: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut e = Vec::new();
        bx(&mut e, typ, |b| {
            b.extend_from_slice(&[0; 78]);
            bx(b, child, |b| b.extend_from_slice(body));
        });
        e
    }

    #[test]
    fn codec_strings_match_what_browsers_expect() {
        let avc = entry(b"avc1", b"avcC", &[1, 0x64, 0x00, 0x28, 0xff]);
        assert_eq!(rfc6381_codec(&avc).as_deref(), Some("avc1.640028"));
        // Main profile, level 4.0 (120), compat flags 0x60000000, progressive+frame-only.
        let mut hvcc = vec![1, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 120];
        hvcc.extend_from_slice(&[0; 10]);
        let hev = entry(b"hvc1", b"hvcC", &hvcc);
        assert_eq!(rfc6381_codec(&hev).as_deref(), Some("hvc1.1.6.L120.90"));
        assert_eq!(rfc6381_codec(b"garbage"), None);
    }

    #[test]
    fn fragment_offsets_point_past_the_mdat_header() {
        let h = fragment_header(7, 123_456, 3000, true, 1000);
        assert_eq!(h.len(), FRAGMENT_HEADER_LEN);
        let moof_len = u32::from_be_bytes(h[0..4].try_into().unwrap()) as usize;
        assert_eq!(&h[moof_len + 4..moof_len + 8], b"mdat");
        // trun's data_offset is the last-but-three u32 of the moof.
        let off = u32::from_be_bytes(h[moof_len - 16..moof_len - 12].try_into().unwrap());
        assert_eq!(off as usize, moof_len + 8);
    }
}
