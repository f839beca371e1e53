//! One task per camera: an RTSP session with retina, frames to the storage
//! writer, and reconnection with exponential backoff and jitter.

use crate::config::{CameraConfig, TransportKind};
use crate::live::{LiveFrame, LiveInit};
use candor_media::{Codec, Time90k};
use candor_storage::writer::{IngestFrame, Msg, SampleEntry};
use futures::StreamExt;
use retina::client::{PlayOptions, SessionOptions, SetupOptions, Transport};
use retina::codec::{CodecItem, FrameFormat, ParametersRef, VideoParameters};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

/// What a camera is doing, for status displays and the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CameraState {
    Connecting,
    Streaming { since: Time90k },
    Backoff { until: Time90k, last_error: String },
    Stopped,
}

#[derive(Clone, Debug)]
pub struct CameraStatus {
    pub name: String,
    pub state: CameraState,
    pub last_error: Option<String>,
    pub reconnects: u64,
    pub frames: u64,
    pub codec: Option<String>,
    pub resolution: Option<(u32, u32)>,
    /// Motion detection, when enabled.
    pub motion: Option<crate::motion::MotionStatus>,
    /// The last [`RECENT_ERRORS`] reasons the camera reconnected, oldest
    /// first: (unix seconds, error).
    pub recent_errors: std::collections::VecDeque<(i64, String)>,
}

/// Reconnect reasons kept per camera, for diagnostics.
pub const RECENT_ERRORS: usize = 10;

/// Monotonic time in 90 kHz units since the first call in this process.
pub fn mono_90k() -> i64 {
    mono_90k_at(Instant::now())
}

/// [`mono_90k`] of an instant already read (one clock read per frame, not
/// three).
fn mono_90k_at(t: Instant) -> i64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let d = t.saturating_duration_since(*ORIGIN.get_or_init(Instant::now));
    (d.as_nanos() * 9 / 100_000) as i64
}

/// Reconnect delays: 0.5 s doubling to 5 s, ±20% jitter so that many cameras
/// behind one failed switch do not reconnect in lockstep. The cap is low
/// because a retry is one TCP connect and users expect footage to resume
/// within seconds of a camera's return.
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    const MIN: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(5);

    pub fn new() -> Self {
        Backoff { next: Self::MIN }
    }
    pub fn reset(&mut self) {
        self.next = Self::MIN;
    }
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        d.mul_f64(rand::random::<f64>() * 0.4 + 0.8)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

pub(crate) struct CameraTask {
    pub live: crate::live::LiveSender,
    pub cfg: Arc<CameraConfig>,
    pub camera_id: i64,
    /// The storage writer; `None` for a stream that is only watched (a sub
    /// stream for motion detection), not recorded.
    pub tx: Option<mpsc::Sender<Msg>>,
    pub status: Arc<Mutex<CameraStatus>>,
    pub shutdown: watch::Receiver<bool>,
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("{0}")]
    Rtsp(#[from] retina::Error),
    #[error("timed out after {0:?} during {1}")]
    Timeout(Duration, &'static str),
    #[error("no frame for {0:?} (stalled)")]
    Stalled(Duration),
    #[error("the camera offers no H.264 or H.265 video stream")]
    NoVideo,
    #[error("stream ended")]
    Eof,
    #[error("unsupported stream parameters: {0}")]
    Params(String),
    #[error("recorder is shutting down")]
    Shutdown,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl CameraTask {
    fn set(&self, f: impl FnOnce(&mut CameraStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()));
    }

    pub async fn run(mut self) {
        let name = self.cfg.name.get_ref().0.clone();
        let mut backoff = Backoff::new();
        loop {
            self.set(|s| s.state = CameraState::Connecting);
            let started = Instant::now();
            let r = self.session().await;
            if let Some(tx) = &self.tx {
                let _ = tx
                    .send(Msg::EndRun {
                        camera_id: self.camera_id,
                    })
                    .await;
            }
            let err = match r {
                Err(SessionError::Shutdown) | Ok(()) => break,
                Err(e) => e.to_string(),
            };
            if started.elapsed() > Duration::from_secs(30) {
                backoff.reset();
            }
            let delay = backoff.next_delay();
            warn!(camera = %name, url = %self.cfg.url, "camera session failed: {err}; retrying in {delay:.1?}");
            let until = Time90k::now() + candor_media::Duration90k::from_std(delay);
            self.set(|s| {
                s.state = CameraState::Backoff {
                    until,
                    last_error: err.clone(),
                };
                if s.recent_errors.len() == RECENT_ERRORS {
                    s.recent_errors.pop_front();
                }
                s.recent_errors
                    .push_back((candor_media::time::unix_secs(), err.clone()));
                s.last_error = Some(err);
                s.reconnects += 1;
            });
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.shutdown.changed() => break,
            }
        }
        self.set(|s| s.state = CameraState::Stopped);
    }

    async fn timed<T>(
        &mut self,
        what: &'static str,
        f: impl Future<Output = Result<T, retina::Error>>,
    ) -> Result<T, SessionError> {
        tokio::select! {
            r = tokio::time::timeout(CONNECT_TIMEOUT, f) => r.map_err(|_| SessionError::Timeout(CONNECT_TIMEOUT, what))?.map_err(Into::into),
            _ = self.shutdown.changed() => Err(SessionError::Shutdown),
        }
    }

    async fn session(&mut self) -> Result<(), SessionError> {
        let cfg = self.cfg.clone();
        let creds = cfg
            .url
            .username
            .clone()
            .map(|username| retina::client::Credentials {
                username,
                password: cfg.url.password.clone().unwrap_or_default(),
            });
        let opts = SessionOptions::default()
            .creds(creds)
            .user_agent(format!("Candor/{}", candor_wire::version()));
        let mut session = self
            .timed(
                "DESCRIBE",
                retina::client::Session::describe(cfg.url.url.clone(), opts),
            )
            .await?;
        let stream_i = session
            .streams()
            .iter()
            .position(|s| s.media() == "video" && matches!(s.encoding_name(), "h264" | "h265"))
            .ok_or(SessionError::NoVideo)?;
        let transport = match cfg.transport {
            TransportKind::Tcp => Transport::Tcp(Default::default()),
            TransportKind::Udp => Transport::Udp(Default::default()),
        };
        let setup = SetupOptions::default()
            .transport(transport)
            .frame_format(FrameFormat::MP4);
        self.timed("SETUP", session.setup(stream_i, setup)).await?;
        let play = PlayOptions::default()
            .enforce_timestamps_with_max_jump_secs(NonZeroU32::new(10).expect("non-zero"));
        let playing = self.timed("PLAY", session.play(play)).await?;
        let mut demuxed = playing.demuxed()?;
        let stall = cfg.stall_timeout.0;
        let mut entry: Option<Arc<SampleEntry>> = None;
        let mut live_init: Option<Arc<LiveInit>> = None;
        let mut new_run = true;
        let name = cfg.name.get_ref().0.as_str();
        // One stall timer and one shutdown wait for the whole session,
        // rather than a timer and a watch waiter made and dropped for every
        // frame: moving a deadline later is one atomic store in tokio's
        // timer, where a fresh timeout is a wheel insertion and removal, and
        // a fresh `changed()` locks the watch's waiter list twice.
        let stalled = tokio::time::sleep(stall);
        tokio::pin!(stalled);
        let mut shutdown = self.shutdown.clone();
        let stop = shutdown.changed();
        tokio::pin!(stop);
        loop {
            // Biased, the shutdown first: it and the stall timer are
            // cooperative (tokio's budget), so behind a stream that is always
            // ready they would only ever be polled with the budget spent, and
            // a camera flooding faster than we read could keep its session
            // from stopping. First, the shutdown sees a fresh budget on every
            // poll of the task; polling it while it waits is one uncontended
            // lock. The stall timer can come last: a stream that is ready has
            // not stalled.
            let item = tokio::select! {
                biased;
                _ = &mut stop => return Err(SessionError::Shutdown),
                item = demuxed.next() => item,
                () = &mut stalled => return Err(SessionError::Stalled(stall)),
            };
            let now = Instant::now();
            stalled.as_mut().reset((now + stall).into());
            let frame = match item.ok_or(SessionError::Eof)?? {
                CodecItem::VideoFrame(f) => f,
                _ => continue,
            };
            let mut send_entry = None;
            if entry.is_none() || frame.has_new_parameters() {
                let Some(ParametersRef::Video(p)) =
                    demuxed.streams()[frame.stream_id()].parameters()
                else {
                    continue; // no parameters yet: nothing decodable to record
                };
                let e = Arc::new(sample_entry(p)?);
                if entry.as_deref() != Some(&*e) {
                    if entry.is_some() {
                        info!(camera = %name, "stream parameters changed: {} {}x{}", p.rfc6381_codec(), e.width, e.height);
                    } else {
                        info!(camera = %name, "streaming {} {}x{}", p.rfc6381_codec(), e.width, e.height);
                    }
                    let (codec, dims) = (p.rfc6381_codec().to_owned(), p.pixel_dimensions());
                    self.set(|s| {
                        s.codec = Some(codec);
                        s.resolution = Some(dims);
                    });
                    live_init = Some(Arc::new(LiveInit {
                        codec: p.rfc6381_codec().to_owned(),
                        width: e.width,
                        height: e.height,
                        init_segment: candor_media::mp4::frag::init_segment(
                            &e.data, e.width, e.height,
                        )
                        .into(),
                        decoder: candor_media::mp4::frag::decoder_config(&e.data),
                    }));
                    send_entry = Some(e.clone());
                    entry = Some(e);
                }
            }
            if new_run {
                send_entry = entry.clone();
                self.set(|s| {
                    s.state = CameraState::Streaming {
                        since: Time90k::now(),
                    }
                });
            }
            let key = frame.is_random_access_point();
            let media_ts = frame.timestamp().elapsed();
            let received = now;
            let data = frame.into_data();
            // Copy for viewers only when there are some; recording keeps the original.
            if self.live.receiver_count() > 0
                && let Some(init) = &live_init
            {
                let _ = self.live.send(Arc::new(LiveFrame {
                    init: init.clone(),
                    media_ts,
                    key,
                    data: bytes::Bytes::copy_from_slice(&data),
                    received,
                }));
            }
            let msg = IngestFrame {
                camera_id: self.camera_id,
                media_ts,
                key,
                recv_wall: Time90k::now(),
                recv_mono: mono_90k_at(now),
                new_run,
                entry: send_entry,
                data,
            };
            new_run = false;
            if let Some(tx) = &self.tx
                && tx.send(Msg::Frame(msg)).await.is_err()
            {
                return Err(SessionError::Shutdown);
            }
            self.set(|s| s.frames += 1);
        }
    }
}

fn sample_entry(p: &VideoParameters) -> Result<SampleEntry, SessionError> {
    let codec = match p.rfc6381_codec().get(..4) {
        Some("avc1") | Some("avc3") => Codec::H264,
        Some("hvc1") | Some("hev1") => Codec::H265,
        _ => return Err(SessionError::Params(format!("codec {}", p.rfc6381_codec()))),
    };
    let (w, h) = p.pixel_dimensions();
    let data = p
        .mp4_sample_entry()
        .build()
        .map_err(|e| SessionError::Params(e.to_string()))?;
    Ok(SampleEntry {
        codec,
        width: u16::try_from(w).map_err(|_| SessionError::Params(format!("width {w}")))?,
        height: u16::try_from(h).map_err(|_| SessionError::Params(format!("height {h}")))?,
        data,
    })
}
