//! Technicians' access (docs/design/installers.md): the owner's Access page
//! (requests, grants, revocation) and the technician's enrolment. Grants
//! are made only here, by an admin of this recorder; the cloud can relay a
//! request, never an approval.

use crate::accounts::grants::{GrantError, NewGrant, Request};
use crate::session_api::hash_slot;
use crate::{ApiError, ApiResult, AppState, Caller};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use candor_link::{AccessEvent, GrantNote};

fn parse<T: serde::de::DeserializeOwned>(b: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(b).map_err(|e| ApiError::bad_request("bad_body", format!("{what}: {e}")))
}

/// `GET /api/v1/grants`: grants (active, and ended in the last 30 days) and
/// requests (waiting, and answered in the last 30 days).
pub async fn list(State(st): State<AppState>, _: Caller) -> ApiResult {
    let a = st.accounts.clone();
    let (grants, requests) =
        tokio::task::spawn_blocking(move || Ok::<_, ApiError>((a.grants()?, a.requests()?)))
            .await??;
    Ok(Json(serde_json::json!({
        "now": candor_media::time::unix_secs(),
        "grants": grants,
        "requests": requests,
    }))
    .into_response())
}

fn made(grant: crate::accounts::grants::Grant, code: Option<String>) -> axum::response::Response {
    (
        StatusCode::CREATED,
        Json(serde_json::json!({
            "grant": grant,
            // Shown once: the owner hands it to the technician (not through
            // the cloud), who opens `#enroll=CODE` on this recorder.
            "enroll_code": code,
        })),
    )
        .into_response()
}

/// `POST /api/v1/grants`: the owner grants a technician access directly.
pub async fn create(
    State(st): State<AppState>,
    Caller(p): Caller,
    body: axum::body::Bytes,
) -> ApiResult {
    let g: NewGrant = parse(&body, "grant")?;
    let _slot = hash_slot(&st).await?;
    let (a, by, g2) = (st.accounts.clone(), p.username.clone(), g.clone());
    let (grant, code) =
        tokio::task::spawn_blocking(move || a.create_grant(&g2, &by, None)).await??;
    st.audit(
        Some(&p.username),
        "grant_created",
        format!(
            "grant {} to {} ({}): {} for {} h, cameras {:?}; {}",
            grant.id, g.technician, g.org, g.scopes, g.hours, g.cameras, g.reason
        ),
    )
    .await;
    Ok(made(grant, code))
}

/// `POST /api/v1/grants/{id}/revoke`: ends a grant; the technician's
/// sessions end with it.
pub async fn revoke(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Caller(p): Caller,
) -> ApiResult {
    let (a, by) = (st.accounts.clone(), p.username.clone());
    let g = tokio::task::spawn_blocking(move || a.revoke_grant(id, &by))
        .await??
        .ok_or_else(|| ApiError::not_found("no active grant with that id"))?;
    st.audit(
        Some(&p.username),
        "grant_revoked",
        format!("grant {} of {}: access ended", g.id, g.technician),
    )
    .await;
    report_grants(&st).await;
    notice(&st, AccessEvent::Ended, &g.technician, &g.org);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/access-requests/{id}/approve`: grants what was asked, or
/// less (the body: the grant, narrowed).
pub async fn approve(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Caller(p): Caller,
    body: axum::body::Bytes,
) -> ApiResult {
    let g: NewGrant = parse(&body, "grant")?;
    let _slot = hash_slot(&st).await?;
    let (a, by) = (st.accounts.clone(), p.username.clone());
    let (grant, code) = tokio::task::spawn_blocking(move || a.decide_request(id, Some(&g), &by))
        .await??
        .ok_or_else(|| ApiError::internal("an approval made no grant"))?;
    st.audit(
        Some(&p.username),
        "grant_created",
        format!(
            "grant {} to {} ({}) on request {id}: {} for {} h",
            grant.id,
            grant.technician,
            grant.org,
            grant.scopes,
            (grant.expires_at - grant.approved_at) / 3600
        ),
    )
    .await;
    report_grants(&st).await;
    Ok(made(grant, code))
}

/// `POST /api/v1/access-requests/{id}/refuse`.
pub async fn refuse(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Caller(p): Caller,
) -> ApiResult {
    let (a, by) = (st.accounts.clone(), p.username.clone());
    tokio::task::spawn_blocking(move || a.decide_request(id, None, &by)).await??;
    st.audit(
        Some(&p.username),
        "access_request_refused",
        format!("request {id}"),
    )
    .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/access-requests`: a request typed in here (the cloud
/// relays technicians' own). It grants nothing until approved.
pub async fn request(
    State(st): State<AppState>,
    Caller(p): Caller,
    body: axum::body::Bytes,
) -> ApiResult {
    let r: Request = parse(&body, "request")?;
    let a = st.accounts.clone();
    let r2 = r.clone();
    let id = tokio::task::spawn_blocking(move || a.add_request(&r2, "local")).await??;
    st.audit(
        Some(&p.username),
        "access_requested",
        format!(
            "request {id} for {} ({}): {}",
            r.technician, r.org, r.scopes
        ),
    )
    .await;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "id": id }))).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollBegin {
    code: String,
}

fn code_ok(code: &str) -> Result<(), ApiError> {
    if code.is_empty() || code.len() > 128 {
        return Err(GrantError::BadEnrolment.into());
    }
    Ok(())
}

/// `POST /api/v1/enroll` (public, with the one-time code): the technician's
/// new TOTP secret, to put in their authenticator app.
pub async fn enroll(State(st): State<AppState>, body: axum::body::Bytes) -> ApiResult {
    let b: EnrollBegin = parse(&body, "enrolment")?;
    code_ok(&b.code)?;
    let a = st.accounts.clone();
    let (name, secret) = tokio::task::spawn_blocking(move || a.enroll_begin(&b.code)).await??;
    let uri = crate::totp::otpauth_uri(&secret, &name);
    Ok(Json(serde_json::json!({
        "technician": name,
        "secret": crate::totp::base32(&secret),
        "qr": crate::session_api::qr_data_uri(&uri)?,
        "uri": uri,
    }))
    .into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollFinish {
    code: String,
    password: String,
    totp: String,
}

/// `POST /api/v1/enroll/finish` (public, with the one-time code): the
/// technician's password and a code from their authenticator. Uses the
/// enrolment code up; the technician then signs in as any user does.
pub async fn enroll_finish(State(st): State<AppState>, body: axum::body::Bytes) -> ApiResult {
    let b: EnrollFinish = parse(&body, "enrolment")?;
    code_ok(&b.code)?;
    if b.password.len() > 1024 || b.totp.len() > 64 {
        return Err(ApiError::bad_request(
            "invalid",
            "password or code too long",
        ));
    }
    // A wrong code costs a lookup, never a hashing slot logins need.
    if !st.accounts.enrolment_valid(&b.code)? {
        return Err(GrantError::BadEnrolment.into());
    }
    let _slot = hash_slot(&st).await?;
    let a = st.accounts.clone();
    let now = candor_media::time::unix_secs();
    let (name, codes) =
        tokio::task::spawn_blocking(move || a.enroll_finish(&b.code, &b.password, &b.totp, now))
            .await??;
    st.audit(
        Some(&name),
        "technician_enrolled",
        "password and two-factor set with the grant's one-time code".into(),
    )
    .await;
    Ok(Json(serde_json::json!({ "technician": name, "recovery_codes": codes })).into_response())
}

/// Notes in the audit log each grant that ended by running out (revoked
/// ones were noted when revoked), every few seconds while the server runs.
pub(crate) async fn watch_ends(st: AppState) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let a = st.accounts.clone();
        let ended = tokio::task::spawn_blocking(move || a.grants_ended_unnoted()).await;
        if let Ok(Ok(ended)) = ended {
            let any = !ended.is_empty();
            for g in ended {
                st.audit(
                    Some(&g.technician),
                    "technician_access_ended",
                    format!("grant {} expired", g.id),
                )
                .await;
                notice(&st, AccessEvent::Ended, &g.technician, &g.org);
            }
            if any {
                report_grants(&st).await;
            }
        }
    }
}

/// Stores the requests the cloud relays (a technician of a linked
/// installer asking), each one audited; they wait for an admin on the
/// Access page. A request the store refuses (invalid, or 20 waiting) is
/// audited as refused: the owner sees what the cloud sent either way.
pub(crate) async fn store_cloud_requests(
    st: AppState,
    mut rx: tokio::sync::mpsc::Receiver<candor_recorder::cloud::AccessRequest>,
) {
    while let Some(r) = rx.recv().await {
        let scopes = crate::accounts::grants::Scopes {
            config: r.scopes.iter().any(|s| s == "config"),
            diagnostics: r.scopes.iter().any(|s| s == "diagnostics"),
            live: r.scopes.iter().any(|s| s == "live"),
            playback: r.scopes.iter().any(|s| s == "playback"),
        };
        let req = Request {
            id: 0,
            at: 0,
            technician: r.technician.clone(),
            org: r.org.clone(),
            scopes,
            cameras: r.cameras.clone(),
            hours: r.hours,
            reason: r.reason.clone(),
            source: String::new(),
            state: String::new(),
            decided_by: None,
            grant_id: None,
        };
        let a = st.accounts.clone();
        let stored = tokio::task::spawn_blocking(move || a.add_request(&req, "cloud")).await;
        if matches!(stored, Ok(Ok(_))) {
            notice(&st, AccessEvent::RequestWaiting, &r.technician, &r.org);
        }
        let (action, detail) = match stored {
            Ok(Ok(id)) => (
                "access_requested",
                format!(
                    "request {id} through the cloud: {} ({}) asks for {scopes} for {} h: {}",
                    r.technician, r.org, r.hours, r.reason
                ),
            ),
            Ok(Err(e)) => (
                "access_request_refused",
                format!("from the cloud, for {} ({}): {e}", r.technician, r.org),
            ),
            Err(e) => ("access_request_refused", e.to_string()),
        };
        st.audit(None, action, detail).await;
    }
}

fn cloud(st: &AppState) -> Option<&candor_recorder::cloud::CloudHandle> {
    st.footage.as_ref().and_then(|f| f.cloud.as_ref())
}

/// Tells the owner's phone, through the cloud when it is linked, that a
/// technician asked, came in or left. The Access page and the audit log
/// say it too; this one only reaches an owner who is away.
pub(crate) fn notice(st: &AppState, event: AccessEvent, technician: &str, org: &str) {
    if let Some(c) = cloud(st) {
        c.notice(event, technician, org);
    }
}

fn note(g: &crate::accounts::grants::Grant) -> GrantNote {
    GrantNote {
        id: g.id as u64,
        technician: g.technician.clone(),
        org: g.org.clone(),
        scopes: g.scopes.names(),
        cameras: g.cameras.clone(),
        expires_at: g.expires_at,
    }
}

/// Hands the link the grants the cloud may know of (in force, answering
/// its requests); the link sends them now and on each connection, and the
/// cloud's mirror follows.
pub(crate) async fn report_grants(st: &AppState) {
    let Some(c) = cloud(st) else { return };
    let a = st.accounts.clone();
    match tokio::task::spawn_blocking(move || a.cloud_grants()).await {
        Ok(Ok(g)) => c.set_grants(g.iter().map(note).collect()),
        Ok(Err(e)) => tracing::warn!("grants for the cloud: {e}"),
        Err(e) => tracing::warn!("grants for the cloud: {e}"),
    }
}

fn describe(g: &GrantNote) -> String {
    let until = crate::rfc3339(g.expires_at);
    let cams = g
        .cameras
        .as_ref()
        .map_or("all cameras".to_owned(), |c| c.join(", "));
    format!(
        "{} ({}): {} ({cams}) until {until}",
        g.technician,
        g.org,
        if g.scopes.is_empty() {
            "nothing".to_owned()
        } else {
            g.scopes.join(", ")
        }
    )
}

/// Why a grant the cloud quotes is not one this recorder holds, or `None`
/// when the quote is exact. `stored`: the grant with that id here and
/// whether it answers a request the cloud relayed.
pub(crate) fn judge_claim(
    claim: &GrantNote,
    stored: Option<(&crate::accounts::grants::Grant, bool)>,
    now: i64,
) -> Option<String> {
    let Some((g, from_cloud)) = stored else {
        return Some(format!(
            "the cloud claims grant {}, to {}, which this recorder never made",
            claim.id,
            describe(claim)
        ));
    };
    if !from_cloud {
        return Some(format!(
            "the cloud claims grant {}, to {}, but that grant was never reported to it",
            claim.id,
            describe(claim)
        ));
    }
    let actual = note(g);
    if !g.active(now) {
        let end = g.revoked_at.unwrap_or(g.expires_at);
        return Some(format!(
            "the cloud claims grant {}, to {}, is in force; it ended at {}",
            claim.id,
            describe(claim),
            crate::rfc3339(end)
        ));
    }
    // Scopes compare as sets, whatever their order in the message.
    let same = claim.technician == actual.technician
        && claim.org == actual.org
        && crate::accounts::grants::Scopes::from_names(&claim.scopes).names() == actual.scopes
        && claim.cameras == actual.cameras
        && claim.expires_at == actual.expires_at;
    (!same).then(|| {
        format!(
            "the cloud claims grant {} is to {}; this recorder made it to {}",
            claim.id,
            describe(claim),
            describe(&actual)
        )
    })
}

/// Checks the cloud's quotes of this site's grants against the store: a
/// quote that differs (a grant invented, widened, extended, or one that
/// ended, replayed) grants nothing, as nothing the cloud says does, and is
/// audited as `cloud_grant_refused` so the owner sees a cloud whose
/// records were changed. Then the recorder's own list goes out again.
pub(crate) async fn check_cloud_claims(
    st: AppState,
    mut rx: tokio::sync::mpsc::Receiver<Vec<GrantNote>>,
) {
    while let Some(claims) = rx.recv().await {
        let a = st.accounts.clone();
        let judged = tokio::task::spawn_blocking(move || {
            let now = candor_media::time::unix_secs();
            let mut out = Vec::new();
            for c in &claims {
                let id = i64::try_from(c.id).unwrap_or(-1);
                let g = a.grant(id)?;
                let from_cloud = a.grant_from_cloud(id)?;
                if let Some(why) = judge_claim(c, g.as_ref().map(|g| (g, from_cloud)), now) {
                    out.push(why);
                }
            }
            Ok::<_, crate::accounts::AccountError>(out)
        })
        .await;
        match judged {
            Ok(Ok(refused)) => {
                for why in refused {
                    tracing::warn!("{why}: refused");
                    st.audit(
                        None,
                        "cloud_grant_refused",
                        format!("{why}. It grants nothing; this recorder's own list was sent back"),
                    )
                    .await;
                }
            }
            Ok(Err(e)) => tracing::warn!("checking the cloud's grants: {e}"),
            Err(e) => tracing::warn!("checking the cloud's grants: {e}"),
        }
        report_grants(&st).await;
    }
}
