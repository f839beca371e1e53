//! The owners' HTTP API and WebSocket, under `/api`.
//!
//! Sessions as on the recorder: a random id in an `HttpOnly; Secure;
//! SameSite=Strict` cookie (only its SHA-256 is stored), a CSRF token in
//! `X-CSRF-Token` on every state-changing request, failed logins limited per
//! address and per account. Every query that reads a site names the
//! session's account: one owner never sees another's sites.

use crate::db::DbError;
use crate::{Cloud, now};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::sync::Arc;

mod account;
mod orgs;
mod push;
mod sites;
use account::*;
use orgs::*;
use push::*;
use sites::*;

#[derive(Clone, Copy)]
pub struct PeerIp(pub IpAddr);

/// `__Host-`: set only by this origin over HTTPS, never shadowed by a sibling host.
const COOKIE: &str = "__Host-candor_cloud";
const DEVICE_COOKIE: &str = "__Host-candor_cloud_device";
const SESSION_SECS: i64 = 30 * 24 * 3600;

pub struct ApiError(StatusCode, &'static str, String);

impl ApiError {
    fn new(s: StatusCode, code: &'static str, m: impl Into<String>) -> ApiError {
        ApiError(s, code, m.into())
    }
    fn locked(secs: u64) -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "locked",
            format!("too many failed attempts; try again in {secs} s"),
        )
    }
    fn busy() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many sign-ins at once; try again in a second",
        )
    }
}

/// Reads request bodies whole, within a time limit, before any handler
/// (see [`candor_auth::conn::read_body`]): slow bodies end the request.
pub async fn read_body_within(
    limit: std::time::Duration,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use candor_auth::conn::BodyError;
    if req.method() == axum::http::Method::GET || req.method() == axum::http::Method::HEAD {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    match candor_auth::conn::read_body(body, MAX_BODY, limit).await {
        Ok(b) => {
            next.run(axum::extract::Request::from_parts(parts, b.into()))
                .await
        }
        Err(BodyError::TooLarge) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("request bodies are at most {MAX_BODY} bytes"),
        )
        .into_response(),
        Err(BodyError::Slow) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "slow_body",
            "the request body came too slowly",
        )
        .into_response(),
    }
}

/// Request bodies are small JSON documents.
const MAX_BODY: usize = 16 * 1024;

impl From<DbError> for ApiError {
    fn from(e: DbError) -> ApiError {
        tracing::error!("database: {e}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the cloud's database failed; try again",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(candor_wire::Error {
                code: self.1.into(),
                message: self.2,
            }),
        )
            .into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;
type Cl = State<Arc<Cloud>>;

pub fn router(cloud: Arc<Cloud>) -> Router {
    Router::new()
        .route(
            "/api/health",
            get(|| async {
                Json(candor_wire::Health {
                    status: "ok".into(),
                    version: candor_wire::version().into(),
                })
            }),
        )
        .route("/api/accounts", post(register))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/totp/begin", post(totp_begin))
        .route("/api/totp/confirm", post(totp_confirm))
        .route("/api/password", post(change_password))
        .route("/api/account", axum::routing::delete(delete_account))
        .route("/api/sites", get(sites))
        .route("/api/sites/{id}", get(site).delete(unpair))
        .route("/api/sites/{id}/sharing", put(sharing))
        .route(
            "/api/sites/{id}/link",
            get(site_link_state)
                .post(link_site)
                .put(link_level)
                .delete(unlink_site),
        )
        .route("/api/sites/{id}/link-code", post(site_code))
        .route("/api/orgs", get(orgs).post(create_org))
        .route("/api/orgs/join", post(join))
        .route("/api/orgs/{org}/members", get(members))
        .route("/api/orgs/{org}/invites", get(invites).post(invite))
        .route(
            "/api/orgs/{org}/invites/{id}",
            axum::routing::delete(revoke_invite),
        )
        .route("/api/orgs/{org}/membership", axum::routing::delete(leave))
        .route(
            "/api/orgs/{org}/members/{email}",
            axum::routing::delete(remove_member),
        )
        .route("/api/orgs/{org}/codes", post(org_code))
        .route("/api/orgs/{org}/link", post(org_link))
        .route("/api/orgs/{org}/fleet", get(fleet))
        .route(
            "/api/orgs/{org}/sites/{site}/access-requests",
            post(request_access),
        )
        .route("/api/sites/{id}/alarms/{alarm}/ack", post(ack))
        .route("/api/alarms", get(alarms))
        .route("/api/pair", post(pair))
        .route("/api/pair/{claim}", get(pair_state))
        .route(
            "/api/push",
            get(push_key).post(push_subscribe).delete(push_unsubscribe),
        )
        .route("/api/ws", get(ws))
        .merge(crate::ui::router())
        .layer(axum::middleware::map_response(headers))
        .with_state(cloud)
}

async fn headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    for (k, v) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        (
            "content-security-policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
        ),
        ("strict-transport-security", "max-age=31536000"),
    ] {
        h.entry(k)
            .or_insert(axum::http::HeaderValue::from_static(v));
    }
    r
}

fn hash(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    candor_auth::cookie(headers, COOKIE)
}

/// The signed-in account.
struct Me {
    account: String,
    email: String,
    csrf: String,
}

async fn me_from(cloud: &Cloud, headers: &HeaderMap) -> ApiResult<Me> {
    let unauth = || ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "sign in first");
    let id = cookie_value(headers).ok_or_else(unauth)?;
    let r = cloud
        .db
        .query_one(
            "SELECT s.account, a.email, s.csrf FROM session s JOIN account a ON a.id = s.account \
             WHERE s.id = $1 AND s.expires > $2",
            vec![hash(&id).into(), now().into()],
        )
        .await?
        .ok_or_else(unauth)?;
    Ok(Me {
        account: r.text(0)?,
        email: r.text(1)?,
        csrf: r.text(2)?,
    })
}

/// For state-changing requests: the session and its CSRF token.
async fn me_csrf(cloud: &Cloud, headers: &HeaderMap) -> ApiResult<Me> {
    let me = me_from(cloud, headers).await?;
    let sent = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !candor_auth::same(sent, &me.csrf) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "missing or wrong X-CSRF-Token; reload the app",
        ));
    }
    Ok(me)
}
