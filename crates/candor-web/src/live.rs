//! Live view: fragmented MP4 over a WebSocket, for Media Source Extensions.
//!
//! Protocol (server to browser): a text message
//! `{"type":"init","codec":"avc1.640028","mime":"video/mp4; codecs=\"…\"",…}`,
//! then one binary message with the init segment, then one binary message
//! per frame (`moof` + `mdat`). A new `init` means the stream changed
//! (camera reconnected with new parameters): the browser starts a new
//! `MediaSource`. `{"type":"skipped","frames":n}` says frames were dropped
//! because this viewer fell behind; the next frame sent is a key frame.
//! The browser sends nothing; closing the socket ends the view.

use crate::footage::camera_access;
use crate::{ApiError, ApiResult, AppState, Caller};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use candor_media::mp4::frag;
use candor_recorder::live::{LiveFrame, LiveInit};
use futures::{SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::broadcast::error::RecvError;

/// Upper bounds (µs) of the latency histogram's buckets.
pub const LATENCY_BUCKETS_US: [u64; 16] = [
    100,
    250,
    500,
    750,
    1_000,
    1_500,
    2_000,
    3_000,
    5_000,
    7_500,
    10_000,
    20_000,
    50_000,
    100_000,
    500_000,
    u64::MAX,
];

/// Server-side added latency of live frames (received from the camera →
/// written to the viewer's socket), and viewer counters.
#[derive(Default)]
pub struct LiveMetrics {
    pub buckets: [AtomicU64; LATENCY_BUCKETS_US.len()],
    pub sum_us: AtomicU64,
    pub frames_sent: AtomicU64,
    pub frames_skipped: AtomicU64,
    pub sessions: AtomicU64,
}

impl LiveMetrics {
    pub fn observe(&self, us: u64) {
        let i = LATENCY_BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(15);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.frames_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// The bucket bound under which fraction `q` of observations fall.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let want = (q * total as f64).ceil() as u64;
        let mut acc = 0;
        for (i, c) in counts.iter().enumerate() {
            acc += c;
            if acc >= want {
                return Some(LATENCY_BUCKETS_US[i]);
            }
        }
        None
    }
}

/// WebSockets carry cookies on cross-site requests too (they are not
/// subject to CORS): refuse an upgrade from a page of another origin.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true; // not a browser: scripts with a token
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin.strip_prefix("https://") == Some(host)
}

/// The browser sends nothing but control frames: anything bigger than this
/// ends the view (axum's default would buffer up to 64 MiB per message).
pub const MAX_INCOMING_MESSAGE: usize = 1024;

pub async fn live(
    State(st): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult {
    serve(st, p, name, headers, ws, None).await
}

/// [`live`], holding `place` (a share link's live-view place) for as long
/// as the view lasts.
pub(crate) async fn serve(
    st: AppState,
    p: crate::Principal,
    name: String,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
    place: Option<Box<dyn Send + Sync>>,
) -> ApiResult {
    let f = camera_access(&st, &p, &name)?;
    if !same_origin(&headers) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "origin",
            "cross-origin live view refused",
        ));
    }
    let ws = ws.map_err(|e| {
        ApiError::bad_request("not_websocket", format!("{e}; connect with a WebSocket"))
    })?;
    let rx = f
        .status
        .subscribe(&name)
        .ok_or_else(|| crate::footage::no_camera(&name))?;
    st.audit(Some(&p.username), "live", name.clone()).await;
    let metrics = st.metrics.clone();
    let accounts = st.accounts.clone();
    Ok(ws
        .max_message_size(MAX_INCOMING_MESSAGE)
        .max_frame_size(MAX_INCOMING_MESSAGE)
        .on_upgrade(move |socket| async move {
            let _place = place;
            metrics.sessions.fetch_add(1, Ordering::Relaxed);
            let viewer = Viewer {
                principal: p,
                accounts,
                camera: name,
            };
            stream(socket, rx, &metrics, viewer).await;
            metrics.sessions.fetch_sub(1, Ordering::Relaxed);
        })
        .into_response())
}

const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Default frame duration until two frames have been seen (15 fps).
const DEFAULT_DURATION_90K: u32 = 6_000;

/// What one viewer is sent, frame by frame. Pure (no sockets, no clock), so
/// the rules are unit-tested: start at a key frame; after falling behind,
/// resume at the next key frame; a new stream (init) restarts the timeline;
/// decode times follow camera time, durations are the previous interval.
pub struct Fragmenter {
    init: Option<Arc<LiveInit>>,
    need_key: bool,
    seq: u32,
    dts: u64,
    prev_ts: Option<i64>,
    dur: u32,
}

/// What to send for one frame.
pub struct Output {
    /// A new stream: send its init message and segment first.
    pub init: Option<Arc<LiveInit>>,
    /// `moof` + `mdat` with the frame.
    pub fragment: Vec<u8>,
    pub decode_time_90k: u64,
}

impl Default for Fragmenter {
    fn default() -> Self {
        Fragmenter {
            init: None,
            need_key: true,
            seq: 0,
            dts: 0,
            prev_ts: None,
            dur: DEFAULT_DURATION_90K,
        }
    }
}

impl Fragmenter {
    /// The viewer missed frames: wait for the next key frame.
    pub fn lagged(&mut self) {
        self.need_key = true;
    }

    /// `None` while waiting for a key frame.
    pub fn push(&mut self, frame: &LiveFrame) -> Option<Output> {
        if self.need_key && !frame.key {
            return None;
        }
        self.need_key = false;
        let mut new_init = None;
        if self
            .init
            .as_ref()
            .is_none_or(|i| !Arc::ptr_eq(i, &frame.init))
        {
            (self.seq, self.dts, self.prev_ts, self.dur) = (0, 0, None, DEFAULT_DURATION_90K);
            self.init = Some(frame.init.clone());
            new_init = Some(frame.init.clone());
        }
        if let Some(p) = self.prev_ts {
            let delta = frame.media_ts - p;
            // Within a session camera time only moves forward; anything odd
            // (a jump) advances by one frame; a skip after lag by the real gap.
            if delta > 0 && delta < 10 * 90_000 {
                self.dts += delta as u64;
                self.dur = u32::try_from(delta).unwrap_or(DEFAULT_DURATION_90K);
            } else {
                self.dts += u64::from(self.dur);
            }
        }
        self.prev_ts = Some(frame.media_ts);
        self.seq = self.seq.wrapping_add(1);
        let size = frame.data.len() as u32;
        let mut fragment = frag::fragment_header(self.seq, self.dts, self.dur, frame.key, size);
        fragment.extend_from_slice(&frame.data);
        Some(Output {
            init: new_init,
            fragment,
            decode_time_90k: self.dts,
        })
    }
}

/// Who watches: checked again every [`crate::STREAM_RECHECK`], so a revoked
/// session or token, a deleted user or a withdrawn camera ends the view.
struct Viewer {
    principal: crate::Principal,
    accounts: Arc<crate::accounts::Accounts>,
    camera: String,
}

impl Viewer {
    async fn still_allowed(&self) -> bool {
        let (p, a, c) = (
            self.principal.clone(),
            self.accounts.clone(),
            self.camera.clone(),
        );
        tokio::task::spawn_blocking(move || {
            p.still_allowed(&a, crate::accounts::Role::Viewer, Some(&c))
        })
        .await
        .unwrap_or(false)
    }
}

async fn stream(
    socket: WebSocket,
    mut rx: tokio::sync::broadcast::Receiver<Arc<LiveFrame>>,
    metrics: &LiveMetrics,
    viewer: Viewer,
) {
    let (mut tx, mut incoming) = socket.split();
    let mut f = Fragmenter::default();
    let mut recheck = tokio::time::interval(crate::STREAM_RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    recheck.tick().await;
    loop {
        let frame = tokio::select! {
            _ = recheck.tick() => {
                if !viewer.still_allowed().await {
                    let _ = tx.send(Message::Close(Some(axum::extract::ws::CloseFrame {
                        code: 4403,
                        reason: "access revoked".into(),
                    }))).await;
                    return;
                }
                continue;
            }
            r = rx.recv() => match r {
                Ok(f) => f,
                Err(RecvError::Lagged(n)) => {
                    metrics.frames_skipped.fetch_add(n, Ordering::Relaxed);
                    f.lagged();
                    let msg = format!(r#"{{"type":"skipped","frames":{n}}}"#);
                    if tx.send(Message::Text(msg.into())).await.is_err() {
                        return;
                    }
                    continue;
                }
                Err(RecvError::Closed) => return,
            },
            m = incoming.next() => match m {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            },
        };
        let Some(out) = f.push(&frame) else { continue };
        if let Some(i) = out.init {
            // When the recorder received the frame at media time 0: lets a
            // client measure receipt-to-display latency (the glass-to-glass benchmark).
            let received_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0)
                .saturating_sub(frame.received.elapsed().as_millis() as u64);
            let msg = candor_wire::LiveInit {
                kind: "init".into(),
                codec: i.codec.clone(),
                mime: format!("video/mp4; codecs=\"{}\"", i.codec),
                width: i.width,
                height: i.height,
                first_frame_received_ms: received_ms,
            };
            let msg = serde_json::to_string(&msg).unwrap_or_default();
            if tx.send(Message::Text(msg.into())).await.is_err()
                || tx
                    .send(Message::Binary(i.init_segment.clone()))
                    .await
                    .is_err()
            {
                return;
            }
        }
        // A viewer that takes no data for this long is gone (a phone that
        // slept, a dead network path): free its task instead of waiting on TCP.
        match tokio::time::timeout(SEND_TIMEOUT, tx.send(Message::Binary(out.fragment.into())))
            .await
        {
            Ok(Ok(())) => {}
            _ => return,
        }
        metrics.observe(frame.received.elapsed().as_micros() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init(codec: &str) -> Arc<LiveInit> {
        Arc::new(LiveInit {
            codec: codec.into(),
            width: 64,
            height: 48,
            init_segment: bytes::Bytes::from_static(b"init"),
            decoder: None,
        })
    }

    fn frame(init: &Arc<LiveInit>, ts: i64, key: bool) -> LiveFrame {
        LiveFrame {
            init: init.clone(),
            media_ts: ts,
            key,
            data: bytes::Bytes::from_static(b"\0\0\0\x01x"),
            received: std::time::Instant::now(),
        }
    }

    #[test]
    fn a_viewer_starts_at_a_key_frame_with_the_init_segment() {
        let i = init("avc1.640028");
        let mut f = Fragmenter::default();
        assert!(f.push(&frame(&i, 1000, false)).is_none());
        let first = f.push(&frame(&i, 7000, true)).unwrap();
        assert!(first.init.is_some());
        assert_eq!(first.decode_time_90k, 0);
        let next = f.push(&frame(&i, 13_000, false)).unwrap();
        assert!(next.init.is_none());
        assert_eq!(next.decode_time_90k, 6000);
        // The fragment carries the previous interval as its duration estimate.
        let after = f.push(&frame(&i, 16_000, false)).unwrap();
        assert_eq!(after.decode_time_90k, 9000);
        let moof_len = u32::from_be_bytes(after.fragment[..4].try_into().unwrap()) as usize;
        let dur = u32::from_be_bytes(
            after.fragment[moof_len - 12..moof_len - 8]
                .try_into()
                .unwrap(),
        );
        assert_eq!(dur, 3000);
    }

    #[test]
    fn a_viewer_that_fell_behind_resumes_at_the_next_key_frame() {
        let i = init("avc1.640028");
        let mut f = Fragmenter::default();
        f.push(&frame(&i, 0, true)).unwrap();
        f.push(&frame(&i, 6000, false)).unwrap();
        f.lagged();
        assert!(f.push(&frame(&i, 60_000, false)).is_none());
        let k = f.push(&frame(&i, 90_000, true)).unwrap();
        assert!(k.init.is_none(), "same stream: no new init");
        assert_eq!(
            k.decode_time_90k, 90_000,
            "the timeline jumps by the real gap"
        );
    }

    #[test]
    fn a_new_stream_restarts_the_timeline_with_its_init() {
        let (a, b) = (init("avc1.640028"), init("hvc1.1.6.L93.B0"));
        let mut f = Fragmenter::default();
        f.push(&frame(&a, 0, true)).unwrap();
        f.push(&frame(&a, 6000, false)).unwrap();
        let n = f.push(&frame(&b, 500, true)).unwrap();
        assert_eq!(
            n.init.as_ref().map(|i| i.codec.as_str()),
            Some("hvc1.1.6.L93.B0")
        );
        assert_eq!(n.decode_time_90k, 0);
        // A camera clock jump within a stream advances by one frame, never backwards.
        let j = f.push(&frame(&b, 100, false)).unwrap();
        assert_eq!(j.decode_time_90k, u64::from(DEFAULT_DURATION_90K));
    }
}
