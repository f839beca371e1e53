//! Frames for live view, fanned out from ingest to any number of viewers.
//!
//! A `tokio::sync::broadcast` channel per camera: ingest never waits for a
//! viewer, and a viewer that falls more than [`LIVE_QUEUE`] frames behind
//! learns it (`RecvError::Lagged`) and skips to the next key frame. With no
//! viewer, ingest does not even copy the frame.

use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::broadcast;

/// Frames a viewer may fall behind before it skips ahead (about 2 s at 15 fps).
pub const LIVE_QUEUE: usize = 32;

/// What a browser needs before the first frame: the codec and the fMP4 init
/// segment. A new one (a different `Arc`) means the stream's parameters changed.
#[derive(Debug)]
pub struct LiveInit {
    /// RFC 6381, e.g. `avc1.640028`, for `MediaSource.isTypeSupported`.
    pub codec: String,
    pub width: u16,
    pub height: u16,
    pub init_segment: Bytes,
    /// Parameter sets for a decoder (motion detection, snapshots).
    pub decoder: Option<candor_media::h26x::DecoderConfig>,
}

#[derive(Debug)]
pub struct LiveFrame {
    pub init: Arc<LiveInit>,
    /// Camera time, 90 kHz; restarts when the camera session does.
    pub media_ts: i64,
    pub key: bool,
    /// Length-prefixed NAL units, as recorded.
    pub data: Bytes,
    /// When ingest received it: the start of the server-side latency.
    pub received: Instant,
}

pub type LiveSender = broadcast::Sender<Arc<LiveFrame>>;

pub fn channel() -> LiveSender {
    broadcast::channel(LIVE_QUEUE).0
}
