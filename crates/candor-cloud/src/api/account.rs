//! Owner accounts: sign-up, sign-in (lockout, device cookie, TOTP), sessions,
//! password change and account deletion.

use super::*;
use crate::db::Val;
use crate::{Cloud, link, now};
use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Credentials {
    email: String,
    password: String,
    #[serde(default)]
    code: Option<String>,
}

pub(super) fn valid_email(e: &str) -> bool {
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
pub(super) async fn register(
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
        Json(candor_wire::cloud::Account {
            email,
            csrf: None,
            totp: None,
        }),
    )
        .into_response())
}

pub(super) async fn login(
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
        Json(candor_wire::cloud::Account {
            email: email.clone(),
            csrf: Some(csrf),
            totp: None,
        }),
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
pub(super) async fn spend_totp(
    cloud: &Cloud,
    account: &str,
    secret: &[u8],
    code: &str,
) -> ApiResult<bool> {
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

pub(super) async fn logout(State(cloud): Cl, headers: HeaderMap) -> ApiResult<Response> {
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

pub(super) async fn me(
    State(cloud): Cl,
    headers: HeaderMap,
) -> ApiResult<Json<candor_wire::cloud::Account>> {
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
    Ok(Json(candor_wire::cloud::Account {
        email: me.email,
        csrf: Some(me.csrf),
        totp: Some(totp),
    }))
}

/// A fresh secret, kept pending (in the session's memory: here, the
/// response) until a code from it is confirmed.
pub(super) async fn totp_begin(
    State(cloud): Cl,
    headers: HeaderMap,
) -> ApiResult<Json<candor_wire::cloud::TotpSecret>> {
    let me = me_csrf(&cloud, &headers).await?;
    let secret: [u8; 20] = rand::random();
    let b32 = candor_auth::totp::base32(&secret);
    Ok(Json(candor_wire::cloud::TotpSecret {
        uri: format!(
            "otpauth://totp/Candor%20Cloud:{}?secret={b32}&issuer=Candor%20Cloud",
            me.email
        ),
        secret: b32,
    }))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TotpConfirm {
    secret: String,
    code: String,
    /// With TOTP already on: a code from the current secret. Replacing a
    /// second factor needs the one it replaces (a stolen session must not
    /// move the account to the thief's phone).
    #[serde(default)]
    current: Option<String>,
}

pub(super) async fn totp_confirm(
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
pub(super) struct PasswordChange {
    current: String,
    new: String,
}

/// Checks the signed-in account's password, counted per account (the
/// session already says who is asking).
pub(super) async fn check_password(cloud: &Cloud, me: &Me, password: &str) -> ApiResult<()> {
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
pub(super) async fn change_password(
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
pub(super) struct DeleteAccount {
    password: String,
}

/// Deletes the account with everything it holds: its sites are unpaired
/// (their keys refused from now on), alarms, push subscriptions, sessions.
pub(super) async fn delete_account(
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

pub(super) fn base32_decode(s: &str) -> Option<Vec<u8>> {
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
