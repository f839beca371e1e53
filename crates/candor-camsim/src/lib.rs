//! The Candor camera simulator: an RTSP server that loops an MP4 clip as a live
//! camera would send it, with continuous RTP timestamps, over RTP/TCP
//! (interleaved) or RTP/UDP.
//!
//! It is built to be cheap: the clip is demuxed and packetized once into shared
//! RTP payloads; each session only writes 12-byte RTP headers around them. It
//! never encodes. Tests also use it in-process to inject faults (a camera that
//! goes offline, stalls or sends garbage).

/// ONVIF device/media services and WS-Discovery for simulated cameras.
pub mod onvif;
/// RTSP request parsing; public so it can be fuzzed.
pub mod rtsp;
mod server;
mod source;

pub use server::{CamSim, Fault};
pub use source::{Source, SourceError};
