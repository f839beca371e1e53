//! Pure media logic for Candor: no I/O, no async, no clocks.
//!
//! Everything here is a function of its inputs so it can be tested exhaustively
//! and fuzzed: 90 kHz time arithmetic, the MP4 (ISO BMFF) reader used by the
//! camera simulator, the MP4 writer used by export, and H.264/H.265 NAL and RTP
//! packetization.

pub mod h26x;
pub mod mp4;
pub mod time;

pub use time::{Duration90k, Time90k};

/// Video codecs Candor records. Audio is not recorded yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    H264,
    H265,
}

impl Codec {
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::H265 => "h265",
        }
    }

    pub fn parse(s: &str) -> Option<Codec> {
        match s {
            "h264" => Some(Codec::H264),
            "h265" => Some(Codec::H265),
            _ => None,
        }
    }
}
