//! Live updates: Web Push subscriptions and the app's WebSocket.

use super::*;
use crate::now;
use axum::Json;
use axum::extract::State;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

pub(super) async fn push_key(State(cloud): Cl) -> Json<serde_json::Value> {
    Json(serde_json::json!({"key": cloud.push.public_key()}))
}

pub(super) async fn push_subscribe(
    State(cloud): Cl,
    headers: HeaderMap,
    Json(s): Json<crate::push::Subscription>,
) -> ApiResult<StatusCode> {
    let me = me_csrf(&cloud, &headers).await?;
    s.validate()
        .map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, "bad_subscription", m))?;
    // The endpoint must be a push service on the internet (or one the
    // operator listed), never an address inside the cloud's network.
    let uri: http::Uri = s.endpoint.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_subscription",
            "endpoint is not a URL",
        )
    })?;
    let host = uri.host().unwrap_or("").trim_matches(['[', ']']).to_owned();
    crate::push::PublicOnly::resolve(
        &cloud.config.push_allow_hosts,
        &host,
        uri.port_u16().unwrap_or(443),
    )
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "endpoint_not_public",
            e.to_string(),
        )
    })?;
    let owner = cloud
        .db
        .query_one(
            "SELECT account FROM push_sub WHERE endpoint = $1",
            vec![s.endpoint.clone().into()],
        )
        .await?
        .map(|r| r.text(0))
        .transpose()?;
    match owner {
        Some(a) if a != me.account => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "endpoint_taken",
                "this push endpoint belongs to another account",
            ));
        }
        Some(_) => {
            cloud
                .db
                .exec(
                    "DELETE FROM push_sub WHERE endpoint = $1 AND account = $2",
                    vec![s.endpoint.clone().into(), me.account.clone().into()],
                )
                .await?;
        }
        None => {}
    }
    let count = cloud
        .db
        .query_one(
            "SELECT COUNT(*) FROM push_sub WHERE account = $1",
            vec![me.account.clone().into()],
        )
        .await?
        .map(|r| r.int(0))
        .transpose()?
        .unwrap_or(0);
    if count >= crate::push::MAX_SUBSCRIPTIONS {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "too_many_devices",
            format!(
                "at most {} devices receive alarms; turn notifications off on one first",
                crate::push::MAX_SUBSCRIPTIONS
            ),
        ));
    }
    cloud
        .db
        .exec(
            "INSERT INTO push_sub (endpoint, account, p256dh, auth, created) VALUES ($1, $2, $3, $4, $5)",
            vec![
                s.endpoint.into(),
                me.account.into(),
                s.keys.p256dh.into(),
                s.keys.auth.into(),
                now().into(),
            ],
        )
        .await?;
    Ok(StatusCode::CREATED)
}

#[derive(serde::Deserialize)]
pub(super) struct Endpoint {
    endpoint: String,
}

pub(super) async fn push_unsubscribe(
    State(cloud): Cl,
    headers: HeaderMap,
    Json(e): Json<Endpoint>,
) -> ApiResult<StatusCode> {
    let me = me_csrf(&cloud, &headers).await?;
    cloud
        .db
        .exec(
            "DELETE FROM push_sub WHERE endpoint = $1 AND account = $2",
            vec![e.endpoint.into(), me.account.into()],
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Site changes and alarms of this account, as they happen. The cookie is
/// SameSite=Strict and the Origin must be this host, so another site's page
/// can't open it with the owner's session.
pub(super) async fn ws(
    State(cloud): Cl,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let me = me_from(&cloud, &headers).await?;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok());
    if let (Some(o), Some(h)) = (origin, host)
        && o != format!("https://{h}")
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "origin",
            "cross-origin WebSocket refused",
        ));
    }
    let rx = cloud.notices.subscribe();
    Ok(upgrade.on_upgrade(move |s| ws_loop(s, rx, me.account)))
}

pub(super) async fn ws_loop(
    mut s: WebSocket,
    mut rx: tokio::sync::broadcast::Receiver<crate::Notice>,
    account: String,
) {
    loop {
        tokio::select! {
            n = rx.recv() => match n {
                Ok(n) if n.account == account => {
                    if s.send(WsMessage::Text(n.json.clone())).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Tell the app to reload its lists rather than miss something.
                    if s.send(WsMessage::Text(r#"{"type":"resync"}"#.into())).await.is_err() {
                        return;
                    }
                }
                Err(_) => return,
            },
            m = s.recv() => match m {
                Some(Ok(_)) => {}
                _ => return,
            },
        }
    }
}
