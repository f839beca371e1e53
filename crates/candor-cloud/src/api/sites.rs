//! Sites and their alarms: the list, one site, sharing requests,
//! unpairing, acknowledgements, and claiming a recorder's pairing code.

use super::*;
use crate::db::DbError;
use crate::{Cloud, link, now, site_row};
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use candor_wire::cloud::ClaimState;

pub(super) async fn sites(
    State(cloud): Cl,
    headers: HeaderMap,
) -> ApiResult<Json<candor_wire::cloud::SiteList>> {
    let me = me_from(&cloud, &headers).await?;
    let rows = cloud
        .db
        .query(
            "SELECT id, name, sharing, paired_at, online, since, status, label, remote FROM site \
             WHERE account = $1 ORDER BY name, id",
            vec![me.account.into()],
        )
        .await?;
    let list = rows
        .iter()
        .map(|r| site_row(r, &cloud.config))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(candor_wire::cloud::SiteList { sites: list }))
}

/// The site if it is this account's; 404 otherwise (not 403: whether
/// another owner's site exists is not this owner's business).
pub(super) async fn own_site(
    cloud: &Cloud,
    me: &Me,
    id: &str,
) -> ApiResult<candor_wire::cloud::Site> {
    let r = cloud
        .db
        .query_one(
            "SELECT id, name, sharing, paired_at, online, since, status, label, remote FROM site \
             WHERE id = $1 AND account = $2",
            vec![id.into(), me.account.clone().into()],
        )
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such site"))?;
    Ok(site_row(&r, &cloud.config)?)
}

pub(super) async fn site(
    State(cloud): Cl,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<candor_wire::cloud::Site>> {
    let me = me_from(&cloud, &headers).await?;
    Ok(Json(own_site(&cloud, &me, &id).await?))
}

pub(super) async fn unpair(
    State(cloud): Cl,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let me = me_csrf(&cloud, &headers).await?;
    own_site(&cloud, &me, &id).await?;
    link::unpair(&cloud, &id, &me.account).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SharingBody {
    sharing: candor_link::Sharing,
}

/// Only a request: the recorder's admin accepts it there, or not.
pub(super) async fn sharing(
    State(cloud): Cl,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(b): Json<SharingBody>,
) -> ApiResult<(StatusCode, Json<candor_wire::cloud::Said>)> {
    let me = me_csrf(&cloud, &headers).await?;
    own_site(&cloud, &me, &id).await?;
    let tx = cloud
        .online
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
        .map(|o| o.tx.clone());
    let Some(tx) = tx else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "offline",
            "the recorder is offline; change sharing on the recorder itself",
        ));
    };
    let _ = tx
        .send(candor_link::Message::SharingRequest { sharing: b.sharing })
        .await;
    Ok((
        StatusCode::ACCEPTED,
        Json(candor_wire::cloud::Said {
            message:
                "asked the recorder: an admin must accept it in the recorder's web app (Cloud page)"
                    .into(),
        }),
    ))
}

#[derive(serde::Deserialize)]
pub(super) struct AlarmQuery {
    site: Option<String>,
    limit: Option<i64>,
}

pub(super) async fn alarms(
    State(cloud): Cl,
    headers: HeaderMap,
    Query(q): Query<AlarmQuery>,
) -> ApiResult<Json<candor_wire::cloud::AlarmList>> {
    let me = me_from(&cloud, &headers).await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows = cloud
        .db
        .query(
            "SELECT a.site, s.name, a.id, a.at, a.late, a.camera, a.kind, a.acked_by, a.ack_recorded, a.received \
             FROM alarm a JOIN site s ON s.id = a.site \
             WHERE s.account = $1 AND (s.id = $2 OR $3 = '') \
             ORDER BY a.received DESC, a.id DESC LIMIT $4",
            vec![
                me.account.into(),
                q.site.clone().unwrap_or_default().into(),
                q.site.unwrap_or_default().into(),
                limit.into(),
            ],
        )
        .await?;
    let list = rows
        .iter()
        .map(|r| {
            Ok(candor_wire::cloud::Alarm {
                site: r.text(0)?,
                site_name: r.text(1)?,
                id: r.int(2)?,
                at: r.text(3)?,
                late: r.int(4)? != 0,
                camera: r.opt_text(5)?,
                kind: r.opt_text(6)?,
                acked_by: r.opt_text(7)?,
                ack_recorded: r.int(8)? != 0,
                received: crate::ts(r.int(9)?),
            })
        })
        .collect::<Result<Vec<_>, DbError>>()?;
    Ok(Json(candor_wire::cloud::AlarmList { alarms: list }))
}

pub(super) async fn ack(
    State(cloud): Cl,
    headers: HeaderMap,
    Path((site, alarm)): Path<(String, i64)>,
) -> ApiResult<StatusCode> {
    let me = me_csrf(&cloud, &headers).await?;
    own_site(&cloud, &me, &site).await?;
    let n = cloud
        .db
        .exec(
            "UPDATE alarm SET acked_by = $1, acked_at = $2 WHERE site = $3 AND id = $4 AND acked_by IS NULL",
            vec![
                me.email.clone().into(),
                now().into(),
                site.clone().into(),
                alarm.into(),
            ],
        )
        .await?;
    if n > 0 {
        let tx = cloud
            .online
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&site)
            .map(|o| o.tx.clone());
        if let Some(tx) = tx {
            // Offline: sent when the recorder reconnects.
            let _ = tx
                .send(candor_link::Message::Acknowledge {
                    alarm: alarm as u64,
                    by: me.email.clone(),
                })
                .await;
        }
        cloud.notify(
            &me.account,
            candor_wire::cloud::Notice::Ack {
                site: site.clone(),
                id: alarm,
                by: me.email.clone(),
            },
        );
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PairBody {
    code: String,
}

pub(super) async fn pair(
    State(cloud): Cl,
    headers: HeaderMap,
    Extension(PeerIp(ip)): Extension<PeerIp>,
    Json(b): Json<PairBody>,
) -> ApiResult<Json<candor_wire::cloud::Claim>> {
    let me = me_csrf(&cloud, &headers).await?;
    // Codes are guessable only by brute force: count misses like failed logins.
    let key = format!("pair:{}", me.account);
    let attempt = cloud
        .limiter
        .reserve(&candor_auth::Client::Untrusted { name: &key, ip })
        .map_err(|l| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "locked",
                format!("too many wrong codes; try again in {} s", l.secs),
            )
        })?;
    let Some((claim, name)) = link::claim(&cloud, &b.code, &me.account, &me.email) else {
        attempt.failed();
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "bad_code",
            "that code is unknown, expired or already used: start again on the recorder",
        ));
    };
    attempt.refund();
    Ok(Json(candor_wire::cloud::Claim {
        claim: claim.id,
        recorder: name,
        confirmation: claim.confirmation,
    }))
}

pub(super) async fn pair_state(
    State(cloud): Cl,
    headers: HeaderMap,
    Path(claim): Path<String>,
) -> ApiResult<Json<ClaimState>> {
    let me = me_from(&cloud, &headers).await?;
    let p = cloud.pairings.lock().unwrap_or_else(|e| e.into_inner());
    let c = p
        .values()
        .filter_map(|p| p.claim.as_ref())
        .find(|c| c.id == claim && c.account == me.account);
    Ok(Json(match c {
        Some(c) => match &c.site {
            Some(s) => ClaimState::Paired { site: s.clone() },
            None => ClaimState::Waiting {
                confirmation: c.confirmation.clone(),
            },
        },
        None => ClaimState::Gone,
    }))
}
