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
    cancel_technicians_install(&st, &g.technician).await;
    report_grants(&st).await;
    grant_notice(&st, AccessEvent::Ended, g.id).await;
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
                cancel_technicians_install(&st, &g.technician).await;
                grant_notice(&st, AccessEvent::Ended, g.id).await;
            }
            if any {
                report_grants(&st).await;
            }
        }
    }
}

/// An install a technician scheduled ends with their access.
async fn cancel_technicians_install(st: &AppState, technician: &str) {
    let u = st.footage.as_ref().and_then(|f| f.updates.clone());
    if let Some(u) = u
        && u.cancel_by(technician)
    {
        st.audit(
            Some(technician),
            "update_cancelled",
            "the install they scheduled: their access ended".into(),
        )
        .await;
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
            maintenance: r.scopes.iter().any(|s| s == "maintenance"),
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
/// technician asked, came in or left, for grants that answer the cloud's
/// requests (the others are not the cloud's business). The Access page and
/// the audit log say it too; this one only reaches an owner who is away.
pub(crate) fn notice(st: &AppState, event: AccessEvent, technician: &str, org: &str) {
    if let Some(c) = cloud(st) {
        c.notice(event, technician, org);
    }
}

/// [`notice`] for grant `id`, if it answers a request the cloud relayed.
pub(crate) async fn grant_notice(st: &AppState, event: AccessEvent, id: i64) {
    if cloud(st).is_none() {
        return;
    }
    let a = st.accounts.clone();
    let g = tokio::task::spawn_blocking(move || {
        Ok::<_, crate::accounts::AccountError>(if a.grant_from_cloud(id)? {
            a.grant(id)?
        } else {
            None
        })
    })
    .await;
    if let Ok(Ok(Some(g))) = g {
        notice(st, event, &g.technician, &g.org);
    }
}

/// Hands the link the grants the cloud may know of (in force, answering
/// its requests), numbered; the link sends them now and on each
/// connection, and the cloud's mirror follows.
pub(crate) async fn report_grants(st: &AppState) {
    let Some(c) = cloud(st) else { return };
    let a = st.accounts.clone();
    let made = tokio::task::spawn_blocking(move || {
        let (generation, grants) = a.grant_report()?;
        Ok::<_, crate::accounts::AccountError>(candor_recorder::cloud::GrantReport {
            generation,
            grants,
        })
    })
    .await;
    match made {
        Ok(Ok(r)) => c.set_grants(r),
        Ok(Err(e)) => tracing::warn!("grants for the cloud: {e}"),
        Err(e) => tracing::warn!("grants for the cloud: {e}"),
    }
}

fn describe(g: &GrantNote) -> String {
    format!(
        "{} ({}): {} until {}",
        g.technician,
        g.org,
        if g.scopes.is_empty() {
            "nothing".to_owned()
        } else {
            g.scopes.join(", ")
        },
        crate::rfc3339(g.expires_at)
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
            "grant {}, to {}, which this recorder never made",
            claim.id,
            describe(claim)
        ));
    };
    if !from_cloud {
        return Some(format!(
            "grant {}, to {}, which was never reported to the cloud",
            claim.id,
            describe(claim)
        ));
    }
    let actual = g.note();
    if !g.active(now) {
        let end = g.revoked_at.unwrap_or(g.expires_at);
        return Some(format!(
            "grant {}, to {}, as in force; it ended at {}",
            claim.id,
            describe(claim),
            crate::rfc3339(end)
        ));
    }
    // Scopes compare as sets, whatever their order in the message.
    let same = claim.technician == actual.technician
        && claim.org == actual.org
        && crate::accounts::grants::Scopes::from_names(&claim.scopes).names() == actual.scopes
        && claim.expires_at == actual.expires_at;
    (!same).then(|| {
        format!(
            "grant {} as to {}; this recorder made it to {}",
            claim.id,
            describe(claim),
            describe(&actual)
        )
    })
}

/// How a quote of the grants list relates to what this recorder sent.
#[derive(Debug, PartialEq)]
pub(crate) enum Quote {
    /// A list this recorder sent, as new as or newer than the newest the
    /// cloud confirmed: at most a mirror lagging behind a change.
    Genuine,
    /// A list this recorder sent, older than one the cloud confirmed
    /// storing: an old list (an old approval) played back.
    Replayed { stored: u64 },
    /// Not a list this recorder sent under that number.
    Altered,
    /// A number older than the lists kept: can't be judged (a cloud that
    /// missed hundreds of changes), only logged.
    TooOld,
}

pub(crate) fn quote_kind(
    claims: &[GrantNote],
    seen: &crate::accounts::grants::ReportsSeen,
    generation: u64,
) -> Quote {
    let (sent, newest_stored) = (seen.sent.as_deref(), seen.stored);
    if sent.is_none()
        && let Some((oldest, _)) = seen.kept
        && generation > 0
        && generation < oldest
    {
        return Quote::TooOld;
    }
    // The cloud keeps the list as rows: compare as sets, by id.
    let key = |l: &[GrantNote]| {
        let mut v: Vec<GrantNote> = l.to_vec();
        v.sort_by_key(|g| g.id);
        v
    };
    match sent {
        Some(s) if key(s) == key(claims) => match newest_stored {
            Some(n) if generation < n => Quote::Replayed { stored: n },
            _ => Quote::Genuine,
        },
        _ => Quote::Altered,
    }
}

/// Audit entries for refused cloud quotes, per day at most: a cloud that
/// reconnects without end can't fill the audit log (older entries would
/// be pruned first) or its disk.
const REFUSALS_PER_DAY: u32 = 50;
/// Claims described in one entry; the rest are counted.
const DESCRIBED: usize = 5;

/// Checks what the cloud says about this site's grants. Its quote of its
/// mirror is compared with the lists this recorder sent: a list it sent
/// (the cloud's mirror at worst lagging behind a change made while the
/// link was down) is fine; a list it sent but older than one the cloud
/// confirmed storing is a replay; anything else was altered. A replayed or
/// altered list's differences from the grants in force (a grant invented,
/// widened, extended, or one that ended) are refused, as nothing the cloud
/// says grants anything, and audited as one `cloud_grant_refused` entry,
/// so the owner sees a cloud whose records were changed. Then this
/// recorder's own list goes out again.
pub(crate) async fn check_cloud_claims(
    st: AppState,
    mut rx: tokio::sync::mpsc::Receiver<candor_recorder::cloud::CloudGrants>,
) {
    use candor_recorder::cloud::CloudGrants;
    let mut day = (0i64, 0u32);
    let mut last: Option<String> = None;
    while let Some(msg) = rx.recv().await {
        let report = match msg {
            CloudGrants::Stored(g, conn) => {
                let a = st.accounts.clone();
                let _ = tokio::task::spawn_blocking(move || a.grant_report_stored(g, conn)).await;
                continue;
            }
            CloudGrants::Claims(r, conn) => (r, conn),
        };
        let (report, conn) = report;
        let a = st.accounts.clone();
        let judged = tokio::task::spawn_blocking(move || {
            let now = candor_media::time::unix_secs();
            let seen_reports = a.grant_reports(report.generation, conn)?;
            let kind = quote_kind(&report.grants, &seen_reports, report.generation);
            let mut refused = Vec::new();
            let mut seen = std::collections::HashSet::new();
            if matches!(kind, Quote::Replayed { .. } | Quote::Altered) {
                for c in report.grants.iter().filter(|c| seen.insert(c.id)) {
                    let id = i64::try_from(c.id).unwrap_or(-1);
                    let g = a.grant(id)?;
                    let from_cloud = a.grant_from_cloud(id)?;
                    if let Some(why) = judge_claim(c, g.as_ref().map(|g| (g, from_cloud)), now) {
                        refused.push(why);
                    }
                }
            }
            Ok::<_, crate::accounts::AccountError>((kind, report.generation, refused))
        })
        .await;
        let (kind, generation, refused) = match judged {
            Ok(Ok(j)) => j,
            Ok(Err(e)) => {
                tracing::warn!("checking the cloud's grants: {e}");
                continue;
            }
            Err(e) => {
                tracing::warn!("checking the cloud's grants: {e}");
                continue;
            }
        };
        if !refused.is_empty() {
            let what = match kind {
                Quote::Replayed { stored } => format!(
                    "the cloud quoted an older list of grants (number {generation}; it had stored number {stored}): a replay"
                ),
                _ => format!(
                    "the cloud quoted a list of grants (number {generation}) that this recorder never sent: its records were changed"
                ),
            };
            let mut detail = format!(
                "{what}. Refused, as nothing the cloud says grants anything: it claims {}",
                refused
                    .iter()
                    .take(DESCRIBED)
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            if refused.len() > DESCRIBED {
                detail += &format!("; and {} more", refused.len() - DESCRIBED);
            }
            detail += ". This recorder's own list was sent back";
            let today = candor_media::time::unix_secs() / 86_400;
            if day.0 != today {
                day = (today, 0);
            }
            tracing::warn!("{detail}");
            // The same refusal again (a cloud reconnecting) is one entry.
            if last.as_deref() != Some(detail.as_str()) && day.1 <= REFUSALS_PER_DAY {
                day.1 += 1;
                if day.1 > REFUSALS_PER_DAY {
                    st.audit(
                        None,
                        "cloud_grant_refused",
                        format!("{REFUSALS_PER_DAY} refusals of the cloud's grants today: further ones until midnight UTC are in the log only"),
                    )
                    .await;
                } else {
                    st.audit(None, "cloud_grant_refused", detail.clone()).await;
                }
                last = Some(detail);
            }
        } else {
            match kind {
                Quote::TooOld => tracing::warn!(
                    "the cloud's list of grants is number {generation}, older than any this recorder keeps: not judged; it gets the current one"
                ),
                _ => tracing::info!(
                    "the cloud's list of grants (number {generation}) is one this recorder sent"
                ),
            }
        }
        report_grants(&st).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(id: u64, until: i64) -> GrantNote {
        GrantNote {
            id,
            technician: "bob@acme".into(),
            org: "ACME".into(),
            scopes: vec!["config".into()],
            expires_at: until,
        }
    }

    #[test]
    fn a_quote_is_genuine_only_as_a_list_sent_no_older_than_the_cloud_confirmed() {
        use crate::accounts::grants::ReportsSeen;
        let sent = vec![n(1, 100), n(2, 200)];
        let seen = |sent: Option<&Vec<GrantNote>>, stored| ReportsSeen {
            sent: sent.cloned(),
            stored,
            kept: Some((3, 9)),
        };
        // Rows come back in any order.
        let rows = vec![n(2, 200), n(1, 100)];
        assert_eq!(
            quote_kind(&rows, &seen(Some(&sent), Some(5)), 5),
            Quote::Genuine
        );
        // Sent but not yet confirmed (the cloud stored it, the answer was lost).
        assert_eq!(
            quote_kind(&rows, &seen(Some(&sent), Some(5)), 6),
            Quote::Genuine
        );
        assert_eq!(
            quote_kind(&rows, &seen(Some(&sent), None), 5),
            Quote::Genuine
        );
        // An older list than one the cloud confirmed: played back.
        assert_eq!(
            quote_kind(&rows, &seen(Some(&sent), Some(5)), 4),
            Quote::Replayed { stored: 5 }
        );
        // Changed: extended, added, dropped, or a number never sent.
        for bad in [
            vec![n(1, 999), n(2, 200)],
            vec![n(1, 100), n(2, 200), n(3, 1)],
            vec![n(1, 100)],
        ] {
            assert_eq!(
                quote_kind(&bad, &seen(Some(&sent), Some(5)), 5),
                Quote::Altered
            );
        }
        assert_eq!(quote_kind(&rows, &seen(None, Some(5)), 10), Quote::Altered);
        assert_eq!(quote_kind(&rows, &seen(None, Some(5)), 0), Quote::Altered);
        // Older than anything kept: not judged.
        assert_eq!(quote_kind(&rows, &seen(None, Some(5)), 2), Quote::TooOld);
    }
}
