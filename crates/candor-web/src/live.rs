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
use crate::{ApiError, ApiResult, AppState};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::IntoResponse;
use candor_media::mp4::frag;
use candor_recorder::live::LiveFrame;
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

pub async fn live(
    State(st): State<AppState>,
    Path(name): Path<String>,
    method: Method,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult {
    let (p, f) = camera_access(&st, &headers, &method, &name)?;
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
    let _ = st.accounts.audit(Some(&p.username), "live", &name);
    let metrics = st.metrics.clone();
    Ok(ws
        .on_upgrade(move |socket| async move {
            metrics.sessions.fetch_add(1, Ordering::Relaxed);
            stream(socket, rx, &metrics).await;
            metrics.sessions.fetch_sub(1, Ordering::Relaxed);
        })
        .into_response())
}

/// Default frame duration until two frames have been seen (15 fps).
const DEFAULT_DURATION_90K: u32 = 6_000;

async fn stream(
    socket: WebSocket,
    mut rx: tokio::sync::broadcast::Receiver<Arc<LiveFrame>>,
    metrics: &LiveMetrics,
) {
    let (mut tx, mut incoming) = socket.split();
    let mut init: Option<Arc<candor_recorder::live::LiveInit>> = None;
    let mut need_key = true;
    let (mut seq, mut dts, mut prev_ts, mut dur) = (0u32, 0u64, None::<i64>, DEFAULT_DURATION_90K);
    loop {
        let frame = tokio::select! {
            r = rx.recv() => match r {
                Ok(f) => f,
                Err(RecvError::Lagged(n)) => {
                    metrics.frames_skipped.fetch_add(n, Ordering::Relaxed);
                    need_key = true;
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
        if need_key && !frame.key {
            continue;
        }
        need_key = false;
        if init.as_ref().is_none_or(|i| !Arc::ptr_eq(i, &frame.init)) {
            let i = frame.init.clone();
            // When the recorder received the frame at media time 0: lets a
            // client measure receipt-to-display latency (the glass-to-glass benchmark).
            let received_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0)
                .saturating_sub(frame.received.elapsed().as_millis() as u64);
            let msg = serde_json::json!({
                "type": "init", "codec": i.codec, "mime": format!("video/mp4; codecs=\"{}\"", i.codec),
                "width": i.width, "height": i.height, "first_frame_received_ms": received_ms,
            });
            if tx
                .send(Message::Text(msg.to_string().into()))
                .await
                .is_err()
                || tx
                    .send(Message::Binary(i.init_segment.clone()))
                    .await
                    .is_err()
            {
                return;
            }
            (seq, dts, prev_ts, dur) = (0, 0, None, DEFAULT_DURATION_90K);
            init = Some(i);
        }
        if let Some(p) = prev_ts {
            let delta = frame.media_ts - p;
            // Within a session camera time only moves forward; anything odd
            // (a jump, a skip after lag) advances by the real gap if sane.
            if delta > 0 && delta < 10 * 90_000 {
                dts += delta as u64;
                dur = u32::try_from(delta).unwrap_or(DEFAULT_DURATION_90K);
            } else {
                dts += u64::from(dur);
            }
        }
        prev_ts = Some(frame.media_ts);
        seq = seq.wrapping_add(1);
        let size = frame.data.len() as u32;
        let mut msg = frag::fragment_header(seq, dts, dur, frame.key, size);
        msg.extend_from_slice(&frame.data);
        if tx.send(Message::Binary(msg.into())).await.is_err() {
            return;
        }
        metrics.observe(frame.received.elapsed().as_micros() as u64);
    }
}
