//! The config file's history and whole-file changes: versions, diffs,
//! rollback, the text editor, cameras changed or removed, and confirmed
//! apply. Every change goes through `candor_recorder::config_edit` (a
//! version with who, when and from where), is applied to the running
//! recorder where it can be ([`apply`]), and says which sections need a
//! restart. A change to `[web]` (or, from a remote caller, `[cloud]`) could
//! cut the caller off: it reverts by itself unless confirmed in time.

use crate::footage::Footage;
use crate::{ApiError, ApiResult, AppState, Caller, Principal, rfc3339};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use candor_recorder::ConfigError;
use candor_recorder::config_edit::{self, Edited, History};
use std::sync::Arc;
use std::time::Duration;

/// How long a held change waits for confirmation unless the request says.
pub const CONFIRM_DEFAULT: Duration = Duration::from_secs(300);
/// The shortest and longest waits a request may ask for.
pub const CONFIRM_MIN: Duration = Duration::from_secs(2);
pub const CONFIRM_MAX: Duration = Duration::from_secs(3600);

fn footage(st: &AppState) -> Result<(Arc<Footage>, std::path::PathBuf), ApiError> {
    let f = st
        .footage
        .clone()
        .ok_or_else(|| ApiError::not_found("no recorder attached"))?;
    let path = f.config_file()?;
    Ok((f, path))
}

/// Runs a config change on the blocking pool; a change the config would
/// not accept is the caller's error (400), anything else the server's.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ConfigError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| match e {
            ConfigError::Invalid { message, .. } => ApiError::bad_request("bad_config", message),
            ConfigError::History(candor_recorder::config_history::HistoryError::NoVersion(v)) => {
                ApiError::not_found(format!("no config version {v}"))
            }
            e => ApiError::internal(e),
        })
}

/// Applies a saved change to the running recorder: cameras (started,
/// stopped, restarted, or their detectors' settings), the Cloud page's
/// switches, and `[web] listen` (a new listener, bound before the old one
/// closes). Other sections are saved for the next start. Returns (what was
/// applied, sections needing a restart).
pub(crate) async fn apply(f: &Footage, e: &Edited) -> Result<(Vec<String>, Vec<String>), ApiError> {
    // One apply at a time, each to the file as it is now: two changes
    // applied in parallel (or a revert racing the change it undoes) would
    // leave the running recorder unlike the file.
    static APPLY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = APPLY.lock().await;
    let path = f.config_file()?;
    let (from, to) = (e.previous, e.version);
    let (old, new, now) = blocking(move || {
        let h = History::open(&path)?;
        Ok((
            h.text(from)?,
            h.text(to)?,
            candor_recorder::Config::load(&path)?,
        ))
    })
    .await?;
    let (mut live, mut restart) = (Vec::new(), Vec::new());
    for section in config_edit::changed_sections(&old, &new) {
        match section.as_str() {
            "cameras" => live.extend(f.status.apply_cameras(&now.cameras).await),
            "cloud" => match cloud_live(f, &old, &new, &now).await {
                Some(done) => live.extend(done),
                None => restart.push("[cloud]".to_owned()),
            },
            "web"
                if config_edit::only_changed(&old, &new, "web", &["listen"])
                    && f.listener.is_some() =>
            {
                let addr = now.web.listen;
                let l = tokio::net::TcpListener::bind(addr).await.map_err(|err| {
                    ApiError::new(
                        StatusCode::CONFLICT,
                        "listen_failed",
                        format!(
                            "the change is saved, but the web server can't listen on {addr}: {err}; roll it back or choose a free address"
                        ),
                    )
                })?;
                if let Some(tx) = &f.listener {
                    tx.send(l).await.map_err(ApiError::internal)?;
                }
                live.push(format!("web server listening on {addr}"));
            }
            s => restart.push(format!("[{s}]")),
        }
    }
    Ok((live, restart))
}

/// The Cloud page's switches, applied by the running link; `None` when
/// anything else in `[cloud]` changed (a restart is needed).
async fn cloud_live(
    f: &Footage,
    old: &str,
    new: &str,
    now: &candor_recorder::Config,
) -> Option<Vec<String>> {
    use candor_recorder::cloud::Cmd;
    let keys = ["sharing", "private_alarms", "remote_access"];
    let (h, c) = (f.cloud.as_ref()?, now.cloud.as_ref()?);
    if !config_edit::only_changed(old, new, "cloud", &keys) {
        return None;
    }
    h.send(Cmd::Settings {
        sharing: c.sharing,
        private_alarms: c.private_alarms,
    })
    .await;
    h.send(Cmd::Remote(c.remote_access)).await;
    Some(vec![format!(
        "cloud: sharing {:?}, remote access {}",
        c.sharing,
        if c.remote_access { "on" } else { "off" }
    )])
}

/// Applies `e`, holds it for confirmation when it is risky, audits it, and
/// answers with what happened.
async fn changed(
    st: &AppState,
    f: &Footage,
    p: &Principal,
    e: Edited,
    within: Option<u64>,
    action: &'static str,
    detail: String,
) -> ApiResult {
    let path = f.config_file()?;
    let within = within
        .map(Duration::from_secs)
        .unwrap_or(CONFIRM_DEFAULT)
        .clamp(CONFIRM_MIN, CONFIRM_MAX);
    let by = p.author();
    let (version, previous) = (e.version, e.previous);
    let held = blocking(move || config_edit::hold(&path, version, previous, &by, within)).await?;
    if held.is_some() {
        f.held.notify_one();
    }
    // Audited before it is applied: an apply that fails still changed the file.
    st.audit(
        Some(&p.username),
        action,
        if version == previous {
            format!("{detail} (no change)")
        } else {
            format!("{detail} (version {version})")
        },
    )
    .await;
    let (live, restart) = apply(f, &e).await?;
    Ok(Json(candor_wire::ConfigChanged {
        version,
        live,
        restart,
        confirm_by: held.map(|h| rfc3339(h.deadline)),
    })
    .into_response())
}

/// A technician's whole-file change passes the checks of the camera form:
/// every address of a camera it adds or changes must be on the local
/// network (the owner's own edits are theirs to make).
async fn check_cameras(st: &AppState, p: &config_edit::Prepared) -> Result<(), ApiError> {
    for c in &p.config.cameras {
        let name = &c.name.get_ref().0;
        let before = p
            .current
            .cameras
            .iter()
            .find(|o| o.name.get_ref().0 == *name);
        let addr = |c: &candor_recorder::config::CameraConfig| {
            (
                c.url.url.to_string(),
                c.sub_url.as_ref().map(|u| u.url.to_string()),
                c.onvif.as_ref().map(|o| o.0.clone()),
            )
        };
        if before.is_some_and(|o| addr(o) == addr(c)) {
            continue;
        }
        let (url, sub_url, onvif) = addr(c);
        let form = config_edit::NewCamera {
            name: name.clone(),
            url,
            username: None,
            password: None,
            sub_url,
            onvif,
            motion: false,
            other_host: false,
        };
        crate::cameras_api::check_camera(st, &form).await?;
    }
    Ok(())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionsQuery {
    before: Option<i64>,
    limit: Option<u32>,
}

/// `GET /api/v1/config/versions`: newest first, with the pending change.
pub async fn versions(
    State(st): State<AppState>,
    _: Caller,
    q: Result<Query<VersionsQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let (_, path) = footage(&st)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    let (list, current, pending) = blocking(move || {
        let current = config_edit::notice(&path)?;
        let h = History::open(&path)?;
        let current = match current {
            Some(v) => v,
            None => h.latest()?.map_or(0, |(v, _)| v),
        };
        Ok((h.list(limit, q.before)?, current, h.pending()?))
    })
    .await?;
    Ok(Json(candor_wire::ConfigVersions {
        versions: list
            .into_iter()
            .map(|v| candor_wire::ConfigVersion {
                id: v.id,
                at: rfc3339(v.at),
                user: v.user,
                origin: v.origin.as_str().to_owned(),
                address: v.address,
                note: v.note,
            })
            .collect(),
        current,
        pending: pending.map(|p| candor_wire::ConfigPending {
            version: p.version,
            previous: p.previous,
            deadline: rfc3339(p.deadline),
        }),
    })
    .into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    from: i64,
    to: i64,
}

/// `GET /api/v1/config/diff?from=A&to=B`: a unified diff, secrets redacted.
pub async fn diff(
    State(st): State<AppState>,
    _: Caller,
    q: Result<Query<DiffQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let (_, path) = footage(&st)?;
    let (from, to) = (q.from, q.to);
    let diff = blocking(move || Ok(History::open(&path)?.diff(from, to)?)).await?;
    Ok(Json(candor_wire::ConfigDiff { from, to, diff }).into_response())
}

/// `GET /api/v1/config/text`: the file as it is, secrets redacted.
pub async fn text(State(st): State<AppState>, _: Caller) -> ApiResult {
    let (_, path) = footage(&st)?;
    let (text, version) = blocking(move || config_edit::redacted(&path)).await?;
    let cameras = config_edit::camera_names(&text);
    Ok(Json(candor_wire::ConfigText {
        version,
        text,
        cameras,
    })
    .into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextBody {
    /// The version the text was edited from (a change since is not overwritten).
    base: i64,
    text: String,
    /// Seconds a risky change waits for confirmation.
    confirm_within: Option<u64>,
}

/// `PUT /api/v1/config/text`: the whole file, edited from [`text`]'s answer
/// (secrets stay as their `<secret:…>` marks unless retyped).
pub async fn put_text(
    State(st): State<AppState>,
    Caller(p): Caller,
    body: axum::body::Bytes,
) -> ApiResult {
    let b: TextBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("bad_body", format!("config text: {e}")))?;
    let (f, path) = footage(&st)?;
    let by = p.author();
    let (base, text) = (b.base, b.text);
    if p.grant.is_some() {
        let (path, by, text) = (path.clone(), by.clone(), text.clone());
        let prepared = blocking(move || config_edit::prepare_text(&path, &by, base, &text)).await?;
        check_cameras(&st, &prepared).await?;
    }
    let e = blocking(move || config_edit::set_text(&path, &by, base, &text)).await?;
    changed(
        &st,
        &f,
        &p,
        e,
        b.confirm_within,
        "config_edited",
        "config text edited".into(),
    )
    .await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    version: i64,
    confirm_within: Option<u64>,
}

/// `POST /api/v1/config/rollback`: makes an earlier version the config
/// again, applied at once where possible.
pub async fn rollback(
    State(st): State<AppState>,
    Caller(p): Caller,
    body: axum::body::Bytes,
) -> ApiResult {
    let b: RollbackBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("bad_body", format!("rollback: {e}")))?;
    let (f, path) = footage(&st)?;
    let by = p.author();
    let v = b.version;
    if p.grant.is_some() {
        let (path, by) = (path.clone(), by.clone());
        let prepared = blocking(move || config_edit::prepare_rollback(&path, &by, v)).await?;
        check_cameras(&st, &prepared).await?;
    }
    let e = blocking(move || config_edit::rollback(&path, &by, v)).await?;
    changed(
        &st,
        &f,
        &p,
        e,
        b.confirm_within,
        "config_rolled_back",
        format!("rolled back to version {v}"),
    )
    .await
}

/// `POST /api/v1/config/confirm`: keeps the change waiting for confirmation.
pub async fn confirm(State(st): State<AppState>, Caller(p): Caller) -> ApiResult {
    let (_, path) = footage(&st)?;
    let done = blocking(move || config_edit::confirm(&path)).await?;
    let Some(held) = done else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "nothing_pending",
            "no change is waiting for confirmation (it may have been reverted already)",
        ));
    };
    st.audit(
        Some(&p.username),
        "config_confirmed",
        format!("version {}", held.version),
    )
    .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/cameras/{name}/config`: the camera's addresses and user
/// name as saved, for "Change camera" (never its password).
pub async fn camera_get(
    State(st): State<AppState>,
    Path(name): Path<String>,
    _: Caller,
) -> ApiResult {
    let (_, path) = footage(&st)?;
    let cfg = blocking(move || candor_recorder::Config::load(&path)).await?;
    let c = cfg
        .cameras
        .iter()
        .find(|c| c.name.get_ref().0 == name)
        .ok_or_else(|| ApiError::not_found(format!("no camera named {name:?} in the config")))?;
    Ok(Json(candor_wire::CameraSettings {
        name: name.clone(),
        url: c.url.url.to_string(),
        username: c.url.username.clone(),
        has_password: c.url.password.is_some(),
        sub_url: c.sub_url.as_ref().map(|u| u.url.to_string()),
        onvif: c.onvif.as_ref().map(|o| o.0.clone()),
    })
    .into_response())
}

/// `PUT /api/v1/cameras/{name}`: the camera's addresses and credentials
/// (the form of "Add camera"; a password left out is kept). The camera
/// restarts with them.
pub async fn camera_put(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Caller(p): Caller,
    b: Result<Json<config_edit::NewCamera>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let Json(c) = b.map_err(|e| ApiError::bad_request("bad_body", e.body_text()))?;
    crate::cameras_api::check_camera(&st, &c).await?;
    let (f, path) = footage(&st)?;
    let by = p.author();
    let n = name.clone();
    let e = blocking(move || config_edit::edit_camera(&path, &by, &n, &c)).await?;
    let url = e
        .config
        .cameras
        .iter()
        .find(|c| c.name.get_ref().0 == name)
        .map(|c| c.url.to_string())
        .unwrap_or_default();
    changed(
        &st,
        &f,
        &p,
        e,
        None,
        "camera_changed",
        format!("{name} {url}"),
    )
    .await
}

/// `DELETE /api/v1/cameras/{name}`: stops recording it and removes it from
/// the config; its footage stays until retention removes it.
pub async fn camera_delete(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Caller(p): Caller,
) -> ApiResult {
    let (f, path) = footage(&st)?;
    let by = p.author();
    let n = name.clone();
    let e = blocking(move || config_edit::remove_camera(&path, &by, &n)).await?;
    changed(&st, &f, &p, e, None, "camera_removed", name).await
}

/// Reverts held changes when their time is up, for as long as the server
/// runs (and at once for one whose deadline passed while it was down).
pub(crate) async fn confirm_timer(st: AppState) {
    let Some(f) = st.footage.clone() else { return };
    let Ok(path) = f.config_file() else { return };
    loop {
        let p = path.clone();
        let pending = blocking(move || config_edit::pending(&p))
            .await
            .ok()
            .flatten();
        let wait = pending.map(|p| {
            Duration::from_secs((p.deadline - candor_recorder::config_history::now()).max(0) as u64)
        });
        if let Some(w) = wait {
            tokio::select! {
                _ = tokio::time::sleep(w) => {}
                _ = f.held.notified() => continue,
            }
        } else {
            f.held.notified().await;
            continue;
        }
        let p = path.clone();
        let now = candor_recorder::config_history::now();
        match blocking(move || config_edit::revert_if_due(&p, now)).await {
            Ok(Some(e)) => {
                tracing::warn!(
                    "config version {} was not confirmed in time: [web] and [cloud] are back as they were",
                    e.previous
                );
                let done = apply(&f, &e).await;
                st.audit(
                    None,
                    "config_reverted",
                    format!(
                        "not confirmed in time; now version {} ({:?})",
                        e.version,
                        done.map(|d| d.0).unwrap_or_default()
                    ),
                )
                .await;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!("reverting an unconfirmed config change: {}", e.message);
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}
