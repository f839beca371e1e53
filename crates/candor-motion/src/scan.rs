//! Decoder + model + hysteresis for one stream: feed samples, get events.
//! The recorder's motion worker and the offline tests use the same code.

use crate::decode::{DecodeError, Frame, H264Decoder};
use crate::model::{self, Analysis, Detector, Hysteresis, Settings, Transition};
use crate::picture::Picture;
use candor_media::h26x::DecoderConfig;

#[derive(Clone, Debug, PartialEq)]
pub enum ScanEvent {
    Start {
        at_90k: i64,
        score: f32,
        zone: Option<String>,
        /// The picture that confirmed the motion.
        picture: Picture,
    },
    End {
        at_90k: i64,
        /// Peak score over the event, the zone that saw it, and its picture.
        peak_score: f32,
        zone: Option<String>,
        picture: Option<Picture>,
    },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanStats {
    pub decoded: u64,
    pub analysed: u64,
    pub decode_errors: u64,
}

pub struct Scanner {
    decoder: H264Decoder,
    settings: Settings,
    detector: Option<Detector>,
    hysteresis: Hysteresis,
    min_step_90k: i64,
    last_analysed: Option<i64>,
    grid: Vec<u8>,
    peak: Option<(f32, Option<usize>, Option<Picture>)>,
    stats: ScanStats,
    want_picture: bool,
    picture: Option<Picture>,
}

impl Scanner {
    /// `fps`: analysed frames per second at most (every frame is decoded,
    /// since later frames need earlier ones). `hold_90k`: quiet time that ends
    /// an event.
    pub fn new(
        config: &DecoderConfig,
        settings: Settings,
        fps: f32,
        hold_90k: i64,
    ) -> Result<Scanner, DecodeError> {
        Ok(Scanner {
            decoder: H264Decoder::new(config)?,
            settings,
            detector: None,
            hysteresis: Hysteresis::new(hold_90k),
            // 10% slack so a 5 fps camera analysed at 5 fps keeps every frame.
            min_step_90k: (90_000.0 / fps.clamp(0.1, 60.0) * 0.9) as i64,
            last_analysed: None,
            grid: Vec::new(),
            peak: None,
            stats: ScanStats::default(),
            want_picture: false,
            picture: None,
        })
    }

    pub fn stats(&self) -> ScanStats {
        self.stats
    }

    /// Asks for a copy of the next analysed picture (see [`Scanner::take_picture`]).
    pub fn request_picture(&mut self) {
        self.want_picture = true;
    }

    pub fn take_picture(&mut self) -> Option<Picture> {
        self.picture.take()
    }

    pub fn active(&self) -> bool {
        self.hysteresis.active()
    }

    /// Frames were lost upstream: skip to the next key frame.
    pub fn resync(&mut self) {
        self.decoder.resync();
    }

    fn zone_name(&self, z: Option<usize>) -> Option<String> {
        z.and_then(|i| self.settings.zones.get(i))
            .map(|z| z.name.clone())
    }

    /// One sample at time `t_90k` (any monotonic 90 kHz clock).
    pub fn push(
        &mut self,
        t_90k: i64,
        sample: &[u8],
        key: bool,
    ) -> Result<Option<ScanEvent>, DecodeError> {
        self.push_observed(t_90k, sample, key, |_, _| {})
    }

    /// [`Scanner::push`], and `observe` sees every analysed frame with the
    /// model's verdict on it while the decoder still holds the picture:
    /// object detection crops from it without a copy of the frame.
    pub fn push_observed(
        &mut self,
        t_90k: i64,
        sample: &[u8],
        key: bool,
        mut observe: impl FnMut(&Frame<'_>, &Analysis),
    ) -> Result<Option<ScanEvent>, DecodeError> {
        let frame = match self.decoder.decode(sample, key) {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.stats.decode_errors += 1;
                return Err(e);
            }
        };
        self.stats.decoded += 1;
        if self
            .last_analysed
            .is_some_and(|l| t_90k - l < self.min_step_90k && t_90k >= l)
        {
            return Ok(None);
        }
        self.last_analysed = Some(t_90k);
        self.stats.analysed += 1;
        if std::mem::take(&mut self.want_picture) {
            self.picture = Some(frame.to_picture());
        }
        let luma = frame.luma();
        let (gw, gh) = model::grid_size(luma.width, luma.height);
        let detector = match &mut self.detector {
            Some(d) if d.grid() == (gw, gh) => d,
            slot => slot.insert(Detector::new(self.settings.clone(), gw, gh)),
        };
        model::downscale(luma, gw, gh, &mut self.grid);
        let a = detector.analyse(&self.grid);
        observe(&frame, &a);
        let out = match self.hysteresis.update(t_90k, a.motion) {
            Transition::Start => {
                let picture = frame.to_picture();
                self.peak = Some((a.score, a.zone, None));
                Some(ScanEvent::Start {
                    at_90k: t_90k,
                    score: a.score,
                    zone: self.zone_name(a.zone),
                    picture,
                })
            }
            Transition::End { at_90k } => Some(self.end(at_90k)),
            Transition::None => {
                // Keep the best picture of an ongoing event; copy only on a
                // clear improvement, since a copy is a whole frame.
                if let Some((best, zone, pic)) = &mut self.peak
                    && a.motion
                    && a.score > *best * 1.25
                {
                    *best = a.score;
                    *zone = a.zone.or(*zone);
                    *pic = Some(frame.to_picture());
                }
                None
            }
        };
        Ok(out)
    }

    /// The stream stopped: end an ongoing event.
    pub fn finish(&mut self) -> Option<ScanEvent> {
        let at_90k = self.hysteresis.finish()?;
        Some(self.end(at_90k))
    }

    fn end(&mut self, at_90k: i64) -> ScanEvent {
        let (peak_score, zone, picture) = self.peak.take().unwrap_or((0.0, None, None));
        ScanEvent::End {
            at_90k,
            peak_score,
            zone: self.zone_name(zone),
            picture,
        }
    }
}
