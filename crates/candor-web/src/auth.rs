//! Login, sessions, CSRF and brute-force protection for the HTTP API.
//!
//! Sessions are random 256-bit ids in an `HttpOnly; Secure; SameSite=Strict`
//! cookie. State-changing requests must also carry the session's CSRF token in
//! `X-CSRF-Token` (returned by login), which a cross-site page cannot read.
//! Failed logins are counted per user name and per client address: after
//! [`MAX_FAILURES`] within [`WINDOW_SECS`] that key is locked out for
//! [`LOCKOUT_SECS`], even for the right password. Attempts are reserved
//! before the password is checked, and browsers that signed in before are
//! counted on their own (see [`candor_auth::limiter`]).

use crate::accounts::{Accounts, Session};

/// `__Host-`: the browser accepts it only from this origin over HTTPS, with
/// `Path=/` and no `Domain`, so no sibling host can plant or shadow it.
pub const COOKIE: &str = "__Host-candor_session";
/// The device cookie of a browser that signed in before (see
/// [`candor_auth::limiter`]): its login attempts are counted on their own.
pub const DEVICE_COOKIE: &str = "__Host-candor_device";
/// A year: a browser stays "known" as long as it is used now and then.
pub const DEVICE_SECS: i64 = 365 * 24 * 3600;
pub use candor_auth::{LOCKOUT_SECS, Limiter, MAX_FAILURES, WINDOW_SECS, same};

/// The session id from a `Cookie` header, if any.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    candor_auth::cookie(headers, COOKIE)
}

pub fn set_cookie(id: &str, max_age: i64) -> String {
    format!("{COOKIE}={id}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={max_age}")
}

pub fn device_cookie(value: &str) -> String {
    format!(
        "{DEVICE_COOKIE}={value}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={DEVICE_SECS}"
    )
}

pub fn current(accounts: &Accounts, headers: &axum::http::HeaderMap) -> Option<(String, Session)> {
    let id = session_cookie(headers)?;
    let s = accounts.session(&id).ok()??;
    Some((id, s))
}
