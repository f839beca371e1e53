//! Share links (docs/design/remote.md, "Share links"): an operator shares a
//! clip (one camera, one range) or one camera's live view with someone who
//! has no account, e.g. the police or a guard. The link is
//! `https://<recorder>/#share=<token>`: the token sits in the fragment, which
//! browsers never send to a server or put in a Referer. The share page
//! sends it in the `X-Candor-Share` header (for live, as a WebSocket
//! subprotocol). A link shows only what was shared; anything else, and an
//! expired or revoked link, is a 404. Every opening is audited.

use crate::accounts::shares::{DEFAULT_SECS, MAX_SECS, Share};
use crate::footage::{TimeRange, camera_access};
use crate::{ApiError, ApiResult, AppState, Caller, Principal, Via};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::IntoResponse;
use candor_media::Time90k;

/// A clip share covers at most this much footage (the share page plays it
/// whole, in memory, on a phone).
pub const MAX_CLIP_SECS: i64 = 15 * 60;
pub const HEADER: &str = "x-candor-share";
/// The WebSocket subprotocol a live share page asks for; the token follows
/// it in the list.
pub const PROTOCOL: &str = "candor-share";

fn missing() -> ApiError {
    ApiError::not_found("no such share link, or it expired or was revoked").with_code("no_share")
}

fn ts(t90k: i64) -> String {
    Time90k(t90k).to_timestamp().to_string()
}

fn secs_ts(s: i64) -> String {
    jiff::Timestamp::from_second(s)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn json(s: &Share) -> candor_wire::ShareLink {
    candor_wire::ShareLink {
        id: s.id,
        kind: s.kind.clone(),
        camera: s.camera.clone(),
        from: s.range.map(|r| ts(r.0)),
        to: s.range.map(|r| ts(r.1)),
        note: s.note.clone(),
        created_by: s.created_by.clone(),
        created_at: secs_ts(s.created_at),
        expires_at: secs_ts(s.expires_at),
        revoked_at: s.revoked_at.map(secs_ts),
        views: s.views,
        link: None,
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewShare {
    camera: String,
    /// RFC 3339; both for a clip, neither for live view.
    from: Option<String>,
    to: Option<String>,
    /// Seconds until the link stops working (default a day, at most 7).
    expires_in_secs: Option<i64>,
    #[serde(default)]
    note: String,
}

/// `POST /api/v1/shares` (operators and admins who may see the camera).
pub async fn create(
    State(st): State<AppState>,
    Caller(p): Caller,
    body: axum::body::Bytes,
) -> ApiResult {
    let b: NewShare = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("bad_body", format!("share link: {e}")))?;
    let f = camera_access(&st, &p, &b.camera)?;
    if f.store
        .camera_id(&b.camera)
        .map_err(ApiError::internal)?
        .is_none()
    {
        return Err(crate::footage::no_camera(&b.camera));
    }
    let time = |s: &str, what: &str| {
        Time90k::parse_rfc3339(s)
            .map(|t| t.0)
            .map_err(|_| ApiError::bad_request("bad_time", format!("{what} must be RFC 3339")))
    };
    let range = match (b.from.as_deref(), b.to.as_deref()) {
        (Some(a), Some(z)) => {
            let (a, z) = (time(a, "from")?, time(z, "to")?);
            if z <= a || z - a > MAX_CLIP_SECS * 90_000 {
                return Err(ApiError::bad_request(
                    "bad_range",
                    format!(
                        "a shared clip is from < to, at most {} minutes",
                        MAX_CLIP_SECS / 60
                    ),
                ));
            }
            Some((a, z))
        }
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request(
                "bad_range",
                "give both from and to (a clip), or neither (live view)",
            ));
        }
    };
    let secs = b.expires_in_secs.unwrap_or(DEFAULT_SECS);
    if !(60..=MAX_SECS).contains(&secs) {
        return Err(ApiError::bad_request(
            "bad_expiry",
            format!("expires_in_secs must be 60 to {MAX_SECS} (7 days)"),
        ));
    }
    let (accounts, who, cam, note) = (
        st.accounts.clone(),
        p.username.clone(),
        b.camera.clone(),
        b.note.clone(),
    );
    let (share, token) =
        tokio::task::spawn_blocking(move || accounts.create_share(&cam, range, &note, &who, secs))
            .await??;
    st.audit(
        Some(&p.username),
        "share_created",
        format!(
            "link {} to {} of {}{}, until {}",
            share.id,
            if share.kind == "clip" {
                "a clip"
            } else {
                "live view"
            },
            share.camera,
            share
                .range
                .map(|r| format!(" {} .. {}", ts(r.0), ts(r.1)))
                .unwrap_or_default(),
            secs_ts(share.expires_at)
        ),
    )
    .await;
    let mut j = json(&share);
    j.link = Some(format!("#share={token}"));
    Ok((axum::http::StatusCode::CREATED, Json(j)).into_response())
}

/// `GET /api/v1/shares`: links of the cameras the caller may see.
pub async fn list(State(st): State<AppState>, Caller(p): Caller) -> ApiResult {
    let all = st.accounts.shares()?;
    Ok(Json(candor_wire::ShareList {
        shares: p.visible(all, |s| &s.camera).iter().map(json).collect(),
    })
    .into_response())
}

/// `DELETE /api/v1/shares/{id}`: the link stops working at once (a live
/// view through it ends within seconds).
pub async fn revoke(
    State(st): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> ApiResult {
    let id: i64 = id.parse().map_err(|_| missing())?;
    let visible = st
        .accounts
        .shares()?
        .into_iter()
        .any(|s| s.id == id && p.may_see(&s.camera));
    if !visible {
        return Err(missing());
    }
    let s = st.accounts.revoke_share(id)?.ok_or_else(missing)?;
    st.audit(
        Some(&p.username),
        "share_revoked",
        format!("link {id} of {}", s.camera),
    )
    .await;
    Ok(Json(json(&s)).into_response())
}

/// The link a request carries, valid now; and who it acts as.
fn opened(st: &AppState, token: Option<&str>, view: bool) -> Result<(Share, Principal), ApiError> {
    let token = token.ok_or_else(missing)?;
    let s = st
        .accounts
        .share_by_token(token, view)?
        .ok_or_else(missing)?;
    let p = Principal {
        username: format!("share link {}", s.id),
        role: crate::accounts::Role::Viewer,
        cameras: Some(vec![s.camera.clone()]),
        via: Via::Share { id: s.id },
    };
    Ok((s, p))
}

fn header_token(h: &HeaderMap) -> Option<&str> {
    h.get(HEADER).and_then(|v| v.to_str().ok())
}

/// `GET /api/v1/share`: what the link shows (one view in the audit log).
pub async fn open(State(st): State<AppState>, headers: HeaderMap) -> ApiResult {
    let (s, p) = opened(&st, header_token(&headers), true)?;
    st.audit(
        Some(&p.username),
        "share_viewed",
        format!("{} of {} (view {})", s.kind, s.camera, s.views + 1),
    )
    .await;
    let mut j = json(&s);
    // Who made it and why stay on the recorder.
    j.created_by = String::new();
    j.note = String::new();
    Ok(Json(j).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipQuery {
    camera: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// `GET /api/v1/share/clip.mp4`: the shared clip, or a part of it; any
/// other camera or range is a 404.
pub async fn clip(
    State(st): State<AppState>,
    method: Method,
    headers: HeaderMap,
    q: Result<Query<ClipQuery>, QueryRejection>,
) -> ApiResult {
    let (s, p) = opened(&st, header_token(&headers), false)?;
    let Query(q) = q.map_err(|_| missing())?;
    let (a, z) = s.range.ok_or_else(missing)?;
    if q.camera.as_ref().is_some_and(|c| *c != s.camera) {
        return Err(missing());
    }
    let within = |v: &Option<String>, default: i64| match v {
        None => Ok(default),
        Some(t) => Time90k::parse_rfc3339(t)
            .map(|t| t.0)
            .ok()
            .filter(|t| (a..=z).contains(t))
            .ok_or_else(missing),
    };
    let (from, to) = (within(&q.from, a)?, within(&q.to, z)?);
    if to <= from {
        return Err(missing());
    }
    crate::footage::export(
        State(st),
        Path(s.camera.clone()),
        Ok(Query(TimeRange {
            from: Some(ts(from)),
            to: Some(ts(to)),
            download: None,
        })),
        method,
        headers,
        Caller(p),
    )
    .await
}

/// `GET /api/v1/share/live`: the shared camera's live view, over a
/// WebSocket whose subprotocols are `candor-share` and the token; it ends
/// when the link expires or is revoked.
pub async fn live(
    State(st): State<AppState>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult {
    let offered: Vec<String> = headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_owned()))
        .collect();
    let token = offered
        .iter()
        .position(|p| p == PROTOCOL)
        .and_then(|i| offered.get(i + 1))
        .map(String::as_str)
        .or_else(|| header_token(&headers));
    let (s, p) = opened(&st, token, false)?;
    if s.kind != "live" {
        return Err(missing());
    }
    crate::live::live(
        State(st),
        Caller(p),
        Path(s.camera.clone()),
        headers,
        ws.map(|w| w.protocols([PROTOCOL])),
    )
    .await
}
