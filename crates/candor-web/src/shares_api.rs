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

/// Requests a link may make a minute (an opening is two or three), and
/// all links together: a link's holder cannot flood the recorder or its
/// audit log. Live views open at once per link.
pub const REQUESTS_PER_MINUTE: u32 = 30;
pub const ALL_REQUESTS_PER_MINUTE: u32 = 300;
pub const LIVE_VIEWS_PER_LINK: usize = 3;
/// Openings of one link are audited at most once a minute, with their
/// count (the link's view counter counts each).
const AUDIT_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Default)]
struct Use {
    window: Option<std::time::Instant>,
    requests: u32,
    live: usize,
    audited: Option<std::time::Instant>,
    unaudited: u32,
}

/// Per link, in memory (links are few: at most 100 valid).
static USE: std::sync::LazyLock<std::sync::Mutex<(Use, std::collections::HashMap<i64, Use>)>> =
    std::sync::LazyLock::new(Default::default);

fn busy(msg: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        msg.to_owned(),
    )
    .retry_after(10)
}

/// Counts a request of link `id` against its and the global budget.
fn count(id: i64) -> Result<(), ApiError> {
    let now = std::time::Instant::now();
    let mut g = USE.lock().unwrap_or_else(|e| e.into_inner());
    let (all, links) = &mut *g;
    let minute = |u: &mut Use| {
        if u.window
            .is_none_or(|w| now.duration_since(w).as_secs() >= 60)
        {
            u.window = Some(now);
            u.requests = 0;
        }
        u.requests += 1;
        u.requests
    };
    if minute(all) > ALL_REQUESTS_PER_MINUTE {
        return Err(busy("share links are busy; try again in a minute"));
    }
    // Entries of links not used for 10 minutes go (a bounded map).
    links.retain(|_, u| {
        u.live > 0
            || u.window
                .is_some_and(|w| now.duration_since(w).as_secs() < 600)
    });
    if minute(links.entry(id).or_default()) > REQUESTS_PER_MINUTE {
        return Err(busy("this link is opened too often; try again in a minute"));
    }
    Ok(())
}

/// Whether this opening gets its own audit line (else it is counted into
/// the next one); returns the openings the line covers.
fn audit_due(id: i64) -> Option<u32> {
    let now = std::time::Instant::now();
    let mut g = USE.lock().unwrap_or_else(|e| e.into_inner());
    let u = g.1.entry(id).or_default();
    u.unaudited += 1;
    if u.audited
        .is_some_and(|t| now.duration_since(t) < AUDIT_EVERY)
    {
        return None;
    }
    u.audited = Some(now);
    Some(std::mem::take(&mut u.unaudited))
}

/// A live-view place of a link, given back when the view ends.
struct LivePlace(i64);

impl LivePlace {
    fn take(id: i64) -> Result<LivePlace, ApiError> {
        let mut g = USE.lock().unwrap_or_else(|e| e.into_inner());
        let u = g.1.entry(id).or_default();
        if u.live >= LIVE_VIEWS_PER_LINK {
            return Err(busy(
                "this link's live view is already open on too many screens",
            ));
        }
        u.live += 1;
        Ok(LivePlace(id))
    }
}

impl Drop for LivePlace {
    fn drop(&mut self) {
        let mut g = USE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(u) = g.1.get_mut(&self.0) {
            u.live = u.live.saturating_sub(1);
        }
    }
}

fn missing() -> ApiError {
    ApiError::not_found("no such share link, or it expired or was revoked").with_code("no_share")
}

fn ts(t90k: i64) -> String {
    Time90k(t90k).to_timestamp().to_string()
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
        created_at: crate::rfc3339(s.created_at),
        expires_at: crate::rfc3339(s.expires_at),
        revoked_at: s.revoked_at.map(crate::rfc3339),
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
    // A person decides to share, signed in (with two factors where
    // required); an API token works on the local network only and must
    // not mint access that works from anywhere.
    if !matches!(p.via, Via::Session { .. }) {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "session_required",
            "sign in to make share links (API tokens cannot)",
        ));
    }
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
            crate::rfc3339(share.expires_at)
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
    let (accounts, who) = (st.accounts.clone(), p.clone());
    let s = tokio::task::spawn_blocking(move || match accounts.share_by_id(id)? {
        Some(s) if who.may_see(&s.camera) => accounts.revoke_share(id),
        _ => Ok(None),
    })
    .await??
    .ok_or_else(missing)?;
    st.audit(
        Some(&p.username),
        "share_revoked",
        format!("link {id} of {}", s.camera),
    )
    .await;
    Ok(Json(json(&s)).into_response())
}

/// The link a request carries, valid now (counted against its request
/// budget); and who it acts as.
async fn opened(
    st: &AppState,
    token: Option<&str>,
    view: bool,
) -> Result<(Share, Principal), ApiError> {
    let token = token.ok_or_else(missing)?.to_owned();
    let accounts = st.accounts.clone();
    let s = tokio::task::spawn_blocking(move || accounts.share_by_token(&token, view))
        .await??
        .ok_or_else(missing)?;
    count(s.id)?;
    let p = Principal {
        username: format!("share link {}", s.id),
        role: crate::accounts::Role::Viewer,
        cameras: Some(vec![s.camera.clone()]),
        via: Via::Share { id: s.id },
        remote: false,
        ip: None,
        grant: None,
    };
    Ok((s, p))
}

fn header_token(h: &HeaderMap) -> Option<&str> {
    h.get(HEADER).and_then(|v| v.to_str().ok())
}

/// `GET /api/v1/share`: what the link shows (one view in the audit log).
pub async fn open(State(st): State<AppState>, headers: HeaderMap) -> ApiResult {
    let (s, p) = opened(&st, header_token(&headers), true).await?;
    if let Some(n) = audit_due(s.id) {
        let since = if n > 1 {
            format!("; {n} openings since the last line")
        } else {
            String::new()
        };
        st.audit(
            Some(&p.username),
            "share_viewed",
            format!("{} of {} (view {}{since})", s.kind, s.camera, s.views + 1),
        )
        .await;
    }
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
    let (s, p) = opened(&st, header_token(&headers), false).await?;
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
        .or_else(|| header_token(&headers))
        .map(str::to_owned);
    let (s, p) = opened(&st, token.as_deref(), false).await?;
    if s.kind != "live" {
        return Err(missing());
    }
    let place = LivePlace::take(s.id)?;
    crate::live::serve(
        st,
        p,
        s.camera.clone(),
        headers,
        ws.map(|w| w.protocols([PROTOCOL])),
        Some(Box::new(place)),
    )
    .await
}
