//! The config's value types: each parses and validates one kind of value
//! (a camera name, a camera URL that hides its password, a size, a
//! duration), so that a wrong value fails with its own line and column.

use serde::Deserialize;
use serde::de::{self, Deserializer};
use std::fmt;
use std::time::Duration;

/// A camera name: 1–64 of `A-Z a-z 0-9 _ -`, so it is safe in paths, URLs and MQTT topics.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CameraName(pub String);

impl<'de> Deserialize<'de> for CameraName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty()
            || s.len() > 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(de::Error::custom(format!(
                "camera name {s:?} must be 1-64 characters of letters, digits, '_' or '-'"
            )));
        }
        Ok(CameraName(s))
    }
}

impl fmt::Display for CameraName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An `rtsp://` URL whose credentials are kept apart and never displayed.
#[derive(Clone)]
pub struct CameraUrl {
    /// The URL without user and password.
    pub url: url::Url,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl CameraUrl {
    pub fn parse(s: &str) -> Result<CameraUrl, String> {
        let mut url =
            url::Url::parse(s).map_err(|e| format!("camera url is not a valid URL: {e}"))?;
        if url.scheme() != "rtsp" {
            return Err(format!(
                "camera url must start with rtsp:// (got {}://)",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("camera url has no host".into());
        }
        let decode = |v: &str| percent_decode(v);
        let username = (!url.username().is_empty()).then(|| decode(url.username()));
        let password = url.password().map(decode);
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Ok(CameraUrl {
            url,
            username,
            password,
        })
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl fmt::Display for CameraUrl {
    /// Shows the user but never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.username {
            Some(u) => {
                let s = self.url.as_str();
                let rest = s.strip_prefix("rtsp://").unwrap_or(s);
                write!(f, "rtsp://{u}:***@{rest}")
            }
            None => write!(f, "{}", self.url),
        }
    }
}

impl fmt::Debug for CameraUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<'de> Deserialize<'de> for CameraUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CameraUrl::parse(&s).map_err(de::Error::custom)
    }
}

/// Splits `"1.5 GB"` into `(1.5, "GB")`.
fn number_and_unit(s: &str) -> Option<(f64, &str)> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    Some((num.parse().ok()?, unit.trim()))
}

/// A byte count: `20GB`, `500 MB`, `1.5GiB`, `1024` (bytes). KB/MB/GB/TB are
/// decimal (as disks are sold); KiB/MiB/GiB/TiB binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(s: &str) -> Result<ByteSize, String> {
        let (num, unit) = number_and_unit(s)
            .ok_or_else(|| format!("{s:?} is not a size like \"20GB\" or \"500MB\""))?;
        let mult: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" | "k" => 1_000,
            "mb" | "m" => 1_000_000,
            "gb" | "g" => 1_000_000_000,
            "tb" | "t" => 1_000_000_000_000,
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            "tib" => 1 << 40,
            u => {
                return Err(format!(
                    "unknown size unit {u:?} in {s:?}; use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"
                ));
            }
        };
        let v = num * mult as f64;
        if !(v.is_finite() && v >= 0.0 && v < u64::MAX as f64) {
            return Err(format!("size {s:?} is out of range"));
        }
        Ok(ByteSize(v as u64))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => ByteSize::parse(&s).map_err(de::Error::custom),
        }
    }
}

/// A duration: `14d`, `12h`, `30m`, `45s`, `2w`, `500ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn parse(s: &str) -> Result<HumanDuration, String> {
        let (num, unit) = number_and_unit(s)
            .ok_or_else(|| format!("{s:?} is not a duration like \"14d\" or \"30s\""))?;
        let secs = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "w" => 7.0 * 86400.0,
            "" => return Err(format!("duration {s:?} needs a unit: ms, s, m, h, d or w")),
            u => {
                return Err(format!(
                    "unknown duration unit {u:?} in {s:?}; use ms, s, m, h, d or w"
                ));
            }
        };
        Duration::try_from_secs_f64(num * secs)
            .map(HumanDuration)
            .map_err(|_| format!("duration {s:?} is out of range"))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        HumanDuration::parse(&s).map_err(de::Error::custom)
    }
}
