use bytes::Bytes;
use candor_media::Codec;
use candor_media::h26x::{self, DecoderConfig, MAX_RTP_PAYLOAD};
use candor_media::mp4::{self, ReadError};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("can't read clip: {0}")]
    Read(#[from] ReadError),
    #[error("clip has no key frame to start from")]
    NoKeyFrame,
    #[error("sample {index}: {err}")]
    Sample { index: usize, err: h26x::H26xError },
    #[error("sample {0} lies outside the file")]
    OutOfFile(usize),
}

/// One access unit, ready to send: its RTP payloads in order.
pub(crate) struct SimFrame {
    pub time_90k: i64,
    pub payloads: Vec<Bytes>,
}

/// A clip prepared for streaming. Shared (read-only) by every session.
pub struct Source {
    pub(crate) codec: Codec,
    pub(crate) fmtp: String,
    pub(crate) frames: Vec<SimFrame>,
    pub(crate) duration_90k: i64,
    bytes: u64,
    pub(crate) width: u16,
    pub(crate) height: u16,
}

impl Source {
    /// Demuxes and packetizes an MP4 held in memory. Parameter sets are sent
    /// in-band before every key frame, as cameras do.
    pub fn from_mp4(file: &[u8]) -> Result<Source, SourceError> {
        let clip = mp4::read::parse(file)?;
        let first_key = clip
            .samples
            .iter()
            .position(|s| s.key)
            .ok_or(SourceError::NoKeyFrame)?;
        let DecoderConfig {
            codec, length_size, ..
        } = clip.config;
        let mut frames = Vec::with_capacity(clip.samples.len());
        let mut bytes = 0u64;
        let t0 = clip.samples[first_key].time_90k;
        for (index, s) in clip.samples.iter().enumerate().skip(first_key) {
            let data = usize::try_from(s.offset)
                .ok()
                .and_then(|o| file.get(o..o.checked_add(s.size as usize)?))
                .ok_or(SourceError::OutOfFile(index))?;
            let mut nals: Vec<&[u8]> = Vec::new();
            if s.key {
                nals.extend(clip.config.parameter_sets());
            }
            for nal in h26x::nals(data, length_size) {
                let nal = nal.map_err(|err| SourceError::Sample { index, err })?;
                // Parameter sets already inside the sample would be sent twice.
                let is_ps = match codec {
                    Codec::H264 => matches!(nal.first().map(|b| b & 0x1f), Some(7 | 8)),
                    Codec::H265 => matches!(nal.first().map(|b| (b >> 1) & 0x3f), Some(32..=34)),
                };
                if !(s.key && is_ps) {
                    nals.push(nal);
                }
            }
            let mut payloads = Vec::new();
            h26x::packetize(codec, nals, MAX_RTP_PAYLOAD, |h, p| {
                let mut v = Vec::with_capacity(h.len() + p.len());
                v.extend_from_slice(h);
                v.extend_from_slice(p);
                bytes += v.len() as u64;
                payloads.push(Bytes::from(v));
            });
            frames.push(SimFrame {
                time_90k: s.time_90k - t0,
                payloads,
            });
        }
        let duration_90k = clip.duration_90k() - t0;
        Ok(Source {
            codec,
            fmtp: clip.config.sdp_fmtp(),
            frames,
            duration_90k,
            bytes,
            width: clip.width,
            height: clip.height,
        })
    }

    pub fn dimensions(&self) -> (u16, u16) {
        (self.width, self.height)
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Bit rate of one simulated camera, in bits per second.
    pub fn bitrate(&self) -> u64 {
        self.bytes * 8 * 90_000 / self.duration_90k.max(1) as u64
    }

    pub fn frame_count(&self) -> usize {
        self.frames.len()
    }

    pub fn duration_secs(&self) -> f64 {
        self.duration_90k as f64 / 90_000.0
    }
}
