//! A camera's motion and object detection settings: read, and changed by
//! an admin (written to `candor.toml` with its comments kept, then applied
//! at once).

use crate::footage::{camera_settings_access as camera_access, not_running};
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
    let path = f.config_file()?;
    let (cam, m2, by) = (name.clone(), m.clone(), p.author());
    tokio::task::spawn_blocking(move || {
        candor_recorder::config_edit::set_motion(&path, &by, &cam, &m2)
    })
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

fn objects_json(o: &candor_recorder::config::ObjectsConfig) -> candor_wire::ObjectSettings {
    use candor_recorder::config::AlarmOn;
    candor_wire::ObjectSettings {
        enabled: o.enabled,
        labels: o.labels.iter().map(|l| l.name().to_owned()).collect(),
        min_score: round3(o.min_score),
        threshold: round3(o.threshold),
        scores: o
            .scores
            .iter()
            .map(|(l, s)| (l.name().to_owned(), round3(*s)))
            .collect(),
        fps: round3(o.fps),
        alarm: match o.alarm {
            AlarmOn::Objects => "objects",
            AlarmOn::Motion => "motion",
            AlarmOn::Both => "both",
        }
        .to_owned(),
        zones: o
            .zones
            .iter()
            .map(|(z, ls)| (z.clone(), ls.iter().map(|l| l.name().to_owned()).collect()))
            .collect(),
    }
}

/// `GET /api/v1/cameras/{name}/objects`: the camera's object detection settings.
pub async fn objects_get(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Caller(p): Caller,
) -> ApiResult {
    let f = camera_access(&st, &p, &name)?;
    let o = f
        .status
        .objects_settings(&name)
        .ok_or_else(|| not_running(&f, &name))?;
    Ok(Json(objects_json(&o)).into_response())
}

/// `PUT /api/v1/cameras/{name}/objects` (admin): new settings in the shape
/// of `[cameras.objects]`, validated with the whole file (objects need
/// motion on; their zones must be motion's), written, applied, audited.
pub async fn objects_put(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Caller(p): Caller,
    body: axum::body::Bytes,
) -> ApiResult {
    let f = camera_access(&st, &p, &name)?;
    let o: candor_recorder::config::ObjectsConfig = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("bad_body", format!("object settings: {e}")))?;
    if f.status.objects_settings(&name).is_none() {
        return Err(not_running(&f, &name));
    }
    let path = f.config_file()?;
    let (cam, o2, by) = (name.clone(), o.clone(), p.author());
    tokio::task::spawn_blocking(move || {
        candor_recorder::config_edit::set_objects(&path, &by, &cam, &o2)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::bad_request("bad_settings", e.to_string()))?;
    f.status.set_objects_settings(&name, o.clone());
    st.audit(
        Some(&p.username),
        "objects_changed",
        format!(
            "{name}: {} labels {} alarm on {:?} zones {}",
            if o.enabled { "on" } else { "off" },
            o.labels
                .iter()
                .map(|l| l.name())
                .collect::<Vec<_>>()
                .join(","),
            o.alarm,
            o.zones.len()
        ),
    )
    .await;
    Ok(Json(objects_json(&o)).into_response())
}
