//! First-run setup, login (with the optional TOTP second factor), logout,
//! and the caller's own account.

use crate::accounts;
use crate::{ApiError, ApiResult, AppState, Caller, PeerIp, Via, auth, body};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;

use candor_media::time::unix_secs as now;

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
    if req.password.len() > 1024 || req.token.len() > 128 {
        return Err(ApiError::bad_request(
            "invalid",
            "password or token too long",
        ));
    }
    // Nothing to hash once setup is closed or with a wrong token: a flood
    // of setup requests must not occupy the hashing gate logins need.
    if st.accounts.user_count()? > 0 {
        return Err(accounts::AccountError::SetupClosed.into());
    }
    if !st.accounts.setup_token_valid(&req.token)? {
        return Err(accounts::AccountError::BadToken.into());
    }
    let _slot = hash_slot(&st).await?;
    let accounts = st.accounts.clone();
    let username = req.username.clone();
    // argon2 takes tens of milliseconds: keep it off the async workers.
    tokio::task::spawn_blocking(move || {
        accounts.complete_setup(&req.token, &req.username, &req.password)
    })
    .await??;
    tracing::info!(user = %username, "first admin created through the setup token");
    st.audit(
        Some(&username),
        "user_created",
        "first admin, via setup token".into(),
    )
    .await;
    let body = candor_wire::SignedIn {
        username,
        role: "admin".into(),
        csrf_token: None,
    };
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

/// A slot to hash a password in, or 503 `busy` at once: argon2 work is
/// bounded (see [`candor_auth::HashGate`]).
pub(crate) async fn hash_slot(st: &AppState) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
    st.hashing.enter().await.ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many password checks at once; try again in a second",
        )
        .retry_after(1)
    })
}

fn locked_out(secs: u64, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "locked_out",
        format!("too many {what}; try again in {secs} s"),
    )
    .retry_after(secs)
}

/// Writes the summaries of lockouts that ended: one line each, with the
/// attempts they refused (refusals themselves write nothing).
pub(crate) async fn audit_ended_lockouts(st: &AppState) {
    for e in st.limiter.take_ended() {
        st.audit(
            None,
            "lockout_ended",
            format!("{}: {} attempts refused while locked", e.key, e.refused),
        )
        .await;
    }
}

pub async fn login(
    State(st): State<AppState>,
    peer: Option<axum::Extension<PeerIp>>,
    remote: Option<axum::Extension<crate::Remote>>,
    headers: HeaderMap,
    b: Result<Json<LoginRequest>, JsonRejection>,
) -> ApiResult {
    let req = body(b)?;
    let ip = peer_ip(peer);
    let remote = remote.is_some();
    // Remote sign-in may need a second factor the account must already have.
    let policy = st
        .footage
        .as_ref()
        .and_then(|f| f.cloud.as_ref())
        .map(|c| c.state().remote.require_2fa)
        .unwrap_or_default();
    if req.username.len() > 64 || req.password.len() > 1024 {
        return Err(ApiError::bad_request(
            "invalid",
            "user name or password too long",
        ));
    }
    audit_ended_lockouts(&st).await;
    // A browser that signed in as this user before counts against itself
    // only, so strangers' failures cannot lock it out.
    let device_cookie = candor_auth::cookie(&headers, auth::DEVICE_COOKIE);
    let device = device_cookie
        .as_deref()
        .and_then(|v| st.device_key.check(&req.username, v));
    let client = match device {
        Some(id) => candor_auth::Client::Device { id },
        None if remote => candor_auth::Client::Remote {
            name: &req.username,
            ip,
        },
        None => candor_auth::Client::Untrusted {
            name: &req.username,
            ip,
        },
    };
    // Reserve the attempt before any checking: parallel guesses cannot
    // slip past the limit while earlier ones are still hashing.
    let attempt = match st.limiter.reserve(&client) {
        Ok(a) => a,
        Err(l) => {
            if l.first {
                st.audit(
                    Some(&req.username),
                    "login_locked",
                    format!("from {ip}: locked for {} s", l.secs),
                )
                .await;
            }
            return Err(locked_out(l.secs, "failed logins"));
        }
    };
    let slot = match hash_slot(&st).await {
        Ok(s) => s,
        Err(e) => {
            attempt.refund();
            return Err(e);
        }
    };
    let accounts = st.accounts.clone();
    let (user, password, code) = (req.username.clone(), req.password, req.totp);
    let outcome = tokio::task::spawn_blocking(
        move || -> Result<Result<(), &'static str>, accounts::AccountError> {
            let Some(role) = accounts.verify(&user, &password)? else {
                return Ok(Err("bad_credentials"));
            };
            let totp = accounts.totp_enabled(&user)?;
            if remote && !totp && policy.required(role == accounts::Role::Admin) {
                return Ok(Err("remote_needs_2fa"));
            }
            // Technicians sign in with their own password and TOTP, and
            // only while a grant is in force.
            if accounts.is_technician(&user)? {
                if !totp {
                    return Ok(Err("technician_not_enrolled"));
                }
                if accounts.active_grant(&user)?.is_none() {
                    return Ok(Err("no_grant"));
                }
            }
            if totp {
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
    drop(slot);
    // Through the relay every failure gets one answer and counts: a guesser
    // on the internet must not learn that a password was right (by a
    // request for the code, or by a refusal for lack of two-factor). The
    // audit log keeps the real reason for the owner.
    if remote && let Err(why) = outcome {
        let more = if attempt.locks {
            "; now locked out"
        } else {
            ""
        };
        attempt.failed();
        st.audit(
            Some(&req.username),
            "login_failed",
            format!("from {ip} through the cloud ({why}){more}"),
        )
        .await;
        tracing::warn!(user = %req.username, %ip, "failed remote login ({why})");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "remote_sign_in_failed",
            "wrong user name, password or code. Through remote access, enter the code from your authenticator \
             app if the account has two-factor sign-in; admins must have it (set it up under Account on the \
             local network)",
        ));
    }
    match outcome {
        Ok(()) => {
            attempt.succeeded();
            let (id, session) = st
                .accounts
                .create_session_at(&req.username, Some(ip), remote)?;
            let how = match (remote, device.is_some()) {
                (true, true) => " through the cloud (remote access, known browser)",
                (true, false) => " through the cloud (remote access)",
                (false, true) => " (known browser)",
                (false, false) => "",
            };
            st.audit(Some(&req.username), "login", format!("from {ip}{how}"))
                .await;
            if let Some(g) = &session.grant
                && st.accounts.grant_used(g.id)?
            {
                st.audit(
                    Some(&req.username),
                    "technician_access_started",
                    format!("grant {}: {} from {ip}{how}", g.id, g.scopes),
                )
                .await;
                crate::grants_api::grant_notice(&st, candor_link::AccessEvent::Started, g.id).await;
            }
            let body = candor_wire::SignedIn {
                username: session.username,
                role: session.role.as_str().into(),
                csrf_token: Some(session.csrf),
            };
            let mut r = (
                StatusCode::OK,
                [(
                    header::SET_COOKIE,
                    auth::set_cookie(&id, accounts::SESSION_SECS),
                )],
                Json(body),
            )
                .into_response();
            if device.is_none() {
                let v = auth::device_cookie(&st.device_key.issue(&req.username));
                if let Ok(v) = axum::http::HeaderValue::from_str(&v) {
                    r.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            Ok(r)
        }
        // The password was right; ask for the second factor without counting a failure.
        Err("totp_required") => {
            attempt.refund();
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "totp_required",
                "enter the 6-digit code from your authenticator app (or a recovery code)",
            ))
        }
        Err(code) => {
            let locks = attempt.locks;
            attempt.failed();
            let more = if locks { "; now locked out" } else { "" };
            st.audit(
                Some(&req.username),
                "login_failed",
                format!("from {ip} ({code}){more}"),
            )
            .await;
            tracing::warn!(user = %req.username, %ip, "failed login ({code})");
            let message = match code {
                "bad_totp" => "wrong or already used code",
                "no_grant" => {
                    "your access to this recorder has ended; ask the owner for a new grant"
                }
                "technician_not_enrolled" => {
                    "finish enrolment first, with the code the owner gave you"
                }
                _ => "wrong user name or password",
            };
            Err(ApiError::new(StatusCode::UNAUTHORIZED, code, message))
        }
    }
}

pub async fn logout(State(st): State<AppState>, Caller(p): Caller) -> ApiResult {
    if let Via::Session { id, .. } = &p.via {
        st.accounts.end_session(id)?;
    }
    st.audit(Some(&p.username), "logout", String::new()).await;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, auth::set_cookie("", 0))],
    )
        .into_response())
}

pub async fn me(State(st): State<AppState>, Caller(p): Caller) -> ApiResult {
    let totp = st.accounts.totp_enabled(&p.username)?;
    // A page reloaded after login needs its CSRF token back; only our own
    // origin can read this answer.
    let csrf = match &p.via {
        Via::Session { id, .. } => st.accounts.session(id)?.map(|s| s.csrf),
        Via::Token { .. } | Via::Share { .. } => None,
    };
    Ok(Json(candor_wire::Me {
        role: p.role.as_str().into(),
        session: p.session_row(),
        username: p.username,
        cameras: p.cameras,
        totp,
        csrf_token: csrf,
        grant: p.grant.as_ref().map(|g| candor_wire::MeGrant {
            id: g.id,
            scopes: g.scopes.to_string().split(',').map(str::to_owned).collect(),
            expires_at: crate::rfc3339(g.expires_at),
        }),
    })
    .into_response())
}

/// Second-factor changes need the person, not a script: a session.
fn session_only(p: &crate::Principal) -> Result<(), ApiError> {
    match p.via {
        Via::Session { .. } => Ok(()),
        Via::Token { .. } | Via::Share { .. } => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "session_required",
            "log in to change two-factor settings",
        )),
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BeginRequest {
    /// With TOTP already on: a current code or a recovery code. Replacing a
    /// second factor needs the one it replaces, so a stolen session cannot
    /// move the account to the thief's phone.
    code: Option<String>,
}

pub async fn totp_begin(
    State(st): State<AppState>,
    Caller(p): Caller,
    peer: Option<axum::Extension<PeerIp>>,
    b: axum::body::Bytes,
) -> ApiResult {
    secret_guarded(&st, &p, peer)?;
    // The body is optional: `{}` or nothing when TOTP is off.
    let req: BeginRequest = if b.iter().all(u8::is_ascii_whitespace) {
        BeginRequest::default()
    } else {
        serde_json::from_slice(&b)
            .map_err(|e| ApiError::bad_request("bad_request", e.to_string()))?
    };
    if st.accounts.totp_enabled(&p.username)? {
        let Some(code) = req.code.filter(|c| !c.is_empty() && c.len() <= 64) else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "code_required",
                "two-factor authentication is on: enter a current code (or a recovery code) to replace it",
            ));
        };
        check_code(&st, &p.username, &code).await?;
    }
    let secret = st.accounts.totp_begin(&p.username)?;
    let uri = crate::totp::otpauth_uri(&secret, &p.username);
    let qr = qr_data_uri(&uri)?;
    Ok(Json(candor_wire::TotpSecret {
        secret: crate::totp::base32(&secret),
        uri,
        qr,
    })
    .into_response())
}

/// The QR code phones scan, as an SVG data URI: rendered here so the page
/// needs no library.
pub(crate) fn qr_data_uri(uri: &str) -> Result<String, ApiError> {
    let qr = qrcode::QrCode::new(uri.as_bytes())
        .map(|c| {
            c.render::<qrcode::render::svg::Color>()
                .min_dimensions(220, 220)
                .build()
        })
        .map_err(ApiError::internal)?;
    use base64::Engine as _;
    Ok(format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(qr)
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    code: String,
}

pub async fn totp_confirm(
    State(st): State<AppState>,
    Caller(p): Caller,
    b: Result<Json<CodeRequest>, JsonRejection>,
) -> ApiResult {
    session_only(&p)?;
    let req = body(b)?;
    let codes = st.accounts.totp_confirm(&p.username, &req.code, now())?;
    st.audit(Some(&p.username), "totp_enabled", String::new())
        .await;
    Ok(Json(candor_wire::RecoveryCodes {
        recovery_codes: codes,
    })
    .into_response())
}

/// Guesses at a second factor or password from inside a session count like
/// failed logins: a stolen session cookie must not become a way to brute-force
/// the code that protects the account.
fn guard_guess(st: &AppState, user: &str) -> Result<(), ApiError> {
    match st
        .limiter
        .locked(&candor_auth::Client::Key(&in_session(user)))
    {
        Some(secs) => Err(locked_out(secs, "wrong codes or passwords")),
        None => Ok(()),
    }
}

/// The counter for secrets guessed from inside a session (codes, the
/// current password): per user, apart from sign-in counters, so strangers
/// who lock a name out of signing in cannot also block its owner's changes.
fn in_session(user: &str) -> String {
    format!("in-session:{user}")
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
    p: &crate::Principal,
    peer: Option<axum::Extension<PeerIp>>,
) -> Result<std::net::IpAddr, ApiError> {
    session_only(p)?;
    let ip = peer_ip(peer);
    guard_guess(st, &p.username)?;
    Ok(ip)
}

/// Checks a TOTP or recovery code of the caller, reserving the attempt first.
async fn check_code(st: &AppState, user: &str, code: &str) -> Result<(), ApiError> {
    let key = in_session(user);
    let client = candor_auth::Client::Key(&key);
    let attempt = st
        .limiter
        .reserve(&client)
        .map_err(|l| locked_out(l.secs, "wrong codes or passwords"))?;
    if st.accounts.totp_check(user, code, now())? {
        attempt.refund();
        Ok(())
    } else {
        attempt.failed();
        Err(ApiError::bad_request(
            "bad_code",
            "wrong or already used code",
        ))
    }
}

pub async fn totp_disable(
    State(st): State<AppState>,
    Caller(p): Caller,
    peer: Option<axum::Extension<PeerIp>>,
    b: Result<Json<CodeRequest>, JsonRejection>,
) -> ApiResult {
    secret_guarded(&st, &p, peer)?;
    let req = body(b)?;
    check_code(&st, &p.username, &req.code).await?;
    st.accounts.totp_disable(&p.username)?;
    st.audit(Some(&p.username), "totp_disabled", String::new())
        .await;
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
    Caller(p): Caller,
    peer: Option<axum::Extension<PeerIp>>,
    remote: Option<axum::Extension<crate::Remote>>,
    b: Result<Json<PasswordChange>, JsonRejection>,
) -> ApiResult {
    let ip = secret_guarded(&st, &p, peer)?;
    let req = body(b)?;
    if req.current.len() > 1024 || req.new.len() > 1024 {
        return Err(ApiError::bad_request("invalid", "password too long"));
    }
    let attempt = st
        .limiter
        .reserve(&candor_auth::Client::Key(&in_session(&p.username)))
        .map_err(|l| locked_out(l.secs, "wrong codes or passwords"))?;
    let slot = match hash_slot(&st).await {
        Ok(s) => s,
        Err(e) => {
            attempt.refund();
            return Err(e);
        }
    };
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
    drop(slot);
    if !ok {
        attempt.failed();
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "bad_credentials",
            "the current password is wrong",
        ));
    }
    attempt.refund();
    // update_user ended every session; give this browser a fresh one.
    let (id, session) = st
        .accounts
        .create_session_at(&p.username, Some(ip), remote.is_some())?;
    st.audit(Some(&p.username), "password_changed", "by the user".into())
        .await;
    let body = candor_wire::Csrf {
        csrf_token: session.csrf,
    };
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
