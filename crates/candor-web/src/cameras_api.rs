//! Adding cameras from the web app (admins): ONVIF discovery on the LAN,
//! a camera's profiles and stream addresses, and the new `[[cameras]]`
//! entry, written to candor.toml and started at once.
//!
//! The recorder only ever talks to addresses on the local network here
//! (loopback, private and link-local ranges, or the ONVIF multicast group):
//! these routes can't be used to reach the internet from the recorder.

use crate::accounts::Role;
use crate::{ApiError, ApiResult, AppState, authorize};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

fn local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => v.is_loopback() || v.is_private() || v.is_link_local(),
        IpAddr::V6(v) => {
            v.is_loopback()
                || (v.segments()[0] & 0xfe00) == 0xfc00
                || (v.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

fn not_local(what: &str) -> ApiError {
    ApiError::bad_request(
        "not_local",
        format!(
            "{what} must be an address on the local network (a private, link-local or loopback IP)"
        ),
    )
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// Where to send the WS-Discovery probe; default the ONVIF multicast group.
    probe: Option<String>,
    /// Seconds to collect answers (1–10, default 3).
    wait_secs: Option<u64>,
}

pub async fn discover(
    State(st): State<AppState>,
    method: Method,
    headers: HeaderMap,
    b: Result<Json<Probe>, JsonRejection>,
) -> ApiResult {
    authorize(&st, &headers, &method, Role::Admin)?;
    let Json(b) = b.map_err(|e| ApiError::bad_request("bad_body", e.body_text()))?;
    let multicast: SocketAddr = candor_onvif::discovery::MULTICAST
        .parse()
        .map_err(ApiError::internal)?;
    let target = match b.probe.as_deref() {
        None | Some("") => multicast,
        Some(p) => {
            let a: SocketAddr = p
                .parse()
                .map_err(|_| ApiError::bad_request("bad_probe", "probe must be IP:port"))?;
            if a != multicast && !local(a.ip()) {
                return Err(not_local("probe"));
            }
            a
        }
    };
    let wait = Duration::from_secs(b.wait_secs.unwrap_or(3).clamp(1, 10));
    let found = candor_recorder::onvif::probe(target, wait)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "discovery_failed",
                format!("discovery: {e}"),
            )
        })?;
    let list: Vec<_> = found
        .iter()
        .map(|f| serde_json::json!({ "endpoint": f.endpoint, "xaddrs": f.xaddrs, "name": f.name, "hardware": f.hardware }))
        .collect();
    Ok(Json(serde_json::json!({ "cameras": list })).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Describe {
    xaddr: String,
    username: String,
    password: String,
}

pub async fn describe(
    State(st): State<AppState>,
    method: Method,
    headers: HeaderMap,
    b: Result<Json<Describe>, JsonRejection>,
) -> ApiResult {
    authorize(&st, &headers, &method, Role::Admin)?;
    let Json(b) = b.map_err(|e| ApiError::bad_request("bad_body", e.body_text()))?;
    let u = url::Url::parse(&b.xaddr).map_err(|_| {
        ApiError::bad_request("bad_xaddr", "xaddr must be an http:// device service URL")
    })?;
    let ip = match u.host() {
        Some(url::Host::Ipv4(v)) => IpAddr::V4(v),
        Some(url::Host::Ipv6(v)) => IpAddr::V6(v),
        _ => return Err(not_local("xaddr")),
    };
    if u.scheme() != "http" || !local(ip) {
        return Err(not_local("xaddr"));
    }
    let d = candor_recorder::onvif::describe(&b.xaddr, &b.username, &b.password)
        .await
        .map_err(|e| {
            if e.is_not_authorized() {
                ApiError::bad_request(
                    "camera_refused",
                    "the camera refused the user name or password",
                )
            } else {
                ApiError::new(StatusCode::BAD_GATEWAY, "camera_error", e.to_string())
            }
        })?;
    Ok(Json(d.to_json()).into_response())
}

pub async fn add(
    State(st): State<AppState>,
    method: Method,
    headers: HeaderMap,
    b: Result<Json<candor_recorder::config_edit::NewCamera>, JsonRejection>,
) -> ApiResult {
    let p = authorize(&st, &headers, &method, Role::Admin)?;
    let Json(new) = b.map_err(|e| ApiError::bad_request("bad_body", e.body_text()))?;
    let f = st
        .footage
        .clone()
        .ok_or_else(|| ApiError::not_found("no recorder attached"))?;
    let path = f.config_path.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "read_only",
            "this server has no config file to change",
        )
    })?;
    let n = new.clone();
    let cfg =
        tokio::task::spawn_blocking(move || candor_recorder::config_edit::add_camera(&path, &n))
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| ApiError::bad_request("bad_camera", e.to_string()))?;
    let cam = cfg
        .cameras
        .iter()
        .find(|c| c.name.get_ref().0 == new.name)
        .ok_or_else(|| ApiError::internal("the new camera is not in the saved config"))?;
    f.status
        .add_camera(cam)
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, "camera_exists", e))?;
    // The URL as displayed never shows the password.
    let _ = st.accounts.audit(
        Some(&p.username),
        "camera_added",
        &format!("{} {}", new.name, cam.url),
    );
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "name": new.name, "url": cam.url.to_string() })),
    )
        .into_response())
}
