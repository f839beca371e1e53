//! Login, sessions, CSRF and brute-force protection for the HTTP API.
//!
//! Sessions are random 256-bit ids in an `HttpOnly; Secure; SameSite=Strict`
//! cookie. State-changing requests must also carry the session's CSRF token in
//! `X-CSRF-Token` (returned by login), which a cross-site page cannot read.
//! Failed logins are counted per user name and per client address: after
//! [`MAX_FAILURES`] within [`WINDOW_SECS`] that key is locked out for
//! [`LOCKOUT_SECS`], even for the right password.

use crate::accounts::{Accounts, Session};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const COOKIE: &str = "candor_session";
pub const MAX_FAILURES: u32 = 5;
pub const WINDOW_SECS: u64 = 15 * 60;
pub const LOCKOUT_SECS: u64 = 15 * 60;

struct Failures {
    count: u32,
    since: Instant,
    locked_until: Option<Instant>,
}

#[derive(Default)]
pub struct Limiter {
    failures: Mutex<HashMap<String, Failures>>,
}

impl Limiter {
    fn keys(user: &str, ip: IpAddr) -> [String; 2] {
        [format!("user:{user}"), format!("ip:{ip}")]
    }

    /// Seconds until the lockout ends, if either key is locked.
    pub fn locked(&self, user: &str, ip: IpAddr) -> Option<u64> {
        let now = Instant::now();
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        Self::keys(user, ip)
            .iter()
            .filter_map(|k| {
                map.get(k)?
                    .locked_until
                    .filter(|&until| until > now)
                    .map(|until| (until - now).as_secs() + 1)
            })
            .max()
    }

    pub fn failed(&self, user: &str, ip: IpAddr) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        // Bound memory under a spray of names: forget stale entries.
        if map.len() > 10_000 {
            map.retain(|_, f| {
                now.duration_since(f.since) < Duration::from_secs(WINDOW_SECS)
                    || f.locked_until.is_some_and(|u| u > now)
            });
        }
        for k in Self::keys(user, ip) {
            let fresh = || Failures {
                count: 0,
                since: now,
                locked_until: None,
            };
            let e = map.entry(k).or_insert_with(fresh);
            if now.duration_since(e.since) > Duration::from_secs(WINDOW_SECS)
                && e.locked_until.is_none_or(|u| u <= now)
            {
                *e = fresh();
            }
            e.count += 1;
            if e.count >= MAX_FAILURES {
                e.locked_until = Some(now + Duration::from_secs(LOCKOUT_SECS));
            }
        }
    }

    pub fn succeeded(&self, user: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&format!("user:{user}"));
    }
}

/// The session id from a `Cookie` header, if any.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

pub fn set_cookie(id: &str, max_age: i64) -> String {
    format!("{COOKIE}={id}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={max_age}")
}

/// Constant-time comparison for secrets of equal length.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub fn current(accounts: &Accounts, headers: &axum::http::HeaderMap) -> Option<(String, Session)> {
    let id = session_cookie(headers)?;
    let s = accounts.session(&id).ok()??;
    Some((id, s))
}
