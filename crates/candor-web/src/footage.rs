//! Camera, spans and export routes. They read the index through their own
//! read-only connection, so HTTP readers never wait on the recorder's writer.
//!
//! Not yet: per-camera scopes (every logged-in user sees every camera) and
//! HTTP Range/ETag on exports.

// Helpers return a ready error response for the handler to pass on; these are
// per-request slow paths where a 128-byte Err costs nothing that matters.
#![allow(clippy::result_large_err)]

use crate::{AppState, api_error, require};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use candor_media::Time90k;
use candor_recorder::{CameraState, StatusSource};
use candor_storage::{Export, ExportError, Store};
use std::sync::Arc;

/// What the footage routes read.
pub struct Footage {
    pub store: Store,
    pub status: StatusSource,
}

#[derive(serde::Deserialize)]
pub struct Range {
    from: Option<String>,
    to: Option<String>,
}

fn time(v: Option<&str>, name: &str, default: i64) -> Result<Time90k, Response> {
    match v {
        None => Ok(Time90k(default)),
        Some(s) => Time90k::parse_rfc3339(s).map_err(|_| {
            api_error(
                StatusCode::BAD_REQUEST,
                "bad_time",
                format!("{name} must be RFC 3339, e.g. 2026-11-27T10:00:00Z"),
            )
        }),
    }
}

fn footage(st: &AppState) -> Result<&Arc<Footage>, Response> {
    st.footage.as_ref().ok_or_else(|| {
        api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_recorder",
            "no recorder attached".into(),
        )
    })
}

/// The prologue of every per-camera route: a session, then the footage.
fn session_and_footage(
    st: &AppState,
    headers: &HeaderMap,
    method: &Method,
) -> Result<(String, Arc<Footage>), Response> {
    let (_, session) = require(st, headers, method)?;
    Ok((session.username, footage(st)?.clone()))
}

fn camera_id(f: &Footage, name: &str) -> Result<i64, Response> {
    match f.store.camera_id(name) {
        Ok(Some(id)) => Ok(id),
        Ok(None) => Err(api_error(
            StatusCode::NOT_FOUND,
            "no_camera",
            format!("no camera named {name:?}"),
        )),
        Err(e) => Err(internal(e)),
    }
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!("footage route: {e}");
    api_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error; see the recorder's log".into(),
    )
}

pub async fn cameras(State(st): State<AppState>, method: Method, headers: HeaderMap) -> Response {
    if let Err(r) = require(&st, &headers, &method) {
        return r;
    }
    let f = match footage(&st) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let list: Vec<_> = f
        .status
        .status()
        .into_iter()
        .map(|s| {
            let (state, since, error) = match &s.camera.state {
                CameraState::Connecting => ("connecting", None, None),
                CameraState::Streaming { since } => ("streaming", Some(since.to_string()), None),
                CameraState::Backoff { last_error, .. } => ("reconnecting", None, Some(last_error.clone())),
                CameraState::Stopped => ("stopped", None, None),
            };
            serde_json::json!({
                "name": s.camera.name, "state": state, "streaming_since": since, "error": error,
                "last_error": s.camera.last_error, "reconnects": s.camera.reconnects, "codec": s.camera.codec,
                "resolution": s.camera.resolution, "frames_written": s.storage.frames, "bytes_written": s.storage.bytes,
            })
        })
        .collect();
    Json(serde_json::json!({ "cameras": list })).into_response()
}

pub async fn spans(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<Range>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let f = match session_and_footage(&st, &headers, &method) {
        Ok((_, f)) => f,
        Err(r) => return r,
    };
    let (from, to) = match (
        time(q.from.as_deref(), "from", i64::MIN / 2),
        time(q.to.as_deref(), "to", i64::MAX / 2),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let r = tokio::task::spawn_blocking(move || {
        let id = camera_id(&f, &name)?;
        candor_storage::export::spans(&f.store, id, from, to).map_err(internal)
    })
    .await;
    match r {
        Ok(Ok(spans)) => {
            let list: Vec<_> =
                spans.iter().map(|s| serde_json::json!({ "start": s.start.to_string(), "end": s.end.to_string() })).collect();
            Json(serde_json::json!({ "spans": list })).into_response()
        }
        Ok(Err(r)) => r,
        Err(e) => internal(e),
    }
}

/// Streams an MP4 of `[from, to)`: the same file as `candor export`.
pub async fn export(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<Range>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let (user, f) = match session_and_footage(&st, &headers, &method) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (Some(from), Some(to)) = (q.from.as_deref(), q.to.as_deref()) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "bad_time",
            "from and to are required (RFC 3339)".into(),
        );
    };
    let (from, to) = match (time(Some(from), "from", 0), time(Some(to), "to", 0)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let cam = name.clone();
    let planned = tokio::task::spawn_blocking(move || {
        let id = camera_id(&f, &cam)?;
        match Export::plan(&f.store, id, from, to) {
            Ok(e) => Ok((f, e)),
            Err(e @ (ExportError::NoFootage { .. } | ExportError::BadRange { .. })) => Err(
                api_error(StatusCode::NOT_FOUND, "no_footage", e.to_string()),
            ),
            Err(e) => Err(internal(e)),
        }
    })
    .await;
    let (_f, export) = match planned {
        Ok(Ok(v)) => v,
        Ok(Err(r)) => return r,
        Err(e) => return internal(e),
    };
    let _ = st.accounts.audit(
        Some(&user),
        "export",
        &format!("{name} {} .. {}", export.from, export.to),
    );
    let len = export.total_len();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(8);
    tokio::task::spawn_blocking(move || {
        let mut w = ChanWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        if let Err(e) = export.write_to(&mut w, |_| {}) {
            // The client sees a truncated body; the reason goes to the log.
            tracing::warn!("export stream ended early: {e}");
            let _ =
                w.tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let filename = format!("{name}-{}.mp4", from.to_string().replace(':', "-"));
    (
        [
            (header::CONTENT_TYPE, "video/mp4".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
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
