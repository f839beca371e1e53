//! Adding cameras from the web app (admins): ONVIF discovery on the LAN,
//! a camera's profiles and stream addresses, and the new `[[cameras]]`
//! entry, written to candor.toml and started at once.
//!
//! The recorder only ever talks to addresses on the local network here
//! (private and link-local ranges, or the ONVIF multicast group; loopback
//! only with `[web] allow_loopback_cameras`): these routes can't be used to
//! reach the internet, the recorder's own local services, or a cloud
//! metadata service (169.254.169.254) from the recorder. Host names are
//! resolved and every address must pass. A camera's stream addresses must
//! be on the host its ONVIF service was reached on, unless the admin says
//! otherwise (`other_host`), so a rogue device cannot send the typed
//! password elsewhere.

use crate::{ApiError, ApiResult, AppState, Caller};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Whether the recorder may talk to `ip` on behalf of the Add camera page.
pub fn local(ip: IpAddr, allow_loopback: bool) -> bool {
    // Cloud instance metadata services: never a camera.
    const METADATA_V4: std::net::Ipv4Addr = std::net::Ipv4Addr::new(169, 254, 169, 254);
    const METADATA_V6: std::net::Ipv6Addr =
        std::net::Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);
    let ip = match ip {
        IpAddr::V6(v) => v.to_ipv4_mapped().map_or(IpAddr::V6(v), IpAddr::V4),
        v => v,
    };
    match ip {
        IpAddr::V4(v) if v == METADATA_V4 => false,
        IpAddr::V6(v) if v == METADATA_V6 => false,
        IpAddr::V4(v) => (v.is_loopback() && allow_loopback) || v.is_private() || v.is_link_local(),
        IpAddr::V6(v) => {
            (v.is_loopback() && allow_loopback)
                || (v.segments()[0] & 0xfe00) == 0xfc00
                || (v.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

fn not_local(what: &str) -> ApiError {
    ApiError::bad_request(
        "not_local",
        format!(
            "{what} must be on the local network (a private or link-local address; loopback only with [web] allow_loopback_cameras; never 169.254.169.254)"
        ),
    )
}

/// `[web] allow_loopback_cameras`, read from the config file now.
async fn allow_loopback(st: &AppState) -> bool {
    let Some(path) = st.footage.as_ref().and_then(|f| f.config_path.clone()) else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        candor_recorder::Config::load(&path).is_ok_and(|c| c.web.allow_loopback_cameras)
    })
    .await
    .unwrap_or(false)
}

/// Resolves `url`'s host and checks every address it names; returns the host.
async fn check_url(url: &str, what: &str, allow_loopback: bool) -> Result<String, ApiError> {
    let u = url::Url::parse(url)
        .map_err(|_| ApiError::bad_request("bad_url", format!("{what} is not a URL")))?;
    let host = match u.host() {
        Some(url::Host::Ipv4(v)) => v.to_string(),
        Some(url::Host::Ipv6(v)) => v.to_string(),
        Some(url::Host::Domain(d)) => d.to_owned(),
        None => return Err(not_local(what)),
    };
    let port = u.port_or_known_default().unwrap_or(554);
    let addrs: Vec<SocketAddr> = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await
    .map_err(|_| ApiError::bad_request("bad_host", format!("{what}: resolving {host} timed out")))?
    .map_err(|e| ApiError::bad_request("bad_host", format!("{what}: can't resolve {host}: {e}")))?
    .collect();
    if addrs.is_empty() || !addrs.iter().all(|a| local(a.ip(), allow_loopback)) {
        return Err(not_local(what));
    }
    Ok(host)
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
    _: Caller,
    b: Result<Json<Probe>, JsonRejection>,
) -> ApiResult {
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
            if a != multicast && !local(a.ip(), allow_loopback(&st).await) {
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
        .map(|f| candor_wire::Discovered {
            endpoint: f.endpoint.clone(),
            xaddrs: f.xaddrs.clone(),
            name: f.name.clone(),
            hardware: f.hardware.clone(),
        })
        .collect();
    Ok(Json(candor_wire::DiscoveredList { cameras: list }).into_response())
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
    _: Caller,
    b: Result<Json<Describe>, JsonRejection>,
) -> ApiResult {
    let Json(b) = b.map_err(|e| ApiError::bad_request("bad_body", e.body_text()))?;
    let u = url::Url::parse(&b.xaddr).map_err(|_| {
        ApiError::bad_request("bad_xaddr", "xaddr must be an http:// device service URL")
    })?;
    if u.scheme() != "http" {
        return Err(ApiError::bad_request(
            "bad_xaddr",
            "xaddr must be an http:// device service URL",
        ));
    }
    check_url(&b.xaddr, "xaddr", allow_loopback(&st).await).await?;
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
    Ok(Json(d.wire()).into_response())
}

/// Checks a camera's addresses as "Add camera" and "Change camera" take
/// them: each must be a camera address this recorder may use, and stream
/// addresses found on another host than the ONVIF service need the admin's
/// word (`other_host`).
pub(crate) async fn check_camera(
    st: &AppState,
    new: &candor_recorder::config_edit::NewCamera,
) -> Result<(), ApiError> {
    let lo = allow_loopback(st).await;
    let main_host = check_url(&new.url, "url", lo).await?;
    let sub_host = match &new.sub_url {
        Some(u) if !u.is_empty() => Some(check_url(u, "sub_url", lo).await?),
        _ => None,
    };
    if let Some(o) = new.onvif.as_deref().filter(|o| !o.is_empty()) {
        let device = check_url(o, "onvif", lo).await?;
        // The stream addresses came from the device: they may not send the
        // camera's password to another host unless the admin says so.
        let elsewhere = std::iter::once(&main_host)
            .chain(sub_host.as_ref())
            .any(|h| *h != device);
        if elsewhere && !new.other_host {
            return Err(ApiError::bad_request(
                "other_host",
                format!(
                    "the stream address is not on the camera's host ({device}); check it, and send \"other_host\": true if it is right"
                ),
            ));
        }
    }
    Ok(())
}

pub async fn add(
    State(st): State<AppState>,
    Caller(p): Caller,
    b: Result<Json<candor_recorder::config_edit::NewCamera>, JsonRejection>,
) -> ApiResult {
    let Json(new) = b.map_err(|e| ApiError::bad_request("bad_body", e.body_text()))?;
    check_camera(&st, &new).await?;
    let f = st
        .footage
        .clone()
        .ok_or_else(|| ApiError::not_found("no recorder attached"))?;
    let path = f.config_file()?;
    let n = new.clone();
    let by = p.author();
    let cfg = tokio::task::spawn_blocking(move || {
        candor_recorder::config_edit::add_camera(&path, &by, &n)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::bad_request("bad_camera", e.to_string()))?
    .config;
    let cam = cfg
        .cameras
        .iter()
        .find(|c| c.name.get_ref().0 == new.name)
        .ok_or_else(|| ApiError::internal("the new camera is not in the saved config"))?;
    f.status
        .add_camera(cam)
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, "camera_exists", e))?;
    // The URL as displayed never shows the password.
    st.audit(
        Some(&p.username),
        "camera_added",
        format!("{} {}", new.name, cam.url),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(candor_wire::CameraAdded {
            name: new.name,
            url: cam.url.to_string(),
        }),
    )
        .into_response())
}
