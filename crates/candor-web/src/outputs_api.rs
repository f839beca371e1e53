//! A camera's relay outputs (siren, gate, light) over ONVIF
//! (`GetRelayOutputs`, `SetRelayOutputState`): listed and switched by
//! operators and admins who may see the camera, each switch audited. The
//! web app asks for confirmation first; remotely this is the "emergency
//! action from the phone".

use crate::{ApiError, ApiResult, AppState, Caller};
use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;

/// Where and how to reach the camera's ONVIF device service.
struct Device {
    url: String,
    username: String,
    password: String,
}

fn device(st: &AppState, p: &crate::authz::Principal, name: &str) -> Result<Device, ApiError> {
    let f = crate::footage::camera_access(st, p, name)?;
    let no = || {
        ApiError::not_found(format!(
            "camera {name:?} has no ONVIF device service: set onvif = \"http://…/onvif/device_service\" in its [[cameras]] entry"
        ))
        .with_code("no_outputs")
    };
    let path = f.config_path.clone().ok_or_else(no)?;
    let cfg = candor_recorder::config::Config::load(&path).map_err(ApiError::internal)?;
    let c = cfg
        .cameras
        .iter()
        .find(|c| c.name.get_ref().0 == name)
        .ok_or_else(|| crate::footage::no_camera(name))?;
    let url = c.onvif.as_ref().ok_or_else(no)?.0.clone();
    Ok(Device {
        url,
        username: c.url.username.clone().unwrap_or_default(),
        password: c.url.password.clone().unwrap_or_default(),
    })
}

/// The error names the device URL, which never holds credentials (the
/// config refuses them in `onvif`).
fn unreachable(name: &str, e: candor_recorder::onvif::OnvifError) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::BAD_GATEWAY,
        "camera_unreachable",
        format!("camera {name:?} did not answer over ONVIF: {e}"),
    )
}

/// `GET /api/v1/cameras/{name}/outputs`
pub async fn list(
    State(st): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
) -> ApiResult {
    let d = device(&st, &p, &name)?;
    let outputs = candor_recorder::onvif::relay_outputs(&d.url, &d.username, &d.password)
        .await
        .map_err(|e| unreachable(&name, e))?;
    Ok(Json(candor_wire::RelayOutputs {
        outputs: outputs
            .into_iter()
            .map(|o| candor_wire::RelayOutput {
                token: o.token,
                mode: o.mode,
                idle_state: o.idle_state,
            })
            .collect(),
    })
    .into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Switch {
    token: String,
    active: bool,
}

/// `POST /api/v1/cameras/{name}/outputs`: `{"token": "siren", "active": true}`.
pub async fn switch(
    State(st): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    // The camera first: an ungranted one looks missing, whatever the body.
    crate::footage::camera_access(&st, &p, &name)?;
    let b: Switch = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("bad_body", format!("output switch: {e}")))?;
    if b.token.is_empty() || b.token.len() > 64 || b.token.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "bad_token",
            "token: 1 to 64 printable characters",
        ));
    }
    let d = device(&st, &p, &name)?;
    let r = candor_recorder::onvif::set_relay_output(
        &d.url,
        &d.username,
        &d.password,
        &b.token,
        b.active,
    )
    .await;
    let state = if b.active { "active" } else { "inactive" };
    // Attempts are audited too: a refused switch of a gate matters.
    st.audit(
        Some(&p.username),
        "output_switched",
        match &r {
            Ok(()) => format!("{name}: output {:?} set {state}", b.token),
            Err(e) => format!("{name}: output {:?} set {state} failed: {e}", b.token),
        },
    )
    .await;
    r.map_err(|e| unreachable(&name, e))?;
    Ok(Json(candor_wire::RelaySwitched {
        token: b.token,
        active: b.active,
    })
    .into_response())
}
