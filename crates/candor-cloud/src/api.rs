//! The owners' HTTP API and WebSocket, under `/api`.
//!
//! Sessions as on the recorder: a random id in an `HttpOnly; Secure;
//! SameSite=Strict` cookie (only its SHA-256 is stored), a CSRF token in
//! `X-CSRF-Token` on every state-changing request, failed logins limited per
//! address and per account. Every query that reads a site names the
//! session's account: one owner never sees another's sites.

use crate::db::{DbError, Val};
use crate::{Cloud, link, now, site_row_json};
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::sync::Arc;

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
            Json(serde_json::json!({"code": self.1, "message": self.2})),
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
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
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

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: String,
    password: String,
    #[serde(default)]
    code: Option<String>,
}

fn valid_email(e: &str) -> bool {
    e.len() <= 128
        && e.split_once('@')
            .is_some_and(|(u, d)| !u.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Sign-up answers the same whether or not the address has an account
/// (201, the same body, the same argon2 work), so it does not tell a
/// stranger who has one; an existing account is left as it was. Sign-ups
/// count per address like failed sign-ins, which bounds guessing through
/// sign-up followed by sign-in.
async fn register(
    State(cloud): Cl,
    Extension(PeerIp(ip)): Extension<PeerIp>,
    Json(c): Json<Credentials>,
) -> ApiResult<Response> {
    let email = c.email.trim().to_lowercase();
    if !valid_email(&email) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_email",
            "enter an e-mail address like name@example.com",
        ));
    }
    if c.password.chars().count() < 10 || c.password.len() > 1024 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "weak_password",
            "use a password of at least 10 characters",
        ));
    }
    let ip_s = ip.to_string();
    cloud
        .limiter
        .reserve(&candor_auth::Client::Key(&format!(
            "sign-up:{}",
            ip.to_canonical()
        )))
        .map_err(|l| ApiError::locked(l.secs))?
        .failed();
    let _slot = cloud.hashing.enter().await.ok_or_else(ApiError::busy)?;
    let hash = tokio::task::spawn_blocking(move || candor_auth::hash_password(&c.password))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e))?;
    let n = cloud
        .db
        .exec(
            "INSERT INTO account (id, email, password, created) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (email) DO NOTHING",
            vec![
                link::new_id().into(),
                email.clone().into(),
                hash.into(),
                now().into(),
            ],
        )
        .await?;
    tracing::info!(from = %ip_s, created = n > 0, "sign-up");
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"email": email})),
    )
        .into_response())
}

async fn login(
    State(cloud): Cl,
    Extension(PeerIp(ip)): Extension<PeerIp>,
    headers: HeaderMap,
    Json(c): Json<Credentials>,
) -> ApiResult<Response> {
    let email = c.email.trim().to_lowercase();
    if email.len() > 128 || c.password.len() > 1024 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "too_long",
            "e-mail or password too long",
        ));
    }
    // Known browsers count on their own (OWASP device cookie); the attempt
    // is reserved before the password is checked.
    let device_cookie = candor_auth::cookie(&headers, DEVICE_COOKIE);
    let device = device_cookie
        .as_deref()
        .and_then(|v| cloud.device_key.check(&email, v));
    let client = match device {
        Some(id) => candor_auth::Client::Device { id },
        None => candor_auth::Client::Untrusted { name: &email, ip },
    };
    let attempt = cloud
        .limiter
        .reserve(&client)
        .map_err(|l| ApiError::locked(l.secs))?;
    let Some(slot) = cloud.hashing.enter().await else {
        attempt.refund();
        return Err(ApiError::busy());
    };
    let row = cloud
        .db
        .query_one(
            "SELECT id, password, totp_secret FROM account WHERE email = $1",
            vec![email.clone().into()],
        )
        .await?;
    let (account, phc, totp) = match &row {
        Some(r) => (r.text(0)?, r.text(1)?, r.opt_bytes(2)?),
        // Same work for an unknown e-mail, so timing doesn't tell.
        None => (String::new(), String::new(), None),
    };
    let password = c.password.clone();
    let ok = tokio::task::spawn_blocking(move || {
        if phc.is_empty() {
            let _ = candor_auth::hash_password(&password);
            false
        } else {
            candor_auth::verify_password(&password, &phc)
        }
    })
    .await
    .unwrap_or(false);
    drop(slot);
    if !ok {
        attempt.failed();
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
            "wrong e-mail or password",
        ));
    }
    if let Some(secret) = totp {
        let Some(code) = c.code.as_deref().filter(|c| !c.is_empty()) else {
            attempt.refund();
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "totp_required",
                "enter the 6-digit code from your authenticator app",
            ));
        };
        if !spend_totp(&cloud, &account, &secret, code).await? {
            attempt.failed();
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_code",
                "wrong or already used code",
            ));
        }
    }
    attempt.succeeded();
    let id = link::new_id() + &link::new_id();
    let csrf = link::new_id();
    cloud
        .db
        .exec(
            "INSERT INTO session (id, account, csrf, expires) VALUES ($1, $2, $3, $4)",
            vec![
                hash(&id).into(),
                account.into(),
                csrf.clone().into(),
                (now() + SESSION_SECS).into(),
            ],
        )
        .await?;
    let mut r = (
        [(
            header::SET_COOKIE,
            format!(
                "{COOKIE}={id}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={SESSION_SECS}"
            ),
        )],
        Json(serde_json::json!({"email": email, "csrf": csrf})),
    )
        .into_response();
    if device.is_none() {
        let v = format!(
            "{DEVICE_COOKIE}={}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={}",
            cloud.device_key.issue(&email),
            365 * 24 * 3600
        );
        if let Ok(v) = axum::http::HeaderValue::from_str(&v) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(r)
}

/// Checks a TOTP code and spends its time step in one conditional update,
/// so two sign-ins racing with the same code cannot both pass.
async fn spend_totp(cloud: &Cloud, account: &str, secret: &[u8], code: &str) -> ApiResult<bool> {
    let Some(step) = candor_auth::totp::verify(secret, code, now()) else {
        return Ok(false);
    };
    let n = cloud
        .db
        .exec(
            "UPDATE account SET totp_last_step = $1 WHERE id = $2 \
             AND (totp_last_step IS NULL OR totp_last_step < $1)",
            vec![step.into(), account.into()],
        )
        .await?;
    Ok(n == 1)
}

async fn logout(State(cloud): Cl, headers: HeaderMap) -> ApiResult<Response> {
    me_csrf(&cloud, &headers).await?;
    if let Some(id) = cookie_value(&headers) {
        cloud
            .db
            .exec("DELETE FROM session WHERE id = $1", vec![hash(&id).into()])
            .await?;
    }
    Ok((
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0"),
        )],
        StatusCode::NO_CONTENT,
    )
        .into_response())
}

async fn me(State(cloud): Cl, headers: HeaderMap) -> ApiResult<Json<serde_json::Value>> {
    let me = me_from(&cloud, &headers).await?;
    let totp = cloud
        .db
        .query_one(
            "SELECT totp_secret FROM account WHERE id = $1",
            vec![me.account.into()],
        )
        .await?
        .map(|r| r.opt_bytes(0))
        .transpose()?
        .flatten()
        .is_some();
    Ok(Json(
        serde_json::json!({"email": me.email, "csrf": me.csrf, "totp": totp}),
    ))
}

/// A fresh secret, kept pending (in the session's memory: here, the
/// response) until a code from it is confirmed.
async fn totp_begin(State(cloud): Cl, headers: HeaderMap) -> ApiResult<Json<serde_json::Value>> {
    let me = me_csrf(&cloud, &headers).await?;
    let secret: [u8; 20] = rand::random();
    let b32 = candor_auth::totp::base32(&secret);
    Ok(Json(serde_json::json!({
        "secret": b32,
        "uri": format!("otpauth://totp/Candor%20Cloud:{}?secret={b32}&issuer=Candor%20Cloud", me.email),
    })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TotpConfirm {
    secret: String,
    code: String,
    /// With TOTP already on: a code from the current secret. Replacing a
    /// second factor needs the one it replaces (a stolen session must not
    /// move the account to the thief's phone).
    #[serde(default)]
    current: Option<String>,
}

async fn totp_confirm(
    State(cloud): Cl,
    headers: HeaderMap,
    Json(t): Json<TotpConfirm>,
) -> ApiResult<StatusCode> {
    let me = me_csrf(&cloud, &headers).await?;
    let enabled = cloud
        .db
        .query_one(
            "SELECT totp_secret FROM account WHERE id = $1",
            vec![me.account.clone().into()],
        )
        .await?
        .map(|r| r.opt_bytes(0))
        .transpose()?
        .flatten();
    if let Some(old) = enabled {
        let key = format!("totp:{}", me.account);
        let attempt = cloud
            .limiter
            .reserve(&candor_auth::Client::Key(&key))
            .map_err(|l| ApiError::locked(l.secs))?;
        let current = t.current.as_deref().unwrap_or("");
        if !spend_totp(&cloud, &me.account, &old, current).await? {
            attempt.failed();
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "code_required",
                "two-factor authentication is on: enter a current code to replace it",
            ));
        }
        attempt.refund();
    }
    let secret = base32_decode(&t.secret).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_secret",
            "the secret is not base32",
        )
    })?;
    let step = candor_auth::totp::verify(&secret, &t.code, now()).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_code",
            "that code does not match; check the phone's clock and try the next one",
        )
    })?;
    cloud
        .db
        .exec(
            "UPDATE account SET totp_secret = $1, totp_last_step = $2 WHERE id = $3",
            vec![Val::Bytes(secret), step.into(), me.account.into()],
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current: String,
    new: String,
}

/// Checks the signed-in account's password, counted per account (the
/// session already says who is asking).
async fn check_password(cloud: &Cloud, me: &Me, password: &str) -> ApiResult<()> {
    let attempt = cloud
        .limiter
        .reserve(&candor_auth::Client::Key(&format!(
            "password:{}",
            me.account
        )))
        .map_err(|l| ApiError::locked(l.secs))?;
    let Some(_slot) = cloud.hashing.enter().await else {
        attempt.refund();
        return Err(ApiError::busy());
    };
    let phc = cloud
        .db
        .query_one(
            "SELECT password FROM account WHERE id = $1",
            vec![me.account.clone().into()],
        )
        .await?
        .map(|r| r.text(0))
        .transpose()?
        .unwrap_or_default();
    let pw = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || candor_auth::verify_password(&pw, &phc))
        .await
        .unwrap_or(false);
    if !ok {
        attempt.failed();
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "bad_credentials",
            "the current password is wrong",
        ));
    }
    attempt.refund();
    Ok(())
}

/// Changes the password (the current one is required); every other
/// session of the account ends.
async fn change_password(
    State(cloud): Cl,
    headers: HeaderMap,
    Json(b): Json<PasswordChange>,
) -> ApiResult<StatusCode> {
    let me = me_csrf(&cloud, &headers).await?;
    if b.new.chars().count() < 10 || b.new.len() > 1024 || b.current.len() > 1024 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "weak_password",
            "use a password of at least 10 characters",
        ));
    }
    check_password(&cloud, &me, &b.current).await?;
    let _slot = cloud.hashing.enter().await.ok_or_else(ApiError::busy)?;
    let phc = tokio::task::spawn_blocking(move || candor_auth::hash_password(&b.new))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e))?;
    cloud
        .db
        .exec(
            "UPDATE account SET password = $1 WHERE id = $2",
            vec![phc.into(), me.account.clone().into()],
        )
        .await?;
    let this = cookie_value(&headers).map(|c| hash(&c)).unwrap_or_default();
    cloud
        .db
        .exec(
            "DELETE FROM session WHERE account = $1 AND id != $2",
            vec![me.account.into(), this.into()],
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteAccount {
    password: String,
}

/// Deletes the account with everything it holds: its sites are unpaired
/// (their keys refused from now on), alarms, push subscriptions, sessions.
async fn delete_account(
    State(cloud): Cl,
    headers: HeaderMap,
    Json(b): Json<DeleteAccount>,
) -> ApiResult<Response> {
    let me = me_csrf(&cloud, &headers).await?;
    check_password(&cloud, &me, &b.password).await?;
    let sites = cloud
        .db
        .query(
            "SELECT id FROM site WHERE account = $1",
            vec![me.account.clone().into()],
        )
        .await?;
    for r in sites {
        link::unpair(&cloud, &r.text(0)?, &me.account).await?;
    }
    for sql in [
        "DELETE FROM push_sub WHERE account = $1",
        "DELETE FROM session WHERE account = $1",
        "DELETE FROM account WHERE id = $1",
    ] {
        cloud.db.exec(sql, vec![me.account.clone().into()]).await?;
    }
    tracing::info!("account deleted");
    Ok((
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0"),
        )],
    )
        .into_response())
}

fn base32_decode(s: &str) -> Option<Vec<u8>> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut acc, mut bits, mut out) = (0u64, 0u32, Vec::new());
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = A.iter().position(|&a| a == c.to_ascii_uppercase())? as u64;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    (out.len() >= 10 && out.len() <= 64).then_some(out)
}

async fn sites(State(cloud): Cl, headers: HeaderMap) -> ApiResult<Json<serde_json::Value>> {
    let me = me_from(&cloud, &headers).await?;
    let rows = cloud
        .db
        .query(
            "SELECT id, name, sharing, paired_at, online, since, status FROM site \
             WHERE account = $1 ORDER BY name, id",
            vec![me.account.into()],
        )
        .await?;
    let list = rows
        .iter()
        .map(site_row_json)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(serde_json::json!({ "sites": list })))
}

/// The site if it is this account's; 404 otherwise (not 403: whether
/// another owner's site exists is not this owner's business).
async fn own_site(cloud: &Cloud, me: &Me, id: &str) -> ApiResult<serde_json::Value> {
    let r = cloud
        .db
        .query_one(
            "SELECT id, name, sharing, paired_at, online, since, status FROM site \
             WHERE id = $1 AND account = $2",
            vec![id.into(), me.account.clone().into()],
        )
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such site"))?;
    Ok(site_row_json(&r)?)
}

async fn site(
    State(cloud): Cl,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let me = me_from(&cloud, &headers).await?;
    Ok(Json(own_site(&cloud, &me, &id).await?))
}

async fn unpair(
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
struct SharingBody {
    sharing: candor_link::Sharing,
}

/// Only a request: the recorder's admin accepts it there, or not.
async fn sharing(
    State(cloud): Cl,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(b): Json<SharingBody>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
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
        Json(
            serde_json::json!({"message": "asked the recorder: an admin must accept it in the recorder's web app (Cloud page)"}),
        ),
    ))
}

#[derive(serde::Deserialize)]
struct AlarmQuery {
    site: Option<String>,
    limit: Option<i64>,
}

async fn alarms(
    State(cloud): Cl,
    headers: HeaderMap,
    Query(q): Query<AlarmQuery>,
) -> ApiResult<Json<serde_json::Value>> {
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
            Ok(serde_json::json!({
                "site": r.text(0)?, "site_name": r.text(1)?, "id": r.int(2)?, "at": r.text(3)?,
                "late": r.int(4)? != 0, "camera": r.opt_text(5)?, "kind": r.opt_text(6)?,
                "acked_by": r.opt_text(7)?, "ack_recorded": r.int(8)? != 0,
                "received": crate::ts(r.int(9)?),
            }))
        })
        .collect::<Result<Vec<_>, DbError>>()?;
    Ok(Json(serde_json::json!({ "alarms": list })))
}

async fn ack(
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
            serde_json::json!({"type": "ack", "site": site, "id": alarm, "by": me.email}),
        );
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PairBody {
    code: String,
}

async fn pair(
    State(cloud): Cl,
    headers: HeaderMap,
    Extension(PeerIp(ip)): Extension<PeerIp>,
    Json(b): Json<PairBody>,
) -> ApiResult<Json<serde_json::Value>> {
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
    Ok(Json(serde_json::json!({
        "claim": claim.id,
        "recorder": name,
        "confirmation": claim.confirmation,
    })))
}

async fn pair_state(
    State(cloud): Cl,
    headers: HeaderMap,
    Path(claim): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let me = me_from(&cloud, &headers).await?;
    let p = cloud.pairings.lock().unwrap_or_else(|e| e.into_inner());
    let c = p
        .values()
        .filter_map(|p| p.claim.as_ref())
        .find(|c| c.id == claim && c.account == me.account);
    Ok(Json(match c {
        Some(c) => match &c.site {
            Some(s) => serde_json::json!({"state": "paired", "site": s}),
            None => serde_json::json!({"state": "waiting", "confirmation": c.confirmation}),
        },
        None => serde_json::json!({"state": "gone"}),
    }))
}

async fn push_key(State(cloud): Cl) -> Json<serde_json::Value> {
    Json(serde_json::json!({"key": cloud.push.public_key()}))
}

async fn push_subscribe(
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
struct Endpoint {
    endpoint: String,
}

async fn push_unsubscribe(
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
async fn ws(
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

async fn ws_loop(
    mut s: WebSocket,
    mut rx: tokio::sync::broadcast::Receiver<crate::Notice>,
    account: String,
) {
    loop {
        tokio::select! {
            n = rx.recv() => match n {
                Ok(n) if n.account == account => {
                    if s.send(WsMessage::Text(n.json.to_string().into())).await.is_err() {
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
