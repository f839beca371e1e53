//! Login, sessions, CSRF and brute-force protection for the HTTP API.
//!
//! Sessions are random 256-bit ids in an `HttpOnly; Secure; SameSite=Strict`
//! cookie. State-changing requests must also carry the session's CSRF token in
//! `X-CSRF-Token` (returned by login), which a cross-site page cannot read.
//! Failed logins are counted per user name and per client address: after
//! [`MAX_FAILURES`] within [`WINDOW_SECS`] that key is locked out for
//! [`LOCKOUT_SECS`], even for the right password.

use crate::accounts::{Accounts, Session};

pub const COOKIE: &str = "candor_session";
pub use candor_auth::{LOCKOUT_SECS, Limiter, MAX_FAILURES, WINDOW_SECS, same};

/// The session id from a `Cookie` header, if any.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    candor_auth::cookie(headers, COOKIE)
}

pub fn set_cookie(id: &str, max_age: i64) -> String {
    format!("{COOKIE}={id}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={max_age}")
}

pub fn current(accounts: &Accounts, headers: &axum::http::HeaderMap) -> Option<(String, Session)> {
    let id = session_cookie(headers)?;
    let s = accounts.session(&id).ok()??;
    Some((id, s))
}
