//! Security building blocks shared by the recorder's and the cloud's web
//! servers: TOTP (RFC 6238), the login brute-force limiter, argon2id password
//! hashes and constant-time comparison. Kept apart so both servers use the
//! same reviewed code and neither depends on the other.

pub mod tls;
pub mod totp;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Constant-time comparison for secrets of equal length.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// An argon2id hash (PHC string) of `password` with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches a PHC hash from [`hash_password`]. A malformed
/// stored hash is a mismatch, not a panic.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// The value of cookie `name` in a request's `Cookie` headers, if any.
pub fn cookie(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}
