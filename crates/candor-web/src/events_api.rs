//! Events: the list (filtered, newest first) and a live feed (Server-Sent
//! Events). Both show only the cameras the caller may see.

use crate::{ApiError, ApiResult, AppState, Caller};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use candor_media::Time90k;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    camera: Option<String>,
    /// RFC 3339: events still going on at or after this instant.
    since: Option<String>,
    kind: Option<String>,
    /// Object events of this label only (`person`, `car`, …).
    label: Option<String>,
    limit: Option<u32>,
}

pub async fn list(
    State(st): State<AppState>,
    Caller(p): Caller,
    q: Result<Query<EventQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    if let Some(l) = &q.label
        && candor_detect::Label::from_name(l).is_none()
    {
        return Err(ApiError::bad_request(
            "bad_label",
            "label must be one of person, bicycle, car, motorcycle, bus, truck",
        ));
    }
    let f = st
        .footage
        .clone()
        .ok_or_else(|| ApiError::not_found("no recorder attached"))?;
    if let Some(c) = &q.camera
        && !p.may_see(c)
    {
        return Err(crate::footage::no_camera(c));
    }
    let since = q
        .since
        .as_deref()
        .map(|s| {
            Time90k::parse_rfc3339(s)
                .map_err(|_| ApiError::bad_request("bad_time", "since must be RFC 3339"))
        })
        .transpose()?;
    let list = tokio::task::spawn_blocking(move || {
        let camera_id = match &q.camera {
            Some(c) => Some(
                f.store
                    .camera_id(c)
                    .map_err(ApiError::internal)?
                    .ok_or_else(|| crate::footage::no_camera(c))?,
            ),
            None => None,
        };
        let all = f
            .store
            .events(&candor_storage::events::EventFilter {
                camera_id,
                since,
                limit: Some(q.limit.unwrap_or(500).min(5000)),
                // The scope goes into the query, before the limit.
                cameras: p.cameras.clone(),
                kind: q.kind.clone(),
                label: q.label.clone(),
                id: None,
            })
            .map_err(ApiError::internal)?;
        Ok::<_, ApiError>(
            p.visible(all, |e| &e.camera)
                .iter()
                .map(candor_wire::Event::from)
                .collect::<Vec<_>>(),
        )
    })
    .await??;
    Ok(Json(candor_wire::EventList { events: list }).into_response())
}

/// An event's snapshot (`snapshot.jpg`; an object event's with its box
/// drawn), thumbnail (`thumbnail.jpg`), or an object event's picture
/// without the box (`clean.jpg`).
/// Events of cameras the caller may not see look exactly like missing ones.
pub async fn snapshot(
    State(st): State<AppState>,
    Caller(p): Caller,
    axum::extract::Path((id, file)): axum::extract::Path<(String, String)>,
) -> ApiResult {
    let missing = || ApiError::not_found("no such event snapshot").with_code("no_snapshot");
    use candor_storage::events::Snapshot;
    let which = match file.as_str() {
        "snapshot.jpg" => Snapshot::Full,
        "thumbnail.jpg" => Snapshot::Thumbnail,
        "clean.jpg" => Snapshot::Clean,
        _ => return Err(missing()),
    };
    let id: i64 = id.parse().map_err(|_| missing())?;
    let f = st
        .footage
        .clone()
        .ok_or_else(|| ApiError::not_found("no recorder attached"))?;
    let jpeg = tokio::task::spawn_blocking(move || {
        let e = f
            .store
            .event(id)
            .map_err(ApiError::internal)?
            .ok_or_else(missing)?;
        if !p.may_see(&e.camera) {
            return Err(missing());
        }
        f.store
            .snapshot(id, which)
            .map_err(ApiError::internal)?
            .ok_or_else(missing)
    })
    .await??;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "image/jpeg"),
            // The peak picture may replace the first one when the event ends.
            (axum::http::header::CACHE_CONTROL, "private, max-age=10"),
        ],
        jpeg,
    )
        .into_response())
}

/// The event behind a cloud alarm (the id a push notification carries):
/// where a tapped notification leads. Alarms of cameras the caller may not
/// see look exactly like missing ones.
pub async fn by_alarm(
    State(st): State<AppState>,
    Caller(p): Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> ApiResult {
    let missing = || ApiError::not_found("no such alarm (or it is too old)").with_code("no_alarm");
    let id: i64 = id.parse().map_err(|_| missing())?;
    let f = st
        .footage
        .clone()
        .ok_or_else(|| ApiError::not_found("no recorder attached"))?;
    let e = tokio::task::spawn_blocking(move || {
        let event = f
            .store
            .alarm_event(id)
            .map_err(ApiError::internal)?
            .ok_or_else(missing)?;
        let e = f
            .store
            .event(event)
            .map_err(ApiError::internal)?
            .ok_or_else(missing)?;
        if !p.may_see(&e.camera) {
            return Err(missing());
        }
        Ok(candor_wire::Event::from(&e))
    })
    .await??;
    Ok(Json(e).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    pinned: bool,
}

/// Protects the footage around an event (its pre/post capture included)
/// from retention, or releases it. Operators and admins; audited.
pub async fn pin(
    State(st): State<AppState>,
    Caller(p): Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
    b: Result<Json<Pin>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let missing = || ApiError::not_found("no such event").with_code("no_event");
    let id: i64 = id.parse().map_err(|_| missing())?;
    let Json(b) = b.map_err(|e| ApiError::bad_request("bad_body", e.body_text()))?;
    let f = st
        .footage
        .clone()
        .ok_or_else(|| ApiError::not_found("no recorder attached"))?;
    let who = p.clone();
    let camera = tokio::task::spawn_blocking(move || {
        let e = f
            .store
            .event(id)
            .map_err(ApiError::internal)?
            .ok_or_else(missing)?;
        if !who.may_see(&e.camera) {
            return Err(missing());
        }
        let w = f.writable.as_ref().ok_or_else(|| {
            ApiError::not_found("this server shows footage read-only; pin events on the recorder")
        })?;
        // Retention may have pruned it since the read above: then nothing
        // was pinned, and saying so (not 200, not an audit line claiming a
        // pin) is the truth.
        // A pin holds the camera's pre- and post-capture as they are now
        // (none for a camera no longer configured), whatever they become.
        let pin = b
            .pinned
            .then(|| f.status.capture_90k(&e.camera).unwrap_or((0, 0)));
        if !w.set_event_pinned(id, pin).map_err(ApiError::internal)? {
            return Err(missing());
        }
        Ok::<_, ApiError>(e.camera)
    })
    .await??;
    st.audit(
        Some(&p.username),
        if b.pinned {
            "event_pinned"
        } else {
            "event_unpinned"
        },
        format!("event {id} on {camera}"),
    )
    .await;
    Ok(Json(candor_wire::Pinned {
        id,
        pinned: b.pinned,
    })
    .into_response())
}

/// `text/event-stream`: one `event` message per change, as JSON.
pub async fn live(State(st): State<AppState>, Caller(p): Caller) -> ApiResult {
    let f = st
        .footage
        .clone()
        .ok_or_else(|| ApiError::not_found("no recorder attached"))?;
    let rx = f.status.subscribe_events();
    // The caller is checked again every few seconds: a revoked session or
    // token, a deleted user or a narrowed camera list ends or filters the
    // feed within `STREAM_RECHECK`.
    let accounts = st.accounts.clone();
    let start = (rx, p, accounts, std::time::Instant::now());
    let stream =
        futures::stream::unfold(start, |(mut rx, mut p, accounts, mut checked)| async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let next = tokio::time::timeout(crate::STREAM_RECHECK, rx.recv()).await;
                if checked.elapsed() >= crate::STREAM_RECHECK {
                    p = p.refresh(&accounts)?;
                    checked = std::time::Instant::now();
                }
                match next {
                    Err(_) | Ok(Err(RecvError::Lagged(_))) => continue,
                    Ok(Err(RecvError::Closed)) => return None,
                    Ok(Ok(e)) if p.may_see(&e.camera) => {
                        let ev = SseEvent::default().event("event").data(e.to_json());
                        return Some((
                            Ok::<_, std::convert::Infallible>(ev),
                            (rx, p, accounts, checked),
                        ));
                    }
                    Ok(Ok(_)) => continue,
                }
            }
        });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}
