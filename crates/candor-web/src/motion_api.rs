//! A camera's motion settings: read, and changed by an admin (written to
//! `candor.toml` with its comments kept, then applied at once).

use crate::footage::{camera_access, not_running};
use crate::{ApiError, ApiResult, AppState, Caller};
use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;

fn round3(v: f32) -> f64 {
    (f64::from(v) * 1000.0).round() / 1000.0
}

fn motion_json(m: &candor_recorder::config::MotionConfig) -> candor_wire::MotionSettings {
    let poly = |p: &candor_motion::Polygon| -> Vec<[f32; 2]> {
        p.points().iter().map(|&(x, y)| [x, y]).collect()
    };
    candor_wire::MotionSettings {
        // f32 settings as the decimals they were written as, not 0.30000001.
        enabled: m.enabled,
        fps: round3(m.fps),
        sensitivity: m.sensitivity,
        min_size: round3(m.min_size),
        hold: format!("{}ms", m.hold.0.as_millis()),
        zones: m
            .zones
            .iter()
            .map(|z| candor_wire::MotionZone {
                name: z.name.0.clone(),
                points: poly(&z.points.0),
            })
            .collect(),
        masks: m.masks.iter().map(|p| poly(&p.0)).collect(),
    }
}

/// `GET /api/v1/cameras/{name}/motion`: the camera's motion settings.
pub async fn motion_get(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Caller(p): Caller,
) -> ApiResult {
    let f = camera_access(&st, &p, &name)?;
    let m = f
        .status
        .motion_settings(&name)
        .ok_or_else(|| not_running(&f, &name))?;
    Ok(Json(motion_json(&m)).into_response())
}

/// `PUT /api/v1/cameras/{name}/motion` (admin): new motion settings, in the
/// shape of `[cameras.motion]`. Validated like the config file, written to
/// it (comments kept), applied at once, audited.
pub async fn motion_put(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Caller(p): Caller,
    body: axum::body::Bytes,
) -> ApiResult {
    let f = camera_access(&st, &p, &name)?;
    let m: candor_recorder::config::MotionConfig = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("bad_body", format!("motion settings: {e}")))?;
    if f.status.motion_settings(&name).is_none() {
        return Err(not_running(&f, &name));
    }
    let path = f.config_path.clone().ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "read_only",
            "this server has no config file to change",
        )
    })?;
    let (cam, m2) = (name.clone(), m.clone());
    tokio::task::spawn_blocking(move || candor_recorder::config_edit::set_motion(&path, &cam, &m2))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::bad_request("bad_settings", e.to_string()))?;
    f.status.set_motion_settings(&name, m.clone());
    st.audit(
        Some(&p.username),
        "motion_changed",
        format!(
            "{name}: {} zones {} masks {} sensitivity {}",
            if m.enabled { "on" } else { "off" },
            m.zones.len(),
            m.masks.len(),
            m.sensitivity
        ),
    )
    .await;
    Ok(Json(motion_json(&m)).into_response())
}
