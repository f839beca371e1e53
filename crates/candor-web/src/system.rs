//! The system page's data and Prometheus metrics.
//!
//! `/metrics` sits on the main listener and needs the operator role, like
//! the system page: a scraper uses an API token
//! (`Authorization: Bearer cnd_…`), so no second, unauthenticated port is
//! opened.

use crate::footage::Footage;
use crate::live::LATENCY_BUCKETS_US;
use crate::{ApiError, ApiResult, AppState, Caller, Principal};
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use candor_media::Time90k;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

const DAY_90K: f64 = 86_400.0 * 90_000.0;

/// How many days of footage a camera will keep at its current rate, and
/// which limit decides it. Pure, so it can be tested without a recorder.
pub fn forecast(
    daily_bytes: Option<f64>,
    max_age_secs: Option<u64>,
    camera_max_bytes: Option<u64>,
    share_of_store: Option<f64>,
) -> (Option<f64>, &'static str) {
    let mut best: (Option<f64>, &'static str) = (None, "none");
    let mut consider = |days: f64, why: &'static str| {
        if best.0.is_none_or(|b| days < b) {
            best = (Some(days), why);
        }
    };
    if let Some(a) = max_age_secs {
        consider(a as f64 / 86_400.0, "max_age");
    }
    if let Some(d) = daily_bytes.filter(|&d| d > 0.0) {
        if let Some(b) = camera_max_bytes {
            consider(b as f64 / d, "camera max_bytes");
        }
        if let Some(s) = share_of_store {
            consider(s / d, "storage");
        }
    }
    best
}

pub(crate) fn system_json(
    f: &Footage,
    st: &AppState,
    p: &Principal,
) -> Result<candor_wire::System, ApiError> {
    let status = f.status.status();
    let usage = f.store.usage().map_err(ApiError::internal)?;
    let ids = f.store.cameras().map_err(ApiError::internal)?;
    let (free, total) =
        candor_storage::retention::disk_space(&f.store).map_err(ApiError::internal)?;
    let used: u64 = usage.iter().map(|u| u.bytes).sum();
    let now = Time90k::now();
    struct Row {
        camera: candor_wire::CameraSystem,
        daily: Option<f64>,
        name: String,
    }
    let mut rows = Vec::new();
    for s in &status {
        let name = &s.camera.name;
        let u = ids
            .iter()
            .find(|(_, n)| n == name)
            .and_then(|(id, _)| usage.iter().find(|u| u.camera_id == *id));
        let live = f.camera_live(s);
        let bps = live.bitrate;
        let days_kept = u
            .and_then(|u| u.oldest)
            .map(|o| (now.0 - o.0) as f64 / DAY_90K);
        // Prefer the live bitrate; fall back to what is on disk over the time it covers.
        let daily = bps.map(|b| b * 86_400.0 / 8.0).or_else(|| {
            let (u, d) = (u?, days_kept?);
            (d > 0.01).then(|| u.bytes as f64 / d)
        });
        rows.push(Row {
            name: name.clone(),
            daily,
            camera: candor_wire::CameraSystem {
                live,
                bytes: u.map_or(0, |u| u.bytes),
                segments: u.map_or(0, |u| u.segments),
                oldest: u.and_then(|u| u.oldest).map(|t| t.to_string()),
                days_kept,
                write_errors: s.storage.write_errors,
                motion: s.camera.motion.as_ref().map(|m| {
                    // Share of one core since start: the detector's cost.
                    let share = |us: u64| {
                        us as f64 / 1e4 / f.status.started().elapsed().as_secs_f64().max(1.0)
                    };
                    candor_wire::MotionStats {
                        state: m.state.clone(),
                        stream: m.stream.clone(),
                        decoded: m.decoded,
                        analysed: m.analysed,
                        dropped: m.dropped,
                        cpu_percent: share(m.busy_us),
                        objects: m.objects.as_ref().map(|o| candor_wire::ObjectStats {
                            state: o.state.clone(),
                            looks: o.looks,
                            inferences: o.inferences,
                            skipped: o.skipped,
                            errors: o.errors,
                            working: o.working,
                            cpu_percent: share(o.busy_us),
                        }),
                    }
                }),
                daily_bytes: None,
                forecast_days: None,
                forecast_limit: String::new(),
            },
        });
    }
    // The store's budget is shared in proportion to each camera's rate.
    let budget = f
        .policy
        .max_bytes
        .map(|m| m as f64)
        .unwrap_or((used + free) as f64);
    let total_daily: f64 = rows.iter().filter_map(|r| r.daily).sum();
    // Shares are computed over every camera, then the caller's are kept.
    let cameras: Vec<_> = p
        .health_visible(rows, |r| &r.name)
        .into_iter()
        .map(|mut r| {
            let (age, max_bytes) = f.policy.cameras.get(&r.name).copied().unwrap_or_default();
            let share = r
                .daily
                .filter(|_| total_daily > 0.0)
                .map(|d| budget * d / total_daily);
            let (days, limit) = forecast(r.daily, age, max_bytes, share);
            r.camera.daily_bytes = r.daily;
            r.camera.forecast_days = days;
            r.camera.forecast_limit = limit.into();
            r.camera
        })
        .collect();
    let viewers = p
        .visible(f.status.viewers(), |(n, _)| n)
        .into_iter()
        .map(|(n, c)| (n, c as u64))
        .collect();
    Ok(candor_wire::System {
        version: candor_wire::version().into(),
        uptime_secs: f.status.started().elapsed().as_secs(),
        web_uptime_secs: st.started.elapsed().as_secs(),
        storage: candor_wire::StorageUse {
            path: f.store.dir().display().to_string(),
            used_bytes: used,
            max_bytes: f.policy.max_bytes,
            disk_free_bytes: free,
            disk_total_bytes: total,
            target_days: f.policy.target_days,
        },
        cameras,
        live: candor_wire::LiveStats {
            viewers,
            latency_p50_us: st.metrics.quantile_us(0.5),
            latency_p99_us: st.metrics.quantile_us(0.99),
        },
        last_rollback: last_rollback(f.store.dir()),
        update_check: update_check(f.store.dir()),
        update_install: f.updates.as_ref().map(|u| u.state()),
    })
}

pub async fn system(State(st): State<AppState>, Caller(p): Caller) -> ApiResult {
    let f = st
        .footage
        .clone()
        .ok_or_else(|| ApiError::not_found("no recorder attached"))?;
    let st2 = st.clone();
    let v = tokio::task::spawn_blocking(move || system_json(&f, &st2, &p)).await??;
    Ok(Json(v).into_response())
}

/// `GET /api/v1/system/update`.
pub async fn update_status(State(st): State<AppState>) -> ApiResult {
    let f = st
        .footage
        .clone()
        .ok_or_else(|| ApiError::not_found("no recorder attached"))?;
    let v = tokio::task::spawn_blocking(move || candor_wire::UpdateStatus {
        version: candor_wire::version().into(),
        update_check: update_check(f.store.dir()),
        update_install: f.updates.as_ref().map(|u| u.state()),
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(Json(v).into_response())
}

/// `POST /api/v1/system/update`: install the release the last check
/// offered, now or at a time. Admins, and technicians whose grant has the
/// maintenance scope; the recorder verifies everything when it runs.
pub async fn update(
    State(st): State<AppState>,
    Caller(p): Caller,
    Json(b): Json<candor_wire::UpdateRequest>,
) -> ApiResult {
    let u = st
        .footage
        .as_ref()
        .and_then(|f| f.updates.clone())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "no_updates",
                "online updates are not configured ([updates] in the config file); an air-gapped recorder installs with `candor update --from DIR`",
            )
        })?;
    let at = match b.at.as_deref() {
        None => None,
        Some(a) => Some(a.parse::<jiff::Timestamp>().map_err(|_| {
            ApiError::bad_request(
                "bad_time",
                format!("at: an RFC 3339 time with its offset, not {a:?}"),
            )
        })?),
    };
    // A technician's schedule can't outlive their grant.
    if let Some(g) = &p.grant {
        let last = at.map_or(0, |a| a.as_second());
        if last > g.expires_at {
            return Err(ApiError::bad_request(
                "bad_time",
                "your access ends before then: schedule the install while your grant lasts",
            ));
        }
    }
    let state = u.request(&b.version, at, &p.username).map_err(refused)?;
    st.audit(
        Some(&p.username),
        "update_requested",
        format!(
            "candor {} {}",
            b.version,
            at.map_or_else(|| "now".to_owned(), |a| format!("at {a}"))
        ),
    )
    .await;
    Ok((StatusCode::ACCEPTED, Json(state)).into_response())
}

fn refused(e: candor_recorder::updates::Refused) -> ApiError {
    use candor_recorder::updates::Refused;
    let code = match e {
        Refused::BadTime(_) => "bad_time",
        Refused::Busy => "busy",
        Refused::NotOffered { .. } => "not_offered",
        Refused::NotSupervised => "not_supervised",
        Refused::RetryLater(_) => "retry_later",
    };
    let status = match e {
        Refused::BadTime(_) => StatusCode::BAD_REQUEST,
        Refused::RetryLater(_) => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::CONFLICT,
    };
    ApiError::new(status, code, e.to_string())
}

/// `DELETE /api/v1/system/update`: cancel a scheduled install.
pub async fn cancel_update(State(st): State<AppState>, Caller(p): Caller) -> ApiResult {
    let u = st.footage.as_ref().and_then(|f| f.updates.clone());
    match u.as_ref().map(|u| u.cancel()) {
        Some(Ok(true)) => {
            st.audit(
                Some(&p.username),
                "update_cancelled",
                "the scheduled install".into(),
            )
            .await;
            Ok(Json(u.map(|u| u.state())).into_response())
        }
        Some(Err(e)) => Err(refused(e)),
        _ => Err(ApiError::not_found("no install is scheduled")),
    }
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub async fn metrics(State(st): State<AppState>, Caller(p): Caller) -> ApiResult {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# TYPE candor_build_info gauge\ncandor_build_info{{version=\"{}\"}} 1",
        candor_wire::version()
    );
    let _ = writeln!(
        o,
        "# TYPE candor_web_uptime_seconds gauge\ncandor_web_uptime_seconds {}",
        st.started.elapsed().as_secs()
    );
    if let Some(f) = &st.footage {
        let status = p.health_visible(f.status.status(), |s| &s.camera.name);
        let _ = writeln!(
            o,
            "# HELP candor_camera_up 1 while the camera is streaming.\n# TYPE candor_camera_up gauge"
        );
        for s in &status {
            let up = matches!(
                s.camera.state,
                candor_recorder::CameraState::Streaming { .. }
            ) as u8;
            let _ = writeln!(
                o,
                "candor_camera_up{{camera=\"{}\"}} {up}",
                label(&s.camera.name)
            );
        }
        for (metric, help, get) in [
            (
                "candor_camera_frames_total",
                "Frames written.",
                (|s: &candor_recorder::Status| s.storage.frames) as fn(&_) -> u64,
            ),
            (
                "candor_camera_bytes_total",
                "Bytes of video written.",
                |s| s.storage.bytes,
            ),
            (
                "candor_camera_reconnects_total",
                "Camera sessions that failed and were retried.",
                |s| s.camera.reconnects,
            ),
            (
                "candor_camera_write_errors_total",
                "Failed writes (e.g. disk full).",
                |s| s.storage.write_errors,
            ),
        ] {
            let _ = writeln!(o, "# HELP {metric} {help}\n# TYPE {metric} counter");
            for s in &status {
                let _ = writeln!(
                    o,
                    "{metric}{{camera=\"{}\"}} {}",
                    label(&s.camera.name),
                    get(s)
                );
            }
        }
        let _ = writeln!(o, "# TYPE candor_live_viewers gauge");
        for (n, c) in p.visible(f.status.viewers(), |(n, _)| n) {
            let _ = writeln!(o, "candor_live_viewers{{camera=\"{}\"}} {c}", label(&n));
        }
        if let Ok((free, _)) = candor_storage::retention::disk_space(&f.store) {
            let _ = writeln!(
                o,
                "# TYPE candor_disk_free_bytes gauge\ncandor_disk_free_bytes {free}"
            );
        }
    }
    let m = &st.metrics;
    let _ = writeln!(
        o,
        "# HELP candor_live_frame_latency_seconds Frame received from the camera to written to a live viewer's socket.\n# TYPE candor_live_frame_latency_seconds histogram"
    );
    let mut acc = 0;
    for (i, b) in LATENCY_BUCKETS_US.iter().enumerate() {
        acc += m.buckets[i].load(Ordering::Relaxed);
        let le = if *b == u64::MAX {
            "+Inf".to_string()
        } else {
            format!("{}", *b as f64 / 1e6)
        };
        let _ = writeln!(
            o,
            "candor_live_frame_latency_seconds_bucket{{le=\"{le}\"}} {acc}"
        );
    }
    let _ = writeln!(
        o,
        "candor_live_frame_latency_seconds_sum {}",
        m.sum_us.load(Ordering::Relaxed) as f64 / 1e6
    );
    let _ = writeln!(o, "candor_live_frame_latency_seconds_count {acc}");
    let _ = writeln!(
        o,
        "# TYPE candor_live_frames_skipped_total counter\ncandor_live_frames_skipped_total {}",
        m.frames_skipped.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        o,
        "# TYPE candor_live_sessions gauge\ncandor_live_sessions {}",
        m.sessions.load(Ordering::Relaxed)
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], o).into_response())
}

/// What the last online update check found (`[updates]`).
pub fn update_check(data: &std::path::Path) -> Option<candor_wire::UpdateCheck> {
    let text = std::fs::read_to_string(data.join("updates/available.json")).ok()?;
    if text.len() > 256 * 1024 {
        return None;
    }
    serde_json::from_str(&text).ok()
}

/// What the watchdog wrote when it last rolled a new version back
/// (`candor supervise`: docs/design/updates.md); a small file in the data
/// directory, read as is (missing or unreadable: none).
pub fn last_rollback(data: &std::path::Path) -> Option<candor_wire::Rollback> {
    let text = std::fs::read_to_string(data.join("updates/last.json")).ok()?;
    if text.len() > 64 * 1024 {
        return None;
    }
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::forecast;

    #[test]
    fn forecast_names_the_binding_limit() {
        // 1 GB/day, 30 days of age allowed, 10 GB per camera: bytes bind first.
        assert_eq!(
            forecast(Some(1e9), Some(30 * 86_400), Some(10_000_000_000), None),
            (Some(10.0), "camera max_bytes")
        );
        assert_eq!(
            forecast(Some(1e9), Some(86_400), None, Some(5e9)),
            (Some(1.0), "max_age")
        );
        assert_eq!(
            forecast(Some(1e9), None, None, Some(5e9)),
            (Some(5.0), "storage")
        );
        assert_eq!(forecast(None, None, None, None), (None, "none"));
    }
}
