//! First-run setup, login (with the optional TOTP second factor), logout,
//! and the caller's own account.

use crate::accounts::{self, Role};
use crate::{ApiError, ApiResult, AppState, PeerIp, Via, auth, authorize, body};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::IntoResponse;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    token: String,
    username: String,
    password: String,
}

pub async fn setup(
    State(st): State<AppState>,
    b: Result<Json<SetupRequest>, JsonRejection>,
) -> ApiResult {
    let req = body(b)?;
    let accounts = st.accounts.clone();
    let username = req.username.clone();
    // argon2 takes tens of milliseconds: keep it off the async workers.
    tokio::task::spawn_blocking(move || {
        accounts.complete_setup(&req.token, &req.username, &req.password)
    })
    .await??;
    tracing::info!(user = %username, "first admin created through the setup token");
    let _ = st.accounts.audit(
        Some(&username),
        "user_created",
        "first admin, via setup token",
    );
    let body = serde_json::json!({ "username": username, "role": "admin" });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    username: String,
    password: String,
    /// A TOTP code or a recovery code, for users who turned TOTP on.
    totp: Option<String>,
}

pub async fn login(
    State(st): State<AppState>,
    peer: Option<axum::Extension<PeerIp>>,
    b: Result<Json<LoginRequest>, JsonRejection>,
) -> ApiResult {
    let req = body(b)?;
    let ip = peer_ip(peer);
    if req.username.len() > 64 || req.password.len() > 1024 {
        return Err(ApiError::bad_request(
            "invalid",
            "user name or password too long",
        ));
    }
    if let Some(secs) = st.limiter.locked(&req.username, ip) {
        let _ = st
            .accounts
            .audit(Some(&req.username), "login_locked", &format!("from {ip}"));
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "locked_out",
            format!("too many failed logins; try again in {secs} s"),
        )
        .into_response();
        r.headers_mut().insert(header::RETRY_AFTER, secs.into());
        return Ok(r);
    }
    let accounts = st.accounts.clone();
    let (user, password, code) = (req.username.clone(), req.password, req.totp);
    let outcome = tokio::task::spawn_blocking(
        move || -> Result<Result<(), &'static str>, accounts::AccountError> {
            if accounts.verify(&user, &password)?.is_none() {
                return Ok(Err("bad_credentials"));
            }
            if accounts.totp_enabled(&user)? {
                match code {
                    None => return Ok(Err("totp_required")),
                    Some(c) if !accounts.totp_check(&user, &c, now())? => {
                        return Ok(Err("bad_totp"));
                    }
                    Some(_) => {}
                }
            }
            Ok(Ok(()))
        },
    )
    .await??;
    match outcome {
        Ok(()) => {
            let (id, session) = st.accounts.create_session_from(&req.username, Some(ip))?;
            st.limiter.succeeded(&req.username);
            let _ = st
                .accounts
                .audit(Some(&req.username), "login", &format!("from {ip}"));
            let body = serde_json::json!({
                "username": session.username, "role": session.role.as_str(), "csrf_token": session.csrf,
            });
            let cookie = auth::set_cookie(&id, accounts::SESSION_SECS);
            Ok((StatusCode::OK, [(header::SET_COOKIE, cookie)], Json(body)).into_response())
        }
        // The password was right; ask for the second factor without counting a failure.
        Err("totp_required") => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "totp_required",
            "enter the 6-digit code from your authenticator app (or a recovery code)",
        )),
        Err(code) => {
            st.limiter.failed(&req.username, ip);
            let _ = st.accounts.audit(
                Some(&req.username),
                "login_failed",
                &format!("from {ip} ({code})"),
            );
            tracing::warn!(user = %req.username, %ip, "failed login ({code})");
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                code,
                if code == "bad_totp" {
                    "wrong or already used code"
                } else {
                    "wrong user name or password"
                },
            ))
        }
    }
}

pub async fn logout(State(st): State<AppState>, method: Method, headers: HeaderMap) -> ApiResult {
    let p = authorize(&st, &headers, &method, Role::Viewer)?;
    if let Via::Session { id, .. } = &p.via {
        st.accounts.end_session(id)?;
    }
    let _ = st.accounts.audit(Some(&p.username), "logout", "");
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, auth::set_cookie("", 0))],
    )
        .into_response())
}

pub async fn me(State(st): State<AppState>, method: Method, headers: HeaderMap) -> ApiResult {
    let p = authorize(&st, &headers, &method, Role::Viewer)?;
    let totp = st.accounts.totp_enabled(&p.username)?;
    // A page reloaded after login needs its CSRF token back; only our own
    // origin can read this answer.
    let csrf = match &p.via {
        Via::Session { id, .. } => st.accounts.session(id)?.map(|s| s.csrf),
        Via::Token { .. } => None,
    };
    Ok(Json(serde_json::json!({
        "username": p.username, "role": p.role.as_str(), "cameras": p.cameras, "totp": totp,
        "csrf_token": csrf, "session": p.session_row(),
    }))
    .into_response())
}

/// Second-factor changes need the person, not a script: a session.
fn session_only(p: &crate::Principal) -> Result<(), ApiError> {
    match p.via {
        Via::Session { .. } => Ok(()),
        Via::Token { .. } => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "session_required",
            "log in to change two-factor settings",
        )),
    }
}

pub async fn totp_begin(
    State(st): State<AppState>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult {
    let p = authorize(&st, &headers, &method, Role::Viewer)?;
    session_only(&p)?;
    let secret = st.accounts.totp_begin(&p.username)?;
    let uri = crate::totp::otpauth_uri(&secret, &p.username);
    // The QR code phones scan; rendered here so the page needs no library.
    let qr = qrcode::QrCode::new(uri.as_bytes())
        .map(|c| {
            c.render::<qrcode::render::svg::Color>()
                .min_dimensions(220, 220)
                .build()
        })
        .map_err(ApiError::internal)?;
    use base64::Engine as _;
    let qr = format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(qr)
    );
    Ok(Json(serde_json::json!({
        "secret": crate::totp::base32(&secret),
        "uri": uri,
        "qr": qr,
    }))
    .into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    code: String,
}

pub async fn totp_confirm(
    State(st): State<AppState>,
    method: Method,
    headers: HeaderMap,
    b: Result<Json<CodeRequest>, JsonRejection>,
) -> ApiResult {
    let p = authorize(&st, &headers, &method, Role::Viewer)?;
    session_only(&p)?;
    let req = body(b)?;
    let codes = st.accounts.totp_confirm(&p.username, &req.code, now())?;
    let _ = st.accounts.audit(Some(&p.username), "totp_enabled", "");
    Ok(Json(serde_json::json!({ "recovery_codes": codes })).into_response())
}

/// Guesses at a second factor or password from inside a session count like
/// failed logins: a stolen session cookie must not become a way to brute-force
/// the code that protects the account.
fn guard_guess(st: &AppState, user: &str, ip: std::net::IpAddr) -> Result<(), ApiError> {
    match st.limiter.locked(user, ip) {
        Some(secs) => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "locked_out",
            format!("too many wrong codes or passwords; try again in {secs} s"),
        )),
        None => Ok(()),
    }
}

fn peer_ip(peer: Option<axum::Extension<PeerIp>>) -> std::net::IpAddr {
    peer.map(|p| p.0.0)
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]))
}

/// The prologue of a change guarded by a secret the caller must know (a
/// TOTP code, the current password): a logged-in person, not a token, who
/// is not locked out for guessing.
fn secret_guarded(
    st: &AppState,
    headers: &HeaderMap,
    method: &Method,
    peer: Option<axum::Extension<PeerIp>>,
) -> Result<(crate::Principal, std::net::IpAddr), ApiError> {
    let p = authorize(st, headers, method, Role::Viewer)?;
    session_only(&p)?;
    let ip = peer_ip(peer);
    guard_guess(st, &p.username, ip)?;
    Ok((p, ip))
}

pub async fn totp_disable(
    State(st): State<AppState>,
    method: Method,
    headers: HeaderMap,
    peer: Option<axum::Extension<PeerIp>>,
    b: Result<Json<CodeRequest>, JsonRejection>,
) -> ApiResult {
    let (p, ip) = secret_guarded(&st, &headers, &method, peer)?;
    let req = body(b)?;
    if !st.accounts.totp_check(&p.username, &req.code, now())? {
        st.limiter.failed(&p.username, ip);
        return Err(ApiError::bad_request(
            "bad_code",
            "wrong or already used code",
        ));
    }
    st.accounts.totp_disable(&p.username)?;
    let _ = st.accounts.audit(Some(&p.username), "totp_disabled", "");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    current: String,
    new: String,
}

/// Changes the caller's own password (the current one is required). Every
/// session of the user ends (a thief's too); this browser gets a new one.
pub async fn change_password(
    State(st): State<AppState>,
    method: Method,
    headers: HeaderMap,
    peer: Option<axum::Extension<PeerIp>>,
    b: Result<Json<PasswordChange>, JsonRejection>,
) -> ApiResult {
    let (p, ip) = secret_guarded(&st, &headers, &method, peer)?;
    let req = body(b)?;
    if req.current.len() > 1024 || req.new.len() > 1024 {
        return Err(ApiError::bad_request("invalid", "password too long"));
    }
    let accounts = st.accounts.clone();
    let user = p.username.clone();
    let ok = tokio::task::spawn_blocking(move || -> Result<bool, accounts::AccountError> {
        if accounts.verify(&user, &req.current)?.is_none() {
            return Ok(false);
        }
        accounts.update_user(&user, None, None, Some(&req.new))?;
        Ok(true)
    })
    .await??;
    if !ok {
        st.limiter.failed(&p.username, ip);
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "bad_credentials",
            "the current password is wrong",
        ));
    }
    // update_user ended every session; give this browser a fresh one.
    let (id, session) = st.accounts.create_session_from(&p.username, Some(ip))?;
    let _ = st
        .accounts
        .audit(Some(&p.username), "password_changed", "by the user");
    let body = serde_json::json!({ "csrf_token": session.csrf });
    Ok((
        StatusCode::OK,
        [(
            header::SET_COOKIE,
            auth::set_cookie(&id, accounts::SESSION_SECS),
        )],
        Json(body),
    )
        .into_response())
}
