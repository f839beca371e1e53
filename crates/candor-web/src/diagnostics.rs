//! Remote diagnostics (docs/design/installers.md): what an installer needs
//! to fix a site without driving there. Cameras' state with their recent
//! reconnect reasons, a connectivity test per camera (TCP, RTSP DESCRIBE,
//! ONVIF time), storage, the cloud link, the recorder's recent log lines
//! (secrets redacted) and a support bundle of all of it. For admins, and
//! technicians whose grant has the diagnostics scope.
//!
//! Limits: the log ring keeps the last [`LOG_LINES`] lines of at most
//! [`LOG_LINE_MAX`] bytes each (about 4 MB at most), in memory only.

use crate::{ApiError, ApiResult, AppState, Caller};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use std::collections::VecDeque;
use std::sync::Mutex;

pub const LOG_LINES: usize = 2000;
pub const LOG_LINE_MAX: usize = 2048;

static RING: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());

/// A `tracing_subscriber` writer that keeps the recent log lines (`candor
/// run` adds a fmt layer with it beside stderr's).
#[derive(Clone, Copy, Debug, Default)]
pub struct LogRing;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogRing {
    type Writer = RingLine;
    fn make_writer(&'a self) -> RingLine {
        RingLine(Vec::new())
    }
}

/// One event's text, stored when the formatter is done with it.
pub struct RingLine(Vec<u8>);

/// What a line may hold before it is redacted (then cut to [`LOG_LINE_MAX`]):
/// cutting first could leave a URL's password without the `@` that marks it.
const LOG_LINE_RAW: usize = 4 * LOG_LINE_MAX;

impl std::io::Write for RingLine {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let room = LOG_LINE_RAW.saturating_sub(self.0.len());
        self.0.extend_from_slice(&b[..b.len().min(room)]);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RingLine {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let mut line = redact(text.trim_end());
        if line.is_empty() {
            return;
        }
        if line.len() > LOG_LINE_MAX {
            let mut cut = LOG_LINE_MAX;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
        }
        let mut r = RING.lock().unwrap_or_else(|e| e.into_inner());
        if r.len() == LOG_LINES {
            r.pop_front();
        }
        r.push_back(line);
    }
}

/// The last `n` log lines, oldest first.
pub fn recent(n: usize) -> Vec<String> {
    let r = RING.lock().unwrap_or_else(|e| e.into_inner());
    r.iter().skip(r.len().saturating_sub(n)).cloned().collect()
}

/// A log line with what must not leave the recorder taken out: URL
/// passwords (`scheme://user:PASSWORD@host`) and one-time links' tokens
/// (`#setup=`, `#enroll=`). Nothing else secret is logged to begin with.
pub fn redact(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    loop {
        let next_url = rest.find("://");
        let next_tok = ["#setup=", "#enroll="]
            .iter()
            .filter_map(|m| rest.find(m).map(|i| (i, m.len())))
            .min();
        match (next_url, next_tok) {
            (Some(u), t) if t.is_none_or(|(i, _)| u < i) => {
                let start = u + 3;
                out.push_str(&rest[..start]);
                let tail = &rest[start..];
                let end = tail
                    .find(|c: char| c.is_whitespace() || "/?#\"'>".contains(c))
                    .unwrap_or(tail.len());
                let authority = &tail[..end];
                match (authority.rfind('@'), authority.find(':')) {
                    (Some(at), Some(colon)) if colon < at => {
                        out.push_str(&authority[..=colon]);
                        out.push_str("***");
                        out.push_str(&authority[at..]);
                    }
                    _ => out.push_str(authority),
                }
                rest = &tail[end..];
            }
            (_, Some((i, len))) => {
                out.push_str(&rest[..i + len]);
                out.push_str("***");
                let tail = &rest[i + len..];
                let end = tail.find(char::is_whitespace).unwrap_or(tail.len());
                rest = &tail[end..];
            }
            _ => {
                out.push_str(rest);
                return out;
            }
        }
    }
}

fn footage(st: &AppState) -> Result<std::sync::Arc<crate::footage::Footage>, ApiError> {
    st.footage
        .clone()
        .ok_or_else(|| ApiError::not_found("no recorder attached"))
}

fn report(st: &AppState, p: &crate::Principal) -> Result<serde_json::Value, ApiError> {
    let f = footage(st)?;
    let system = crate::system::system_json(&f, st, p)?;
    let cameras: Vec<_> = p
        .health_visible(f.status.status(), |s| &s.camera.name)
        .into_iter()
        .map(|s| {
            serde_json::json!({
                "name": s.camera.name,
                "reconnects": s.camera.reconnects,
                "last_error": s.camera.last_error.as_deref().map(redact),
                "recent_errors": s.camera.recent_errors.iter().map(|(at, e)| serde_json::json!({
                    "at": crate::rfc3339(*at),
                    "error": redact(e),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let link = f.cloud.as_ref().map(|c| {
        let s = c.state();
        serde_json::json!({
            "address": s.address,
            "paired": s.paired.is_some(),
            "connected": s.connected,
            "last_error": s.last_error.as_deref().map(redact),
            "remote_access": s.remote.enabled,
            "remote_host": s.remote.host,
        })
    });
    Ok(serde_json::json!({
        "system": system,
        "cameras": cameras,
        "link": link,
    }))
}

/// `GET /api/v1/diagnostics`: cameras (with their recent reconnect
/// reasons), storage, and the cloud link.
pub async fn get(State(st): State<AppState>, Caller(p): Caller) -> ApiResult {
    Ok(Json(report(&st, &p)?).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    lines: Option<usize>,
}

/// `GET /api/v1/diagnostics/logs?lines=N`: the last N (≤ 2000) log lines, redacted.
pub async fn logs(
    State(st): State<AppState>,
    Caller(p): Caller,
    q: Result<Query<LogQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let n = q.lines.unwrap_or(200).min(LOG_LINES);
    if p.grant.is_some() {
        st.audit(Some(&p.username), "logs_read", format!("{n} lines"))
            .await;
    }
    Ok(Json(serde_json::json!({ "lines": recent(n) })).into_response())
}

/// `POST /api/v1/diagnostics/cameras/{name}/test`: the connectivity test
/// of a configured camera.
pub async fn camera_test(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Caller(p): Caller,
) -> ApiResult {
    let f = footage(&st)?;
    let path = f.config_file()?;
    let cfg = tokio::task::spawn_blocking(move || candor_recorder::Config::load(&path))
        .await?
        .map_err(ApiError::internal)?;
    let c = cfg
        .cameras
        .iter()
        .find(|c| c.name.get_ref().0 == name)
        .ok_or_else(|| ApiError::not_found(format!("no camera named {name:?} in the config")))?;
    let steps = candor_recorder::diagnose::test_camera(c).await;
    let summary: Vec<String> = steps
        .iter()
        .map(|s| format!("{} {}", s.name, if s.ok { "ok" } else { "failed" }))
        .collect();
    st.audit(
        Some(&p.username),
        "camera_tested",
        format!("{name}: {}", summary.join(", ")),
    )
    .await;
    Ok(Json(serde_json::json!({ "camera": name, "steps": steps })).into_response())
}

/// `GET /api/v1/diagnostics/bundle`: one JSON file for the installer's
/// support desk: versions, the config with its secrets redacted and its
/// recent history, health, and the last 1,000 log lines.
pub async fn bundle(State(st): State<AppState>, Caller(p): Caller) -> ApiResult {
    let f = footage(&st)?;
    let path = f.config_file()?;
    let (config, versions) = tokio::task::spawn_blocking(move || {
        let (text, _) = candor_recorder::config_edit::redacted(&path)?;
        let h = candor_recorder::config_history::History::open(&path)?;
        Ok::<_, candor_recorder::ConfigError>((text, h.list(20, None)?))
    })
    .await?
    .map_err(ApiError::internal)?;
    let health = report(&st, &p)?;
    st.audit(Some(&p.username), "support_bundle", String::new())
        .await;
    let now = jiff::Timestamp::now();
    let body = serde_json::json!({
        "generated_at": now.to_string(),
        "version": candor_wire::version(),
        "uptime_secs": st.started.elapsed().as_secs(),
        "config": config,
        "config_versions": versions,
        "health": health,
        "logs": recent(1000),
    });
    let name = format!(
        "attachment; filename=\"candor-support-{}.json\"",
        now.as_second()
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CONTENT_DISPOSITION, name),
        ],
        serde_json::to_vec_pretty(&body).map_err(ApiError::internal)?,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_cut_from_log_lines() {
        assert_eq!(
            redact("camera session failed: rtsp://admin:hunter2@10.0.0.5:554/x: refused"),
            "camera session failed: rtsp://admin:***@10.0.0.5:554/x: refused"
        );
        assert_eq!(
            redact("open https://127.0.0.1:8443/#setup=AbC-123 to create"),
            "open https://127.0.0.1:8443/#setup=*** to create"
        );
        assert_eq!(redact("mqtt://u@h:1883 x"), "mqtt://u@h:1883 x");
        assert_eq!(redact("no url here"), "no url here");
        assert_eq!(redact("a://b:c@d e://f:g@h"), "a://b:***@d e://f:***@h");
    }

    #[test]
    fn the_ring_is_bounded() {
        use std::io::Write;
        for i in 0..(LOG_LINES + 10) {
            let mut l = tracing_subscriber::fmt::MakeWriter::make_writer(&LogRing);
            write!(l, "line {i} {}", "x".repeat(LOG_LINE_MAX)).unwrap();
        }
        let all = recent(usize::MAX);
        assert_eq!(all.len(), LOG_LINES);
        assert!(all.iter().all(|l| l.len() <= LOG_LINE_MAX));
        assert!(
            all.last()
                .unwrap()
                .starts_with(&format!("line {}", LOG_LINES + 9))
        );
    }
}
