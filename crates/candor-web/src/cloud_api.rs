//! The Cloud page's API (admin only): pairing with a one-time code and a
//! confirmation code compared on both screens, unpairing, what the site
//! shares, and the egress ledger (every message and byte sent off-site).

use crate::{ApiError, ApiResult, AppState, Caller, Principal};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use candor_media::Time90k;
use candor_recorder::cloud::{CloudHandle, Cmd, LinkState};

fn handle(st: &AppState) -> Result<CloudHandle, ApiError> {
    st.footage
        .as_ref()
        .and_then(|f| f.cloud.clone())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "cloud_off",
                "the cloud is off: add a [cloud] section with the cloud's address to candor.toml and restart",
            )
        })
}

fn state_json(h: &CloudHandle) -> serde_json::Value {
    let s = h.state();
    let mut j = serde_json::to_value(&s).unwrap_or_default();
    // The QR code a phone scans: the cloud app's address with the code in
    // the fragment, which never reaches a server log.
    if let Some(code) = s.pairing.as_ref().and_then(|p| p.code.as_deref()) {
        let url = format!("https://{}/#pair={code}", s.address);
        if let Ok(qr) = qrcode::QrCode::new(url.as_bytes()) {
            use base64::Engine as _;
            let svg = qr
                .render::<qrcode::render::svg::Color>()
                .min_dimensions(200, 200)
                .build();
            j["qr"] = format!(
                "data:image/svg+xml;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(svg)
            )
            .into();
            j["pair_url"] = url.into();
        }
    }
    j
}

pub async fn get_state(State(st): State<AppState>, _: Caller) -> ApiResult {
    match st.footage.as_ref().and_then(|f| f.cloud.clone()) {
        Some(h) => Ok(Json(state_json(&h)).into_response()),
        None => Ok(Json(serde_json::json!({"configured": false})).into_response()),
    }
}

/// Sends a command to the link. Returns a watch of its state whose current
/// value is marked seen *before* the command went (so a wait on it is for
/// the link's answer), and that value. The link takes commands between
/// connection attempts: a full queue (requests piling up while it
/// connects) is a 503 `busy`, not a hang.
async fn send_watched(
    h: &CloudHandle,
    cmd: Cmd,
) -> Result<(tokio::sync::watch::Receiver<LinkState>, LinkState), ApiError> {
    let mut w = h.watch();
    let before = w.borrow_and_update().clone();
    match tokio::time::timeout(std::time::Duration::from_secs(3), h.send(cmd)).await {
        Ok(true) => Ok((w, before)),
        Ok(false) => Err(ApiError::internal("the cloud link has stopped")),
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the cloud link is busy with an earlier request; try again in a few seconds",
        )
        .retry_after(5)),
    }
}

async fn command(st: &AppState, p: &Principal, cmd: Cmd, action: &'static str) -> ApiResult {
    let h = handle(st)?;
    let (mut w, _) = send_watched(&h, cmd).await?;
    st.audit(Some(&p.username), action, h.state().address.clone())
        .await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), w.changed()).await;
    Ok(Json(state_json(&h)).into_response())
}

pub async fn pair(State(st): State<AppState>, Caller(p): Caller) -> ApiResult {
    // Who may ask comes first: nothing about the cloud's state before that.
    if handle(&st)?.state().paired.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "paired",
            "this recorder is paired already; unpair it first",
        ));
    }
    let h = handle(&st)?;
    let (mut w, seen) = send_watched(&h, Cmd::StartPairing).await?;
    let before = seen.pairing_attempts;
    // Answer when this attempt has its code or has failed, or after 3 s
    // (a cloud that is slow to answer may take 15 s more to fail; the page
    // keeps watching `GET /cloud`). Most failures (refused, unknown host,
    // untrusted certificate) come within the 3 s and are this answer's 502.
    // The attempt counter tells this attempt's state from an earlier one's,
    // however quickly it begins and ends.
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(3), async {
        loop {
            {
                let s = w.borrow_and_update();
                if s.pairing_attempts > before {
                    match &s.pairing {
                        Some(v) if v.code.is_some() => return Ok(()),
                        Some(_) => {}
                        None => return Err(s.last_error.clone()),
                    }
                }
            }
            if w.changed().await.is_err() {
                return Err(Some("the cloud link has stopped".into()));
            }
        }
    })
    .await;
    st.audit(
        Some(&p.username),
        "cloud_pairing_started",
        h.state().address.clone(),
    )
    .await;
    match outcome {
        Ok(Err(why)) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "pairing_failed",
            why.unwrap_or_else(|| "the pairing attempt ended".into()),
        )),
        // A code, or still connecting (the page keeps watching).
        _ => Ok(Json(state_json(&h)).into_response()),
    }
}

pub async fn confirm(State(st): State<AppState>, Caller(p): Caller) -> ApiResult {
    let h = handle(&st)?;
    if h.state().pairing.and_then(|p| p.confirmation).is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_claimed",
            "nobody has entered the code in the cloud app yet",
        ));
    }
    command(&st, &p, Cmd::Confirm, "cloud_pairing_confirmed").await
}

pub async fn cancel(State(st): State<AppState>, Caller(p): Caller) -> ApiResult {
    command(&st, &p, Cmd::Cancel, "cloud_pairing_cancelled").await
}

pub async fn unpair(State(st): State<AppState>, Caller(p): Caller) -> ApiResult {
    command(&st, &p, Cmd::Unpair, "cloud_unpaired").await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharingBody {
    sharing: candor_link::Sharing,
    private_alarms: bool,
}

/// A Cloud page setting: written to candor.toml (the one source of truth)
/// by `edit`, then applied by the link (`cmd`) and audited. Answers with the
/// state the link shows once it took the command (or after 2 s).
async fn setting(
    st: &AppState,
    p: &Principal,
    edit: impl FnOnce(
        &std::path::Path,
        &candor_recorder::config_history::Author,
    ) -> Result<candor_recorder::config_edit::Edited, candor_recorder::ConfigError>
    + Send
    + 'static,
    cmd: Cmd,
    action: &'static str,
    detail: String,
) -> ApiResult {
    let h = handle(st)?;
    let path = st
        .footage
        .as_ref()
        .and_then(|f| f.config_path.clone())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "read_only",
                "this server has no config file to change",
            )
        })?;
    let by = p.author();
    tokio::task::spawn_blocking(move || edit(&path, &by))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::bad_request("bad_settings", e.to_string()))?;
    let mut w = h.watch();
    w.borrow_and_update();
    h.send(cmd).await;
    st.audit(Some(&p.username), action, detail).await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), w.changed()).await;
    Ok(Json(state_json(&h)).into_response())
}

pub async fn sharing(
    State(st): State<AppState>,
    Caller(p): Caller,
    body: axum::body::Bytes,
) -> ApiResult {
    let b: SharingBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("bad_body", format!("sharing: {e}")))?;
    let (s, pa) = (b.sharing, b.private_alarms);
    setting(
        &st,
        &p,
        move |path, by| candor_recorder::config_edit::set_cloud_sharing(path, by, s, pa),
        Cmd::Settings {
            sharing: s,
            private_alarms: pa,
        },
        "cloud_sharing_changed",
        format!("{s:?}, private alarms {pa}"),
    )
    .await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteBody {
    enabled: bool,
}

/// Remote access through the cloud, on or off: the recorder's decision (the
/// cloud can only ask). Switching off ends every remote connection at once.
pub async fn remote(
    State(st): State<AppState>,
    Caller(p): Caller,
    body: axum::body::Bytes,
) -> ApiResult {
    let b: RemoteBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("bad_body", format!("remote access: {e}")))?;
    let on = b.enabled;
    setting(
        &st,
        &p,
        move |path, by| candor_recorder::config_edit::set_cloud_remote(path, by, on),
        Cmd::Remote(on),
        "cloud_remote_access_changed",
        if on { "on" } else { "off" }.to_string(),
    )
    .await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressQuery {
    since: Option<String>,
    until: Option<String>,
    kind: Option<String>,
    limit: Option<u32>,
    format: Option<String>,
}

/// The ledger, newest last, as JSON or CSV.
pub async fn egress(
    State(st): State<AppState>,
    _: Caller,
    q: Result<Query<EgressQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let f = st
        .footage
        .clone()
        .ok_or_else(|| ApiError::not_found("no recorder attached"))?;
    let time = |s: Option<&str>, what: &str| {
        s.filter(|s| !s.is_empty())
            .map(|s| {
                Time90k::parse_rfc3339(s).map_err(|_| {
                    ApiError::bad_request("bad_time", format!("{what} must be RFC 3339"))
                })
            })
            .transpose()
    };
    let filter = candor_storage::egress::EgressFilter {
        since: time(q.since.as_deref(), "since")?,
        until: time(q.until.as_deref(), "until")?,
        kind: q.kind.filter(|k| !k.is_empty()),
        limit: Some(q.limit.unwrap_or(10_000).min(100_000)),
    };
    let list = tokio::task::spawn_blocking(move || f.store.egress(&filter))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(candor_wire::EgressList {
            total_bytes: list.iter().map(|e| e.bytes).sum(),
            entries: list.iter().map(Into::into).collect(),
        })
        .into_response()),
        Some("csv") => {
            let out = egress_csv(&list);
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"candor-egress.csv\"",
                    ),
                ],
                out,
            )
                .into_response())
        }
        Some(_) => Err(ApiError::bad_request(
            "bad_query",
            "format must be json or csv",
        )),
    }
}

/// The ledger as CSV (RFC 4180; fields that a spreadsheet would run as a
/// formula are defused), as the web app and `candor egress --csv` give it.
pub fn egress_csv(list: &[candor_storage::egress::EgressEntry]) -> String {
    use crate::admin_api::csv;
    let mut out = String::from("time,destination,kind,bytes,summary\r\n");
    for e in list {
        out.push_str(&format!(
            "{},{},{},{},{}\r\n",
            e.at,
            csv(&e.destination),
            csv(&e.kind),
            e.bytes,
            csv(&e.summary)
        ));
    }
    out
}
