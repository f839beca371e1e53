//! Camera, spans and export routes. They read the index through their own
//! read-only connection, so HTTP readers never wait on the recorder's writer.
//!
//! A camera outside the caller's camera list answers exactly like a camera
//! that does not exist (404), so its name is not disclosed either.

use crate::{ApiError, ApiResult, AppState, Caller, Principal};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::IntoResponse;
use candor_media::Time90k;
use candor_recorder::{CameraState, StatusSource};
use candor_storage::{Export, ExportError, Store};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What the footage routes read.
pub struct Footage {
    pub store: Store,
    pub status: StatusSource,
    /// Retention policy, for the system page's forecast.
    pub policy: Policy,
    /// The recorder's own (writable) store, for the few changes the web app
    /// may make to the index (pinning events). Reads go through `store`,
    /// which is read-only.
    pub writable: Option<Arc<Store>>,
    /// The recorder's config file, for settings changed here (motion).
    pub config_path: Option<std::path::PathBuf>,
    /// The cloud link, when `[cloud]` is configured.
    pub cloud: Option<candor_recorder::cloud::CloudHandle>,
    /// Update checks and installs, when `[updates]` is configured.
    pub updates: Option<candor_recorder::updates::Updates>,
    /// Hands a newly bound listener to the web server when `[web] listen`
    /// changes (see `config_api::apply`).
    pub listener: Option<tokio::sync::mpsc::Sender<tokio::net::TcpListener>>,
    /// Wakes the confirmed-apply timer when a change is held.
    pub(crate) held: Arc<tokio::sync::Notify>,
    rates: Mutex<HashMap<String, Rate>>,
}

impl Footage {
    /// The config file settings changed here are written to, or why there is none.
    pub(crate) fn config_file(&self) -> Result<std::path::PathBuf, ApiError> {
        self.config_path.clone().ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "read_only",
                "this server has no config file to change",
            )
        })
    }
}

#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Whole-store budget, bytes.
    pub max_bytes: Option<u64>,
    /// Per camera name: (max age in seconds, max bytes).
    pub cameras: HashMap<String, (Option<u64>, Option<u64>)>,
    /// `[storage] target_days`: what the owner wants kept.
    pub target_days: Option<u32>,
}

impl Footage {
    /// A camera's connection and stream now, as the camera list and the
    /// system page show it.
    pub fn camera_live(&self, s: &candor_recorder::Status) -> candor_wire::CameraLive {
        let (state, since, error) = state_fields(&s.camera.state);
        let (fps, bitrate) = self.rate(&s.camera.name, s.storage.frames, s.storage.bytes);
        candor_wire::CameraLive {
            name: s.camera.name.clone(),
            state: state.into(),
            streaming_since: since,
            error,
            last_error: s.camera.last_error.clone(),
            reconnects: s.camera.reconnects,
            codec: s.camera.codec.clone(),
            resolution: s.camera.resolution,
            fps,
            bitrate,
        }
    }
}

impl Policy {
    /// The retention the config asks for, as the storage page shows it.
    pub fn from_config(cfg: &candor_recorder::Config) -> Policy {
        Policy {
            max_bytes: cfg.storage.max_bytes.map(|b| b.0),
            cameras: cfg
                .cameras
                .iter()
                .map(|c| {
                    let limits = (c.max_age.map(|d| d.0.as_secs()), c.max_bytes.map(|b| b.0));
                    (c.name.get_ref().0.clone(), limits)
                })
                .collect(),
            target_days: cfg.storage.target_days,
        }
    }
}

struct Rate {
    at: Instant,
    frames: u64,
    bytes: u64,
    fps: Option<f64>,
    bps: Option<f64>,
}

impl Footage {
    pub fn new(store: Store, status: StatusSource, policy: Policy) -> Footage {
        Footage {
            store,
            status,
            policy,
            writable: None,
            config_path: None,
            cloud: None,
            updates: None,
            listener: None,
            held: Default::default(),
            rates: Mutex::new(HashMap::new()),
        }
    }

    pub fn with_config_path(mut self, path: std::path::PathBuf) -> Footage {
        self.config_path = Some(path);
        self
    }

    pub fn with_cloud(mut self, cloud: Option<candor_recorder::cloud::CloudHandle>) -> Footage {
        self.cloud = cloud;
        self
    }

    pub fn with_updates(mut self, updates: Option<candor_recorder::updates::Updates>) -> Footage {
        self.updates = updates;
        self
    }

    pub fn with_listener_swap(
        mut self,
        tx: tokio::sync::mpsc::Sender<tokio::net::TcpListener>,
    ) -> Footage {
        self.listener = Some(tx);
        self
    }

    pub fn with_writable(mut self, store: Arc<Store>) -> Footage {
        self.writable = Some(store);
        self
    }

    /// Frames and bits per second over the last window of at least 2 s,
    /// measured from the writer's counters between calls.
    pub fn rate(&self, camera: &str, frames: u64, bytes: u64) -> (Option<f64>, Option<f64>) {
        let mut rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let r = rates.entry(camera.to_owned()).or_insert(Rate {
            at: now,
            frames,
            bytes,
            fps: None,
            bps: None,
        });
        let dt = now.duration_since(r.at).as_secs_f64();
        if dt >= 2.0 {
            r.fps = Some(frames.saturating_sub(r.frames) as f64 / dt);
            r.bps = Some(bytes.saturating_sub(r.bytes) as f64 * 8.0 / dt);
            (r.at, r.frames, r.bytes) = (now, frames, bytes);
        }
        (r.fps, r.bps)
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    /// `1`: `Content-Disposition: attachment` (a download), else inline (playback).
    pub(crate) download: Option<u8>,
}

fn time(v: Option<&str>, name: &str, default: i64) -> Result<Time90k, ApiError> {
    match v {
        None => Ok(Time90k(default)),
        Some(s) => Time90k::parse_rfc3339(s).map_err(|_| {
            ApiError::bad_request(
                "bad_time",
                format!("{name} must be RFC 3339, e.g. 2026-11-27T10:00:00Z"),
            )
        }),
    }
}

fn footage(st: &AppState) -> Result<Arc<Footage>, ApiError> {
    st.footage.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_recorder",
            "no recorder attached",
        )
    })
}

pub(crate) fn no_camera(name: &str) -> ApiError {
    ApiError::not_found(format!("no camera named {name:?}")).with_code("no_camera")
}

/// The prologue of every per-camera route: may the caller see it, and the footage.
pub(crate) fn camera_access(
    st: &AppState,
    p: &Principal,
    name: &str,
) -> Result<Arc<Footage>, ApiError> {
    if !p.may_see(name) {
        return Err(no_camera(name));
    }
    footage(st)
}

/// [`camera_access`] for a camera's settings: a technician with the config
/// scope reaches them without its video.
pub(crate) fn camera_settings_access(
    st: &AppState,
    p: &Principal,
    name: &str,
) -> Result<Arc<Footage>, ApiError> {
    if !p.may_configure(name) {
        return Err(no_camera(name));
    }
    footage(st)
}

fn camera_id(f: &Footage, name: &str) -> Result<i64, ApiError> {
    match f.store.camera_id(name) {
        Ok(Some(id)) => Ok(id),
        Ok(None) => Err(no_camera(name)),
        Err(e) => Err(ApiError::internal(e)),
    }
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| ApiError::bad_request("bad_query", e.body_text()))
}

pub(crate) fn state_fields(s: &CameraState) -> (&'static str, Option<String>, Option<String>) {
    match s {
        CameraState::Connecting => ("connecting", None, None),
        CameraState::Streaming { since } => ("streaming", Some(since.to_string()), None),
        CameraState::Backoff { last_error, .. } => ("reconnecting", None, Some(last_error.clone())),
        CameraState::Stopped => ("stopped", None, None),
    }
}

pub async fn cameras(State(st): State<AppState>, Caller(p): Caller) -> ApiResult {
    let f = footage(&st)?;
    let list: Vec<_> = p
        .visible(f.status.status(), |s| &s.camera.name)
        .into_iter()
        .map(|s| candor_wire::Camera {
            live: f.camera_live(&s),
            frames_written: s.storage.frames,
            bytes_written: s.storage.bytes,
        })
        .collect();
    Ok(Json(candor_wire::CameraList { cameras: list }).into_response())
}

pub async fn spans(
    State(st): State<AppState>,
    Path(name): Path<String>,
    q: Result<Query<TimeRange>, QueryRejection>,
    Caller(p): Caller,
) -> ApiResult {
    let f = camera_access(&st, &p, &name)?;
    let q = query(q)?;
    // Default: the last 31 days. Listing streams the segment rows (about
    // 45,000 a camera-month) under the index lock; the bound keeps that
    // lock short.
    let to = time(q.to.as_deref(), "to", (Time90k::now() + DAY).0)?;
    let from = time(q.from.as_deref(), "from", to.0 - MAX_SPANS_RANGE.0)?;
    check_range(from, to, MAX_SPANS_RANGE, "spans")?;
    let (spans, settled) = tokio::task::spawn_blocking(move || {
        let id = camera_id(&f, &name)?;
        let spans =
            candor_storage::export::spans(&f.store, id, from, to).map_err(ApiError::internal)?;
        let settled =
            candor_storage::export::settled_end(&f.store, id).map_err(ApiError::internal)?;
        Ok::<_, ApiError>((spans, settled))
    })
    .await??;
    let list: Vec<_> = spans
        .iter()
        .map(|s| {
            candor_wire::Span::new(
                s.start.to_string(),
                s.end.to_string(),
                (s.end - s.start).as_secs_f64(),
            )
        })
        .collect();
    // Exports ending at or before `settled_end` are byte-for-byte stable,
    // which players that seek with Range requests rely on.
    Ok(Json(candor_wire::SpanList {
        spans: list,
        settled_end: settled.map(|t| t.to_string()),
    })
    .into_response())
}

/// A strong validator for a planned export: its header fixes every byte's
/// place and size, and the segment ids fix where the bytes come from.
fn etag(e: &Export) -> String {
    let mut h = Sha256::new();
    h.update(e.header());
    for id in e.segment_ids() {
        h.update(id.to_le_bytes());
    }
    let d = h.finalize();
    format!(
        "\"{}\"",
        d[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// A Range that lies wholly outside the body (HTTP 416).
#[derive(Debug, PartialEq, Eq)]
pub struct Unsatisfiable;

/// Parses a `Range` header against a body of `len` bytes: one
/// `bytes=a-b`, `bytes=a-` or `bytes=-n` range. `Ok(None)`: no (usable)
/// Range, send everything; `Err`: unsatisfiable (416).
pub fn parse_range(v: &str, len: u64) -> Result<Option<std::ops::Range<u64>>, Unsatisfiable> {
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // multipart ranges: answer with the whole file, as RFC 9110 allows
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| Unsatisfiable);
    let r = match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, true) => return Ok(None),
        (true, false) => {
            let n = num(b)?;
            if n == 0 {
                return Err(Unsatisfiable);
            }
            len.saturating_sub(n)..len
        }
        (false, true) => num(a)?..len,
        (false, false) => {
            let (a, b) = (num(a)?, num(b)?);
            if b < a {
                return Ok(None);
            }
            a..(b.saturating_add(1)).min(len)
        }
    };
    if r.start >= len {
        return Err(Unsatisfiable);
    }
    Ok(Some(r))
}

/// Streams an MP4 of `[from, to)`: the same file as `candor export`. HTTP
/// Range and `If-None-Match`/`If-Range` work, so a `<video>` element can
/// play and seek in it directly: that is how the web app plays footage back.
pub async fn export(
    State(st): State<AppState>,
    Path(name): Path<String>,
    q: Result<Query<TimeRange>, QueryRejection>,
    method: Method,
    headers: HeaderMap,
    Caller(p): Caller,
) -> ApiResult {
    let f = camera_access(&st, &p, &name)?;
    let q = query(q)?;
    let (Some(from), Some(to)) = (q.from.as_deref(), q.to.as_deref()) else {
        return Err(ApiError::bad_request(
            "bad_time",
            "from and to are required (RFC 3339)",
        ));
    };
    let (from, to) = (time(Some(from), "from", 0)?, time(Some(to), "to", 0)?);
    check_range(from, to, MAX_EXPORT_RANGE, "export")?;
    // Planning holds the range's frame indexes in memory, and the body
    // streams for as long as the client reads: bounded per user.
    let slot = ExportSlot::take(&st, &p.username)?;
    let cam = name.clone();
    let export = tokio::task::spawn_blocking(move || {
        let id = camera_id(&f, &cam)?;
        match Export::plan(&f.store, id, from, to) {
            Ok(e) => Ok(e),
            Err(e @ (ExportError::NoFootage { .. } | ExportError::BadRange { .. })) => {
                Err(ApiError::not_found(e.to_string()).with_code("no_footage"))
            }
            Err(e) => Err(ApiError::internal(e)),
        }
    })
    .await??;
    let len = export.total_len();
    let tag = etag(&export);
    let hv = |k: header::HeaderName| headers.get(k).and_then(|v| v.to_str().ok());
    if hv(header::IF_NONE_MATCH).is_some_and(|v| v.split(',').any(|t| t.trim() == tag)) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response());
    }
    // A Range applies only if the client's copy is this same file.
    let if_range_ok = hv(header::IF_RANGE).is_none_or(|v| v.trim() == tag);
    let range = match hv(header::RANGE).filter(|_| if_range_ok) {
        Some(v) => match parse_range(v, len) {
            Ok(r) => r,
            Err(Unsatisfiable) => {
                return Ok((
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [(header::CONTENT_RANGE, format!("bytes */{len}"))],
                )
                    .into_response());
            }
        },
        None => None,
    };
    let download = q.download == Some(1);
    // One audit line per viewing, not per Range request a player makes while seeking.
    if range.as_ref().is_none_or(|r| r.start == 0) {
        st.audit(
            Some(&p.username),
            if download { "export" } else { "playback" },
            format!("{name} {} .. {}", export.from, export.to),
        )
        .await;
    }
    let (status, body_range) = match &range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r.clone()),
        None => (StatusCode::OK, 0..len),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(8);
    if method != Method::HEAD {
        let br = body_range.clone();
        tokio::task::spawn_blocking(move || {
            let mut w = ChanWriter {
                tx,
                buf: Vec::with_capacity(CHUNK),
            };
            if let Err(e) = export.write_range(&mut w, br, |_| {}) {
                // The client sees a truncated body; the reason goes to the log.
                tracing::warn!("export stream ended early: {e}");
                let _ =
                    w.tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        });
    }
    // The user's export slot is held until the body is sent or the client
    // goes away, not only while the writer fills the channel.
    let stream = futures::stream::unfold((rx, slot), |(mut rx, slot)| async move {
        rx.recv().await.map(|c| (c, (rx, slot)))
    });
    let filename = format!("{name}-{}.mp4", from.to_string().replace(':', "-"));
    let mut resp = (status, axum::body::Body::from_stream(stream)).into_response();
    let h = resp.headers_mut();
    let val = |s: String| HeaderValue::from_str(&s).map_err(ApiError::internal);
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(
        header::CONTENT_LENGTH,
        val((body_range.end - body_range.start).to_string())?,
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, val(tag)?);
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    if range.is_some() {
        h.insert(
            header::CONTENT_RANGE,
            val(format!(
                "bytes {}-{}/{len}",
                body_range.start,
                body_range.end - 1
            ))?,
        );
    }
    // Camera names are free text: keep the header to a safe ASCII subset.
    let safe: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disp = if download { "attachment" } else { "inline" };
    h.insert(
        header::CONTENT_DISPOSITION,
        val(format!("{disp}; filename=\"{safe}\""))?,
    );
    Ok(resp)
}

const DAY: candor_media::Duration90k = candor_media::Duration90k(86_400 * 90_000);
/// The longest range one spans request covers (the timeline asks for less).
pub const MAX_SPANS_RANGE: candor_media::Duration90k =
    candor_media::Duration90k(31 * 86_400 * 90_000);
/// The longest range one export covers; longer footage is exported in parts.
pub const MAX_EXPORT_RANGE: candor_media::Duration90k = candor_media::Duration90k(86_400 * 90_000);
/// Exports (and playbacks, which are exports) one user may run at once.
pub const MAX_EXPORTS_PER_USER: usize = 8;

fn check_range(
    from: Time90k,
    to: Time90k,
    max: candor_media::Duration90k,
    what: &str,
) -> Result<(), ApiError> {
    if to.0.saturating_sub(from.0) > max.0 {
        return Err(ApiError::bad_request(
            "range_too_long",
            format!(
                "one {what} request covers at most {} hours; split the range",
                max.0 / 90_000 / 3600
            ),
        ));
    }
    Ok(())
}

/// One of a user's running exports; dropped when the body is written (or
/// the client goes away).
struct ExportSlot {
    map: Arc<Mutex<HashMap<String, usize>>>,
    user: String,
}

impl ExportSlot {
    fn take(st: &AppState, user: &str) -> Result<ExportSlot, ApiError> {
        let mut m = st.exports.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(user.to_owned()).or_insert(0);
        if *n >= MAX_EXPORTS_PER_USER {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_exports",
                format!(
                    "at most {MAX_EXPORTS_PER_USER} exports or playbacks at once per user; wait for one to finish"
                ),
            )
            .retry_after(2));
        }
        *n += 1;
        Ok(ExportSlot {
            map: st.exports.clone(),
            user: user.to_owned(),
        })
    }
}

impl Drop for ExportSlot {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.user);
            }
        }
    }
}

impl ApiError {
    pub fn with_code(mut self, code: &'static str) -> ApiError {
        self.code = code;
        self
    }
}

const CHUNK: usize = 256 * 1024;

/// Adapts the blocking export writer to an async body, 256 KiB at a time;
/// the bounded channel applies the client's back-pressure to disk reads.
struct ChanWriter {
    tx: tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChanWriter {
    fn send(&mut self) -> std::io::Result<()> {
        let chunk = bytes::Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl std::io::Write for ChanWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

/// `GET /api/v1/cameras/{name}/snapshot.jpg`: what the camera sees now (its
/// next key frame, decoded). For drawing motion zones, and for stills.
pub async fn snapshot(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Caller(p): Caller,
) -> ApiResult {
    let f = camera_access(&st, &p, &name)?;
    let rx = f
        .status
        .subscribe(&name)
        .ok_or_else(|| not_running(&f, &name))?;
    let jpeg = candor_recorder::snapshot::grab(rx, std::time::Duration::from_secs(6))
        .await
        .map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "no_snapshot",
                format!("no picture from {name}: {e}"),
            )
        })?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "image/jpeg"),
            (axum::http::header::CACHE_CONTROL, "no-store"),
        ],
        jpeg,
    )
        .into_response())
}

/// Why a camera the caller may see is not running here: it does not exist
/// (404, as for any unknown camera), or it has footage but this recorder
/// doesn't run it (removed from the config, or a footage-only server: 503).
pub(crate) fn not_running(f: &Footage, name: &str) -> ApiError {
    match f.store.camera_id(name) {
        // Not a server fault: the camera was removed (or renamed) and its
        // footage is kept until retention removes it.
        Ok(Some(_)) => ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "not_running",
            format!(
                "camera {name:?} has footage here but is not in the configuration now; add it again to change its settings"
            ),
        ),
        _ => no_camera(name),
    }
}

#[cfg(test)]
#[path = "footage_tests.rs"]
mod tests;
