//! The recorder's TOML configuration. Key names are a contract (see README).
//!
//! Validation happens while deserializing wherever possible, so that errors
//! carry the line and column of the offending value; the few cross-field
//! checks (duplicate camera names) use spans for the same effect.

use serde::Deserialize;
use serde::de::{self, Deserializer};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("can't read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub storage: StorageConfig,
    #[serde(default)]
    pub web: WebConfig,
    #[serde(default)]
    pub cameras: Vec<CameraConfig>,
    /// Publish events to an MQTT broker (Home Assistant discovery included).
    pub mqtt: Option<MqttConfig>,
    /// POST each event change, signed, to these URLs.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// The optional cloud. Absent (the default): the recorder never
    /// connects anywhere but its cameras and the integrations above.
    pub cloud: Option<CloudConfig>,
}

/// `[cloud]`: where the cloud is and what this site shares with it. The
/// recorder connects only once an admin starts pairing, and stays connected
/// only while paired.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudConfig {
    /// `host:port` of the cloud (port 443 if left out).
    pub address: CloudAddress,
    /// PEM file of the CA (or self-signed certificate) the cloud's
    /// certificate must chain to; the public web roots when absent.
    pub ca: Option<PathBuf>,
    /// `http://host:port` of an HTTP CONNECT proxy to reach the cloud through.
    pub proxy: Option<CloudAddress>,
    /// The site's name in the cloud app.
    #[serde(default = "default_site_name")]
    pub name: String,
    /// `online_only`, `health` or `health_and_events`: what the recorder sends.
    #[serde(default = "default_sharing")]
    pub sharing: candor_link::Sharing,
    /// Alarms say only "alarm at <site>": no camera, no kind.
    #[serde(default)]
    pub private_alarms: bool,
}

fn default_site_name() -> String {
    "Candor recorder".into()
}

fn default_sharing() -> candor_link::Sharing {
    candor_link::Sharing::Health
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudAddress {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for CloudAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl CloudAddress {
    /// `host[:port]`, `[v6]:port`, or an `http(s)://host:port` URL (the
    /// scheme and any path are ignored).
    pub fn parse(s: &str, default_port: u16) -> Result<CloudAddress, String> {
        let t = s.trim();
        let with_scheme = if t.contains("://") {
            t.to_string()
        } else {
            format!("https://{t}")
        };
        let u = url::Url::parse(&with_scheme).map_err(|e| format!("{s:?}: {e}"))?;
        if !u.username().is_empty() || u.password().is_some() {
            return Err(format!("{s:?}: no credentials in the address"));
        }
        let host = u
            .host_str()
            .ok_or_else(|| format!("{s:?}: no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(CloudAddress {
            host,
            port: u.port().unwrap_or(default_port),
        })
    }
}

impl<'de> Deserialize<'de> for CloudAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CloudAddress::parse(&s, 443).map_err(de::Error::custom)
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `https://…` (or `http://…` on a trusted network).
    pub url: WebhookUrl,
    /// Shared secret for the HMAC-SHA256 signature (at least 16 characters).
    pub secret: WebhookSecret,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookUrl(pub String);

impl<'de> Deserialize<'de> for WebhookUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let u = url::Url::parse(&s).map_err(|e| de::Error::custom(format!("webhook url: {e}")))?;
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
            return Err(de::Error::custom("a webhook url must be http(s)://host/…"));
        }
        Ok(WebhookUrl(s))
    }
}

/// Never printed: `Debug` shows `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(pub String);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for WebhookSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.chars().count() < 16 {
            return Err(de::Error::custom(
                "a webhook secret needs at least 16 characters",
            ));
        }
        Ok(WebhookSecret(s))
    }
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &self.secret)
            .finish()
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host[:1883]` or `mqtts://host[:8883]` (TLS, system roots).
    pub url: MqttUrl,
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

fn default_prefix() -> String {
    "candor".into()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttUrl {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl<'de> Deserialize<'de> for MqttUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let u = url::Url::parse(&s).map_err(|e| de::Error::custom(format!("mqtt url: {e}")))?;
        let tls = match u.scheme() {
            "mqtt" => false,
            "mqtts" => true,
            other => {
                return Err(de::Error::custom(format!(
                    "mqtt url must be mqtt:// or mqtts:// (got {other}://)"
                )));
            }
        };
        if !u.username().is_empty() {
            return Err(de::Error::custom(
                "put MQTT credentials in username and password, not in the url",
            ));
        }
        Ok(MqttUrl {
            host: u
                .host_str()
                .ok_or_else(|| de::Error::custom("mqtt url needs a host"))?
                .to_owned(),
            port: u.port().unwrap_or(if tls { 8883 } else { 1883 }),
            tls,
        })
    }
}

/// The built-in HTTPS server. TLS is always on.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Address and port to listen on.
    #[serde(default = "default_listen")]
    pub listen: std::net::SocketAddr,
    /// PEM certificate chain and private key; both or neither. Default: a
    /// certificate generated at first start in `<storage.path>/tls/`.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Open HTTPS connections at most, in all; beyond it new ones are
    /// closed at once (recording keeps its descriptors).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Open HTTPS connections at most from one client address.
    #[serde(default = "default_max_connections_per_address")]
    pub max_connections_per_address: usize,
    /// Cameras on loopback addresses (127.0.0.0/8, ::1) may be added from
    /// the web app. Off: the recorder's own host is not a camera, and its
    /// local services must not be reachable through "add camera".
    #[serde(default)]
    pub allow_loopback_cameras: bool,
    /// A connection on which no byte moves either way for this long is
    /// closed (an idle keep-alive; a client that completed TLS and said
    /// nothing). Request headers and bodies each have 10 s.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
}

fn default_idle_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

fn default_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([0, 0, 0, 0], 8443))
}

fn default_max_connections() -> usize {
    4096
}

fn default_max_connections_per_address() -> usize {
    64
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: default_listen(),
            cert: None,
            key: None,
            max_connections: default_max_connections(),
            max_connections_per_address: default_max_connections_per_address(),
            allow_loopback_cameras: false,
            idle_timeout: default_idle_timeout(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Recordings and the SQLite index. Relative paths are relative to the config file.
    pub path: PathBuf,
    /// Total budget for footage.
    pub max_bytes: Option<ByteSize>,
    /// Free space to keep on the filesystem (default: 1 GB, at most 10% of it).
    pub min_free: Option<ByteSize>,
    /// How often open segment files are fsynced: the bound on footage lost to power loss.
    #[serde(default = "default_fsync")]
    pub fsync_interval: HumanDuration,
    /// Footage is stored in segments of about this length (1 s to 5 min).
    #[serde(default = "default_segment", deserialize_with = "segment_duration")]
    pub segment_duration: HumanDuration,
}

fn default_segment() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

fn segment_duration<'de, D: Deserializer<'de>>(d: D) -> Result<HumanDuration, D::Error> {
    let v = HumanDuration::deserialize(d)?;
    if v.0 < Duration::from_secs(1) || v.0 > Duration::from_secs(300) {
        return Err(de::Error::custom(
            "segment_duration must be between 1s and 5m",
        ));
    }
    Ok(v)
}

fn default_fsync() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    pub name: toml::Spanned<CameraName>,
    pub url: CameraUrl,
    pub max_age: Option<HumanDuration>,
    pub max_bytes: Option<ByteSize>,
    /// `tcp` (default; RTP interleaved on the RTSP connection) or `udp`.
    #[serde(default)]
    pub transport: TransportKind,
    /// Reconnect when no frame arrives for this long.
    #[serde(default = "default_stall")]
    pub stall_timeout: HumanDuration,
    /// The camera's ONVIF device service (`http://host/onvif/device_service`).
    /// When set, the recorder subscribes to the camera's own events (motion,
    /// tamper, digital inputs), authenticating with the `url`'s credentials.
    pub onvif: Option<OnvifUrl>,
    /// A lower-resolution stream of the same camera (`rtsp://…`), used for
    /// motion detection. Credentials default to `url`'s.
    pub sub_url: Option<CameraUrl>,
    /// Motion detection on the recorder.
    #[serde(default)]
    pub motion: MotionConfig,
    /// `continuous` (default) or `events`: keep only footage around events.
    #[serde(default)]
    pub record: RecordMode,
    /// Footage kept before an event starts and after it ends.
    #[serde(default = "default_pre")]
    pub pre_capture: HumanDuration,
    #[serde(default = "default_post")]
    pub post_capture: HumanDuration,
    /// Keep footage around events this long (instead of `max_age`).
    pub event_max_age: Option<HumanDuration>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RecordMode {
    #[default]
    Continuous,
    Events,
}

fn default_pre() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}

fn default_post() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}

impl CameraConfig {
    /// The sub stream's URL with the main URL's credentials filled in when
    /// it has none of its own.
    pub fn sub_stream(&self) -> Option<CameraUrl> {
        let mut u = self.sub_url.clone()?;
        if u.username.is_none() {
            u.username = self.url.username.clone();
            u.password = self.url.password.clone();
        }
        Some(u)
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MotionConfig {
    #[serde(default)]
    pub enabled: bool,
    /// Frames analysed per second at most (every frame is still decoded).
    #[serde(default = "default_motion_fps", deserialize_with = "motion_fps")]
    pub fps: f32,
    /// 1 (only large, clear changes) to 100 (the slightest change).
    #[serde(default = "default_sensitivity", deserialize_with = "sensitivity")]
    pub sensitivity: u8,
    /// The smallest moving area that counts, in percent of the image.
    #[serde(default = "default_min_size", deserialize_with = "min_size")]
    pub min_size: f32,
    /// Motion ends after this long without any.
    #[serde(default = "default_hold")]
    pub hold: HumanDuration,
    /// When set, only motion touching a zone counts (and the event names it).
    #[serde(default)]
    pub zones: Vec<ZoneConfig>,
    /// Areas never analysed: polygons of `[x, y]` points, 0..1 from the top left.
    #[serde(default)]
    pub masks: Vec<PolygonConfig>,
}

impl Default for MotionConfig {
    fn default() -> Self {
        MotionConfig {
            enabled: false,
            fps: default_motion_fps(),
            sensitivity: default_sensitivity(),
            min_size: default_min_size(),
            hold: default_hold(),
            zones: Vec::new(),
            masks: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    pub name: ZoneName,
    pub points: PolygonConfig,
}

/// 1–32 of `A-Z a-z 0-9 _ -`: zone names appear in topics and file names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneName(pub String);

impl<'de> Deserialize<'de> for ZoneName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty()
            || s.len() > 32
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(de::Error::custom(format!(
                "zone name {s:?} must be 1-32 characters of letters, digits, '_' or '-'"
            )));
        }
        Ok(ZoneName(s))
    }
}

/// A polygon in normalised coordinates, validated when read.
#[derive(Clone, Debug, PartialEq)]
pub struct PolygonConfig(pub candor_motion::Polygon);

impl<'de> Deserialize<'de> for PolygonConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let pts = Vec::<[f32; 2]>::deserialize(d)?;
        candor_motion::Polygon::new(pts.into_iter().map(|[x, y]| (x, y)).collect())
            .map(PolygonConfig)
            .map_err(de::Error::custom)
    }
}

impl MotionConfig {
    pub fn settings(&self) -> candor_motion::Settings {
        candor_motion::Settings {
            sensitivity: self.sensitivity,
            min_size: self.min_size / 100.0,
            zones: self
                .zones
                .iter()
                .map(|z| candor_motion::Zone {
                    name: z.name.0.clone(),
                    polygon: z.points.0.clone(),
                })
                .collect(),
            masks: self.masks.iter().map(|m| m.0.clone()).collect(),
        }
    }
}

fn default_motion_fps() -> f32 {
    5.0
}
fn default_sensitivity() -> u8 {
    60
}
fn default_min_size() -> f32 {
    0.3
}
fn default_hold() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}

fn motion_fps<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    let v = f32::deserialize(d)?;
    if !(0.5..=30.0).contains(&v) {
        return Err(de::Error::custom("motion fps must be between 0.5 and 30"));
    }
    Ok(v)
}

fn sensitivity<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let v = u8::deserialize(d)?;
    if !(1..=100).contains(&v) {
        return Err(de::Error::custom("sensitivity must be between 1 and 100"));
    }
    Ok(v)
}

fn min_size<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    let v = f32::deserialize(d)?;
    if !(0.01..=50.0).contains(&v) {
        return Err(de::Error::custom(
            "min_size is a percentage of the image, between 0.01 and 50",
        ));
    }
    Ok(v)
}

/// An `http://` ONVIF device service address, without credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnvifUrl(pub String);

impl<'de> Deserialize<'de> for OnvifUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let u = url::Url::parse(&s)
            .map_err(|e| de::Error::custom(format!("onvif is not a valid URL: {e}")))?;
        if u.scheme() != "http" {
            return Err(de::Error::custom(format!(
                "onvif must be an http:// device service address (got {}://)",
                u.scheme()
            )));
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err(de::Error::custom(
                "put the camera's credentials in its rtsp url, not in onvif",
            ));
        }
        Ok(OnvifUrl(s))
    }
}

fn default_stall() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    #[default]
    Tcp,
    Udp,
}

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

fn line_of(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut cfg = Config::parse(&src).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let cloud_ca = cfg.cloud.as_mut().and_then(|c| c.ca.as_mut());
        for p in [
            Some(&mut cfg.storage.path),
            cfg.web.cert.as_mut(),
            cfg.web.key.as_mut(),
            cloud_ca,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(cfg)
    }

    /// Parses and validates config text. Errors name the field and line.
    pub fn parse(src: &str) -> Result<Config, String> {
        let cfg: Config = toml::from_str(src).map_err(|e| {
            let line = e
                .span()
                .map(|s| format!("line {}: ", line_of(src, s.start)))
                .unwrap_or_default();
            format!("{line}{}", e.message())
        })?;
        if cfg.web.cert.is_some() != cfg.web.key.is_some() {
            return Err("[web]: cert and key must be given together (or neither, for a generated certificate)".into());
        }
        if let Some(c) = &cfg.cloud
            && (c.name.trim().is_empty() || c.name.len() > 64)
        {
            return Err("[cloud] name must be 1 to 64 bytes".into());
        }
        let mut seen = std::collections::HashMap::new();
        for c in &cfg.cameras {
            let line = line_of(src, c.name.span().start);
            if let Some(first) = seen.insert(c.name.get_ref().0.clone(), line) {
                return Err(format!(
                    "line {line}: cameras.name {:?} is used twice (first on line {first}); names must be unique",
                    c.name.get_ref().0
                ));
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[storage]
path = "./candor-data"
max_bytes = "20GB"
min_free = "2GB"
[[cameras]]
name = "gate"
url = "rtsp://user:s%40cret@127.0.0.1:8554/cam0"
max_age = "14d"
max_bytes = "5GB"
"#;

    #[test]
    fn the_documented_example_parses() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!(c.storage.max_bytes, Some(ByteSize(20_000_000_000)));
        assert_eq!(c.storage.min_free, Some(ByteSize(2_000_000_000)));
        let cam = &c.cameras[0];
        assert_eq!(
            cam.max_age,
            Some(HumanDuration(Duration::from_secs(14 * 86400)))
        );
        assert_eq!(cam.url.password.as_deref(), Some("s@cret"));
        assert_eq!(cam.url.username.as_deref(), Some("user"));
    }

    #[test]
    fn passwords_never_display() {
        let c = Config::parse(GOOD).unwrap();
        let shown = format!("{} {:?} {:?}", c.cameras[0].url, c.cameras[0].url, c);
        assert!(
            !shown.contains("s@cret") && !shown.contains("s%40cret"),
            "{shown}"
        );
        assert!(shown.contains("rtsp://user:***@127.0.0.1:8554/cam0"));
    }

    #[test]
    fn errors_name_the_field_and_line() {
        let bad = GOOD.replace("max_bytes = \"5GB\"", "max_bytes = \"5XB\"");
        let e = Config::parse(&bad).unwrap_err();
        assert!(
            e.starts_with("line 10:") && e.contains("unknown size unit"),
            "{e}"
        );
        let bad = GOOD.replace("rtsp://user", "http://user");
        let e = Config::parse(&bad).unwrap_err();
        assert!(e.starts_with("line 8:") && e.contains("rtsp://"), "{e}");
        let bad = GOOD.replace("max_age", "max_agee");
        let e = Config::parse(&bad).unwrap_err();
        assert!(e.contains("line 9") && e.contains("max_agee"), "{e}");
        let dup = format!("{GOOD}[[cameras]]\nname = \"gate\"\nurl = \"rtsp://h/x\"\n");
        let e = Config::parse(&dup).unwrap_err();
        assert!(
            e.contains("line 12") && e.contains("used twice (first on line 7)"),
            "{e}"
        );
    }

    #[test]
    fn motion_section_parses_and_validates() {
        let cfg = format!(
            "{GOOD}sub_url = \"rtsp://127.0.0.1:8554/cam0-sub\"\n[cameras.motion]\nenabled = true\nsensitivity = 70\nmasks = [[[0.5, 0.0], [1.0, 0.0], [1.0, 1.0]]]\n[[cameras.motion.zones]]\nname = \"door\"\npoints = [[0.0, 0.0], [0.5, 0.0], [0.5, 0.5]]\n"
        );
        let c = Config::parse(&cfg).unwrap();
        let cam = &c.cameras[0];
        assert!(cam.motion.enabled);
        assert_eq!(cam.motion.fps, 5.0);
        let s = cam.motion.settings();
        assert_eq!(
            (s.sensitivity, s.zones[0].name.as_str(), s.masks.len()),
            (70, "door", 1)
        );
        // The sub stream borrows the main stream's credentials.
        let sub = cam.sub_stream().unwrap();
        assert_eq!(
            (sub.username.as_deref(), sub.password.as_deref()),
            (Some("user"), Some("s@cret"))
        );
        let bad = cfg.replace("[0.5, 0.5]]", "[1.5, 0.5]]");
        let e = Config::parse(&bad).unwrap_err();
        assert!(e.contains("outside the image"), "{e}");
        let bad = cfg.replace("sensitivity = 70", "sensitivity = 0");
        assert!(
            Config::parse(&bad)
                .unwrap_err()
                .contains("between 1 and 100")
        );
        let bad = cfg.replace("name = \"door\"", "name = \"front door\"");
        assert!(Config::parse(&bad).unwrap_err().contains("zone name"));
        // Absent section: off.
        assert!(!Config::parse(GOOD).unwrap().cameras[0].motion.enabled);
    }

    #[test]
    fn the_readme_reference_parses() {
        let readme = include_str!("../../../README.md");
        let block = readme
            .split("## Configuration reference")
            .nth(1)
            .and_then(|r| r.split("```toml\n").nth(1))
            .and_then(|r| r.split("```").next())
            .expect("README has a toml block under Configuration reference");
        let c = Config::parse(block).unwrap_or_else(|e| panic!("README config: {e}"));
        let m = &c.cameras[0].motion;
        assert!(m.enabled);
        assert_eq!((m.zones.len(), m.masks.len()), (1, 1));
        assert!(
            c.cameras[0].sub_url.is_none(),
            "commented out in the README"
        );
        assert!(c.cloud.is_none(), "the cloud is off unless configured");
        // The commented-out [cloud] example, switched on, is valid too.
        let mut on = String::new();
        let mut in_cloud = false;
        for l in block.lines() {
            if l.starts_with("# [cloud]") {
                in_cloud = true;
            } else if in_cloud && !l.starts_with("# ") {
                in_cloud = false;
            }
            on += if in_cloud { &l[2..] } else { l };
            on.push('\n');
        }
        let c = Config::parse(&on).unwrap_or_else(|e| panic!("README [cloud]: {e}"));
        let cloud = c.cloud.expect("[cloud] switched on");
        assert_eq!(cloud.address.to_string(), "cloud.example.com:443");
        assert_eq!(cloud.sharing, candor_link::Sharing::Health);
        assert_eq!(cloud.proxy.map(|p| p.port), Some(3128));
    }

    #[test]
    fn cloud_addresses_parse_in_the_forms_people_type() {
        for (s, host, port) in [
            ("cloud.example.com", "cloud.example.com", 443),
            ("cloud.example.com:8443", "cloud.example.com", 8443),
            ("https://cloud.example.com/app", "cloud.example.com", 443),
            ("[2001:db8::1]:9000", "2001:db8::1", 9000),
            ("127.0.0.1:8443", "127.0.0.1", 8443),
        ] {
            let a = CloudAddress::parse(s, 443).unwrap();
            assert_eq!((a.host.as_str(), a.port), (host, port), "{s}");
        }
        assert!(CloudAddress::parse("https://user:pw@cloud.example.com", 443).is_err());
        assert!(CloudAddress::parse("", 443).is_err());
    }
}
