//! H.264 decoding with openh264, fed the length-prefixed samples Candor
//! records and relays (converted to Annex B, parameter sets before each key
//! frame).

use crate::model::Plane;
use crate::picture::Picture;
use candor_media::Codec;
use candor_media::h26x::DecoderConfig;
use openh264::formats::YUVSource;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("motion detection decodes H.264 only; this stream is {0:?} (use an H.264 sub stream)")]
    Unsupported(Codec),
    #[error("decoder set-up failed: {0}")]
    Init(String),
    #[error("malformed sample: {0}")]
    Sample(#[from] candor_media::h26x::H26xError),
    #[error("undecodable frame: {0}")]
    Decode(String),
}

pub struct H264Decoder {
    inner: openh264::decoder::Decoder,
    length_size: u8,
    /// Annex-B SPS and PPS, sent before every key frame.
    params: Vec<u8>,
    buf: Vec<u8>,
    /// After an error or a gap, P-frames are skipped until the next key frame.
    need_key: bool,
}

const START: [u8; 4] = [0, 0, 0, 1];

/// A decoded picture, borrowed from the decoder until the next call.
pub struct Frame<'a>(openh264::decoder::DecodedYUV<'a>);

impl Frame<'_> {
    fn plane(&self, i: usize) -> Plane<'_> {
        let (w, h) = self.0.dimensions();
        let (sy, su, sv) = self.0.strides();
        match i {
            0 => Plane {
                data: self.0.y(),
                stride: sy,
                width: w,
                height: h,
            },
            1 => Plane {
                data: self.0.u(),
                stride: su,
                width: w.div_ceil(2),
                height: h.div_ceil(2),
            },
            _ => Plane {
                data: self.0.v(),
                stride: sv,
                width: w.div_ceil(2),
                height: h.div_ceil(2),
            },
        }
    }

    pub fn luma(&self) -> Plane<'_> {
        self.plane(0)
    }

    /// Y, U and V (I420: chroma at half width and height).
    pub fn planes(&self) -> [Plane<'_>; 3] {
        [self.plane(0), self.plane(1), self.plane(2)]
    }

    pub fn to_picture(&self) -> Picture {
        Picture::from_planes(self.plane(0), self.plane(1), self.plane(2))
    }
}

impl H264Decoder {
    pub fn new(config: &DecoderConfig) -> Result<H264Decoder, DecodeError> {
        if config.codec != Codec::H264 {
            return Err(DecodeError::Unsupported(config.codec));
        }
        let mut params = Vec::new();
        for p in config.parameter_sets() {
            params.extend_from_slice(&START);
            params.extend_from_slice(p);
        }
        Ok(H264Decoder {
            inner: openh264::decoder::Decoder::new()
                .map_err(|e| DecodeError::Init(e.to_string()))?,
            length_size: config.length_size,
            params,
            buf: Vec::new(),
            need_key: true,
        })
    }

    /// Frames were lost: wait for the next key frame.
    pub fn resync(&mut self) {
        self.need_key = true;
    }

    /// Decodes one sample. `Ok(None)`: nothing to show yet (waiting for a key
    /// frame, or the decoder buffered it).
    pub fn decode(&mut self, sample: &[u8], key: bool) -> Result<Option<Frame<'_>>, DecodeError> {
        if self.need_key && !key {
            return Ok(None);
        }
        self.buf.clear();
        if key {
            self.buf.extend_from_slice(&self.params);
        }
        for nal in candor_media::h26x::nals(sample, self.length_size) {
            let nal = nal.inspect_err(|_| self.need_key = true)?;
            self.buf.extend_from_slice(&START);
            self.buf.extend_from_slice(nal);
        }
        match self.inner.decode(&self.buf) {
            Ok(Some(yuv)) => {
                self.need_key = false;
                Ok(Some(Frame(yuv)))
            }
            Ok(None) => {
                self.need_key = false;
                Ok(None)
            }
            Err(e) => {
                self.need_key = true;
                Err(DecodeError::Decode(e.to_string()))
            }
        }
    }
}
