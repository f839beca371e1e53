//! Security building blocks shared by the recorder's and the cloud's web
//! servers: TOTP (RFC 6238), the login brute-force limiter, argon2id password
//! hashes and constant-time comparison. Kept apart so both servers use the
//! same reviewed code and neither depends on the other.

pub mod conn;
pub mod limiter;
pub mod tls;
pub mod totp;

pub use limiter::{
    Attempt, Client, DeviceKey, Ended, HashGate, LOCKOUT_SECS, Limiter, Locked, MAX_FAILURES,
    WINDOW_SECS,
};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;

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
