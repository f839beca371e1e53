//! Time in Candor is counted in 90 kHz units, the RTP clock rate of H.264/H.265.
//!
//! One unit for wall time and media time means no rounding when a camera's RTP
//! timestamps become recorded durations, and an i64 of 90 kHz ticks spans
//! ±3 million years. See `docs/design/storage.md`, "Time".

use std::fmt;

pub const UNITS_PER_SEC: i64 = 90_000;

/// An instant of wall time: 90 kHz units since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time90k(pub i64);

/// A signed span of time in 90 kHz units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration90k(pub i64);

impl Time90k {
    pub fn from_timestamp(ts: jiff::Timestamp) -> Self {
        // i128 so that the multiplication cannot overflow for any jiff timestamp.
        let ns = ts.as_nanosecond();
        Time90k((ns * 9 / 100_000) as i64)
    }

    pub fn to_timestamp(self) -> jiff::Timestamp {
        let ns = i128::from(self.0) * 100_000 / 9;
        // Every Time90k produced from a jiff timestamp round-trips; values built
        // from arithmetic far outside jiff's range (±9999 years) clamp.
        jiff::Timestamp::from_nanosecond(ns).unwrap_or(if self.0 < 0 {
            jiff::Timestamp::MIN
        } else {
            jiff::Timestamp::MAX
        })
    }

    /// Parses RFC 3339 (e.g. `2026-11-27T10:00:00Z`, `2026-11-27T11:00:00.5+01:00`).
    pub fn parse_rfc3339(s: &str) -> Result<Self, jiff::Error> {
        let ts: jiff::Timestamp = s.parse()?;
        Ok(Self::from_timestamp(ts))
    }

    pub fn now() -> Self {
        Self::from_timestamp(jiff::Timestamp::now())
    }
}

/// The system clock as Unix seconds: for expiry times and TOTP steps,
/// where 90 kHz precision is pointless.
pub fn unix_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

impl fmt::Display for Time90k {
    /// RFC 3339 in UTC with millisecond precision.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}", self.to_timestamp())
    }
}

impl std::ops::Add<Duration90k> for Time90k {
    type Output = Time90k;
    fn add(self, d: Duration90k) -> Time90k {
        Time90k(self.0.saturating_add(d.0))
    }
}

impl std::ops::Sub<Duration90k> for Time90k {
    type Output = Time90k;
    fn sub(self, d: Duration90k) -> Time90k {
        Time90k(self.0.saturating_sub(d.0))
    }
}

impl std::ops::Sub for Time90k {
    type Output = Duration90k;
    fn sub(self, o: Time90k) -> Duration90k {
        Duration90k(self.0.saturating_sub(o.0))
    }
}

impl Duration90k {
    pub fn from_secs_f64(s: f64) -> Self {
        Duration90k((s * UNITS_PER_SEC as f64).round() as i64)
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / UNITS_PER_SEC as f64
    }

    pub fn from_std(d: std::time::Duration) -> Self {
        Duration90k((d.as_nanos() * 9 / 100_000).min(i64::MAX as u128) as i64)
    }
}

impl fmt::Display for Duration90k {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}s", self.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_at_90k_resolution() {
        let t = Time90k::parse_rfc3339("2026-11-27T10:00:00.5Z").unwrap();
        assert_eq!(t.0 % UNITS_PER_SEC, 45_000);
        assert_eq!(t.to_string(), "2026-11-27T10:00:00.500Z");
        assert_eq!(Time90k::from_timestamp(t.to_timestamp()), t);
    }

    #[test]
    fn offsets_are_applied() {
        let a = Time90k::parse_rfc3339("2026-11-27T11:00:00+01:00").unwrap();
        let b = Time90k::parse_rfc3339("2026-11-27T10:00:00Z").unwrap();
        assert_eq!(a, b);
    }
}
