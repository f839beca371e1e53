//! H.264 / H.265 elementary-stream helpers: decoder configuration records
//! (`avcC`, `hvcC`), length-prefixed NAL iteration, SDP `fmtp` parameters and
//! RTP packetization (RFC 6184 for H.264, RFC 7798 for H.265).
//!
//! All parsers take untrusted bytes and return errors instead of panicking;
//! they are fuzzed (see `fuzz/`).

use crate::Codec;
use base64::Engine as _;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum H26xError {
    #[error("decoder configuration record is truncated")]
    Truncated,
    #[error("unsupported NAL length size {0}")]
    BadLengthSize(u8),
    #[error("NAL unit length {len} runs past the end of the sample ({remaining} bytes left)")]
    NalOverrun { len: usize, remaining: usize },
    #[error("decoder configuration record has no {0}")]
    Missing(&'static str),
}

/// Parameter sets and NAL framing taken from an `avcC` or `hvcC` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecoderConfig {
    pub codec: Codec,
    /// Bytes in each NAL length prefix of a sample (1, 2 or 4).
    pub length_size: u8,
    /// H.265 only.
    pub vps: Vec<Vec<u8>>,
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, H26xError> {
        let (&b, rest) = self.0.split_first().ok_or(H26xError::Truncated)?;
        self.0 = rest;
        Ok(b)
    }
    fn u16(&mut self) -> Result<u16, H26xError> {
        Ok(u16::from(self.u8()?) << 8 | u16::from(self.u8()?))
    }
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], H26xError> {
        if self.0.len() < n {
            return Err(H26xError::Truncated);
        }
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(b)
    }
}

fn length_size(b: u8) -> Result<u8, H26xError> {
    match (b & 0x3) + 1 {
        3 => Err(H26xError::BadLengthSize(3)),
        n => Ok(n),
    }
}

impl DecoderConfig {
    /// Parses an `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 5.3.3.1).
    pub fn parse_avcc(data: &[u8]) -> Result<Self, H26xError> {
        let mut r = Reader(data);
        r.bytes(4)?; // version, profile, compatibility, level
        let length_size = length_size(r.u8()?)?;
        let mut sps = Vec::new();
        for _ in 0..(r.u8()? & 0x1f) {
            let n = usize::from(r.u16()?);
            sps.push(r.bytes(n)?.to_vec());
        }
        let mut pps = Vec::new();
        for _ in 0..r.u8()? {
            let n = usize::from(r.u16()?);
            pps.push(r.bytes(n)?.to_vec());
        }
        if sps.is_empty() {
            return Err(H26xError::Missing("SPS"));
        }
        if pps.is_empty() {
            return Err(H26xError::Missing("PPS"));
        }
        Ok(DecoderConfig {
            codec: Codec::H264,
            length_size,
            vps: vec![],
            sps,
            pps,
        })
    }

    /// Parses an `HEVCDecoderConfigurationRecord` (ISO/IEC 14496-15 8.3.3.1).
    pub fn parse_hvcc(data: &[u8]) -> Result<Self, H26xError> {
        let mut r = Reader(data);
        r.bytes(21)?;
        let length_size = length_size(r.u8()?)?;
        let (mut vps, mut sps, mut pps) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..r.u8()? {
            let nal_type = r.u8()? & 0x3f;
            for _ in 0..r.u16()? {
                let n = usize::from(r.u16()?);
                let nal = r.bytes(n)?.to_vec();
                match nal_type {
                    32 => vps.push(nal),
                    33 => sps.push(nal),
                    34 => pps.push(nal),
                    _ => {} // SEI arrays and the like are not needed to decode.
                }
            }
        }
        for (v, what) in [(&vps, "VPS"), (&sps, "SPS"), (&pps, "PPS")] {
            if v.is_empty() {
                return Err(H26xError::Missing(what));
            }
        }
        Ok(DecoderConfig {
            codec: Codec::H265,
            length_size,
            vps,
            sps,
            pps,
        })
    }

    /// The parameter sets in the order a decoder wants them before a key frame.
    pub fn parameter_sets(&self) -> impl Iterator<Item = &[u8]> {
        self.vps
            .iter()
            .chain(&self.sps)
            .chain(&self.pps)
            .map(Vec::as_slice)
    }

    /// The SDP `a=fmtp` value for this stream (payload type not included).
    pub fn sdp_fmtp(&self) -> String {
        let b64 = |v: &[u8]| base64::engine::general_purpose::STANDARD.encode(v);
        match self.codec {
            Codec::H264 => {
                let sps = &self.sps[0];
                let pli = sps
                    .get(1..4)
                    .map(|b| format!("{:02X}{:02X}{:02X}", b[0], b[1], b[2]));
                let sets: Vec<String> = self.sps.iter().chain(&self.pps).map(|v| b64(v)).collect();
                format!(
                    "packetization-mode=1;{}sprop-parameter-sets={}",
                    pli.map(|p| format!("profile-level-id={p};"))
                        .unwrap_or_default(),
                    sets.join(",")
                )
            }
            Codec::H265 => format!(
                "sprop-vps={};sprop-sps={};sprop-pps={}",
                b64(&self.vps[0]),
                b64(&self.sps[0]),
                b64(&self.pps[0])
            ),
        }
    }
}

/// Iterates the NAL units of a length-prefixed (MP4-style) sample.
pub fn nals(sample: &[u8], length_size: u8) -> Nals<'_> {
    Nals {
        rest: sample,
        length_size: usize::from(length_size),
    }
}

pub struct Nals<'a> {
    rest: &'a [u8],
    length_size: usize,
}

impl<'a> Iterator for Nals<'a> {
    type Item = Result<&'a [u8], H26xError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        if self.rest.len() < self.length_size {
            self.rest = &[];
            return Some(Err(H26xError::Truncated));
        }
        let (len_bytes, rest) = self.rest.split_at(self.length_size);
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
        if len > rest.len() {
            self.rest = &[];
            return Some(Err(H26xError::NalOverrun {
                len,
                remaining: rest.len(),
            }));
        }
        let (nal, rest) = rest.split_at(len);
        self.rest = rest;
        Some(Ok(nal))
    }
}

/// Maximum RTP payload: keeps UDP datagrams (payload + 12 RTP + 8 UDP + 20 IP)
/// under a 1500-byte Ethernet MTU.
pub const MAX_RTP_PAYLOAD: usize = 1400;

/// Splits one access unit (a list of NAL units) into RTP payloads, in order.
/// The caller sets the marker bit on the last one.
///
/// NALs that fit are sent as single-NAL packets; larger ones as fragmentation
/// units (FU-A, RFC 6184 5.8; FU, RFC 7798 4.4.3). Aggregation packets are not
/// produced: cameras rarely send them and retina need not be tested with them
/// by us.
pub fn packetize<'a>(
    codec: Codec,
    nals: impl IntoIterator<Item = &'a [u8]>,
    max_payload: usize,
    mut out: impl FnMut(&[u8], &[u8]),
) {
    for nal in nals {
        if nal.is_empty() {
            continue;
        }
        if nal.len() <= max_payload {
            out(&[], nal);
            continue;
        }
        match codec {
            Codec::H264 => {
                let indicator = (nal[0] & 0xe0) | 28;
                let typ = nal[0] & 0x1f;
                fragment(&nal[1..], max_payload - 2, |chunk, start, end| {
                    let header = typ | if start { 0x80 } else { 0 } | if end { 0x40 } else { 0 };
                    out(&[indicator, header], chunk);
                });
            }
            Codec::H265 => {
                if nal.len() < 2 {
                    continue;
                }
                let typ = (nal[0] >> 1) & 0x3f;
                let ph0 = (nal[0] & 0x81) | (49 << 1);
                let ph1 = nal[1];
                fragment(&nal[2..], max_payload - 3, |chunk, start, end| {
                    let fu = typ | if start { 0x80 } else { 0 } | if end { 0x40 } else { 0 };
                    out(&[ph0, ph1, fu], chunk);
                });
            }
        }
    }
}

fn fragment(body: &[u8], max: usize, mut f: impl FnMut(&[u8], bool, bool)) {
    let n = body.len().div_ceil(max);
    for (i, chunk) in body.chunks(max).enumerate() {
        f(chunk, i == 0, i + 1 == n);
    }
}

/// True if this NAL unit starts a random access point (IDR for H.264; IRAP for H.265).
pub fn is_key_nal(codec: Codec, nal: &[u8]) -> bool {
    match (codec, nal.first()) {
        (Codec::H264, Some(b)) => b & 0x1f == 5,
        (Codec::H265, Some(b)) => (16..=23).contains(&((b >> 1) & 0x3f)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fu_a_reassembles_to_the_original_nal() {
        let nal: Vec<u8> = std::iter::once(0x65)
            .chain((0..5000u32).map(|i| i as u8))
            .collect();
        let mut pkts = Vec::new();
        packetize(Codec::H264, [&nal[..]], 1400, |h, p| {
            pkts.push([h, p].concat())
        });
        assert!(pkts.len() > 3);
        assert!(pkts.iter().all(|p| p.len() <= 1400));
        assert_eq!(pkts[0][1] & 0x80, 0x80, "first fragment has S bit");
        assert_eq!(
            pkts.last().unwrap()[1] & 0x40,
            0x40,
            "last fragment has E bit"
        );
        let mut rebuilt = vec![(pkts[0][0] & 0xe0) | (pkts[0][1] & 0x1f)];
        for p in &pkts {
            rebuilt.extend_from_slice(&p[2..]);
        }
        assert_eq!(rebuilt, nal);
    }

    #[test]
    fn h265_fu_keeps_layer_and_tid() {
        let nal: Vec<u8> = [0x26, 0x01]
            .into_iter()
            .chain(std::iter::repeat_n(7, 3000))
            .collect();
        let mut pkts = Vec::new();
        packetize(Codec::H265, [&nal[..]], 1400, |h, p| {
            pkts.push([h, p].concat())
        });
        assert_eq!((pkts[0][0] >> 1) & 0x3f, 49);
        assert_eq!(pkts[0][1], 0x01);
        assert_eq!(
            pkts[0][2] & 0x3f,
            19,
            "IDR_W_RADL type carried in FU header"
        );
        let total: usize = pkts.iter().map(|p| p.len() - 3).sum();
        assert_eq!(total, nal.len() - 2);
    }

    #[test]
    fn truncated_length_prefix_is_an_error_not_a_panic() {
        let v: Vec<_> = nals(&[0, 0, 0, 9, 1, 2], 4).collect();
        assert_eq!(
            v,
            vec![Err(H26xError::NalOverrun {
                len: 9,
                remaining: 2
            })]
        );
        assert!(DecoderConfig::parse_avcc(&[1, 2]).is_err());
        assert!(DecoderConfig::parse_hvcc(&[0; 23]).is_err());
    }
}
