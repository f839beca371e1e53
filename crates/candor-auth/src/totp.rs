//! Time-based one-time passwords (RFC 6238: HMAC-SHA1, 30 s steps, 6
//! digits), the parameters every authenticator app supports.

use hmac::{Hmac, Mac};
use sha1::Sha1;

pub const STEP_SECS: i64 = 30;
pub const DIGITS: u32 = 6;

/// The code for time step `step` (RFC 4226 dynamic truncation).
pub fn code_at(secret: &[u8], step: i64) -> u32 {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&(step as u64).to_be_bytes());
    let h = mac.finalize().into_bytes();
    let o = usize::from(h[19] & 0xf);
    let bin = u32::from_be_bytes([h[o] & 0x7f, h[o + 1], h[o + 2], h[o + 3]]);
    bin % 10u32.pow(DIGITS)
}

/// The step at which `code` is valid, within one step either side of `now`
/// (phone clocks drift), or `None`. Callers refuse steps at or before the last
/// one used, so a code seen over someone's shoulder cannot be replayed.
pub fn verify(secret: &[u8], code: &str, now_secs: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u32 = code.parse().ok()?;
    let step = now_secs.div_euclid(STEP_SECS);
    (step - 1..=step + 1)
        .find(|&s| crate::same(&format!("{:06}", code_at(secret, s)), &format!("{n:06}")))
}

/// RFC 4648 base32 without padding, the form `otpauth://` URIs carry.
pub fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in data {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The URI an authenticator app scans (Google's Key Uri Format).
pub fn otpauth_uri(secret: &[u8], user: &str) -> String {
    // User names are restricted to [A-Za-z0-9._-]: nothing to percent-encode.
    format!(
        "otpauth://totp/Candor:{user}?secret={}&issuer=Candor&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        base32(secret)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 column (8-digit codes; we keep the last 6).
    #[test]
    fn rfc6238_test_vectors() {
        let secret = b"12345678901234567890";
        for (t, code) in [
            (59, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
        ] {
            assert_eq!(code_at(secret, t / STEP_SECS), code % 1_000_000, "t={t}");
        }
    }

    #[test]
    fn verify_accepts_one_step_of_drift_and_nothing_else() {
        let secret = b"12345678901234567890";
        let now = 1_111_111_111;
        let step = now / STEP_SECS;
        let c = |s| format!("{:06}", code_at(secret, s));
        assert_eq!(verify(secret, &c(step), now), Some(step));
        assert_eq!(verify(secret, &c(step - 1), now), Some(step - 1));
        assert_eq!(verify(secret, &c(step + 2), now), None);
        assert_eq!(verify(secret, "12345", now), None);
        assert_eq!(verify(secret, "abcdef", now), None);
    }

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }
}
