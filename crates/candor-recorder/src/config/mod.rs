//! The recorder's TOML configuration. Key names are a contract (see README).
//!
//! Validation happens while deserializing wherever possible, so that errors
//! carry the line and column of the offending value; the few cross-field
//! checks (duplicate camera names) use spans for the same effect.

use serde::Deserialize;
use serde::de::{self, Deserializer};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod values;
pub use values::{ByteSize, CameraName, CameraUrl, HumanDuration};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("can't read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// The config's version history (config_history.rs) failed.
    #[error("{0}")]
    History(#[from] crate::config_history::HistoryError),
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
    /// Object detection's runtime; cameras turn it on in `[cameras.objects]`.
    #[serde(default)]
    pub objects: ObjectsRuntimeConfig,
    /// Online update checks (docs/design/updates.md). Absent (the default):
    /// no update connection at all.
    pub updates: Option<UpdatesConfig>,
}

/// `[updates]`: where the signed release repository is online.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpdatesConfig {
    /// The repository's URL (http or https), holding `metadata/` and `targets/`.
    pub repository: String,
    /// The trusted root.json (absolute path). Default: the root built into
    /// this binary (official builds); a build without one needs it.
    pub root: Option<PathBuf>,
    /// PEM roots the repository's HTTPS must chain to (default: public roots).
    pub ca: Option<PathBuf>,
    /// How often to check: 1 min to 7 days (6 h).
    #[serde(default = "default_check_every")]
    pub check_every: HumanDuration,
    /// `"HH:MM-HH:MM"`, the recorder's local time (may cross midnight):
    /// a release whose turn has come installs itself in this window (when
    /// run by `candor supervise`). Absent: only when an admin asks.
    pub window: Option<String>,
}

fn default_check_every() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(6 * 3600))
}

/// `[objects]`: what runs object detection (docs/design/objects.md).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ObjectsRuntimeConfig {
    /// ONNX Runtime's shared library (`libonnxruntime.so.1.x`, from the
    /// PyPI wheel), an absolute path; checked before it is loaded.
    pub runtime: Option<PathBuf>,
    /// Inferences at once, each on one core: default one fewer than the
    /// cores (at least 1), so detection never takes every core from
    /// recording. 1 to 64.
    #[serde(default, deserialize_with = "threads")]
    pub threads: Option<usize>,
}

impl ObjectsRuntimeConfig {
    pub fn threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get().saturating_sub(1))
                .unwrap_or(1)
                .max(1)
        })
    }
}

fn threads<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let v = usize::deserialize(d)?;
    if !(1..=64).contains(&v) {
        return Err(de::Error::custom(
            "[objects] threads must be between 1 and 64",
        ));
    }
    Ok(Some(v))
}

/// `[cameras.objects]`: person and vehicle detection on this camera,
/// where its motion detector sees motion.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ObjectsConfig {
    #[serde(default)]
    pub enabled: bool,
    /// What to detect: `person`, `bicycle`, `car`, `motorcycle`, `bus`, `truck`.
    #[serde(default = "default_labels", deserialize_with = "labels")]
    pub labels: Vec<candor_detect::Label>,
    /// The least score (0..1) a detection needs to count.
    #[serde(default = "default_min_score", deserialize_with = "score")]
    pub min_score: f32,
    /// The median of an object's recent scores must reach this before it
    /// is an event (as Frigate's `threshold`): one lucky frame of a tree
    /// that looks like a person is not enough.
    #[serde(default = "default_threshold", deserialize_with = "score")]
    pub threshold: f32,
    /// Per-label overrides of `min_score`, e.g. `{ car = 0.7 }`.
    #[serde(default, deserialize_with = "label_scores")]
    pub scores: Vec<(candor_detect::Label, f32)>,
    /// Analysed frames per second at most (no more than motion's).
    #[serde(default = "default_objects_fps", deserialize_with = "objects_fps")]
    pub fps: f32,
    /// What raises alarms (the cloud's push, webhooks) on this camera:
    /// `objects` (the default when detection is on), `motion`, or `both`.
    #[serde(default)]
    pub alarm: AlarmOn,
    /// Zones (of `[cameras.motion]`) that require labels: an object event
    /// raises an alarm only if it entered one of these zones with one of
    /// its labels, e.g. `{ door = ["person"] }`. Empty: every object event
    /// raises one.
    #[serde(default, deserialize_with = "zone_labels")]
    pub zones: Vec<(String, Vec<candor_detect::Label>)>,
}

impl Default for ObjectsConfig {
    fn default() -> Self {
        ObjectsConfig {
            enabled: false,
            labels: default_labels(),
            min_score: default_min_score(),
            threshold: default_threshold(),
            scores: Vec::new(),
            fps: default_objects_fps(),
            alarm: AlarmOn::default(),
            zones: Vec::new(),
        }
    }
}

impl ObjectsConfig {
    /// The least score for `label`.
    pub fn min_score_of(&self, label: candor_detect::Label) -> f32 {
        self.scores
            .iter()
            .find(|(l, _)| *l == label)
            .map_or(self.min_score, |(_, s)| *s)
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AlarmOn {
    #[default]
    Objects,
    Motion,
    Both,
}

fn default_labels() -> Vec<candor_detect::Label> {
    candor_detect::Label::ALL.to_vec()
}
fn default_min_score() -> f32 {
    0.5
}
fn default_threshold() -> f32 {
    0.7
}
fn default_objects_fps() -> f32 {
    3.0
}

fn label<E: de::Error>(s: &str) -> Result<candor_detect::Label, E> {
    candor_detect::Label::from_name(s).ok_or_else(|| {
        E::custom(format!(
            "unknown label {s:?}: the labels are {}",
            candor_detect::Label::ALL.map(|l| l.name()).join(", ")
        ))
    })
}

fn labels<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<candor_detect::Label>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    let mut out = Vec::new();
    for n in &names {
        let l = label(n)?;
        if !out.contains(&l) {
            out.push(l);
        }
    }
    if out.is_empty() {
        return Err(de::Error::custom(
            "objects.labels must name at least one label",
        ));
    }
    Ok(out)
}

fn check_score<E: de::Error>(v: f32) -> Result<f32, E> {
    if !(0.05..=0.99).contains(&v) {
        return Err(E::custom("an objects score must be between 0.05 and 0.99"));
    }
    Ok(v)
}

fn score<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    check_score(f32::deserialize(d)?)
}

fn label_scores<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<(candor_detect::Label, f32)>, D::Error> {
    let m = std::collections::BTreeMap::<String, f32>::deserialize(d)?;
    m.iter()
        .map(|(k, v)| Ok((label(k)?, check_score(*v)?)))
        .collect()
}

fn zone_labels<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<(String, Vec<candor_detect::Label>)>, D::Error> {
    let m = std::collections::BTreeMap::<String, Vec<String>>::deserialize(d)?;
    m.iter()
        .map(|(zone, names)| {
            let ls = names
                .iter()
                .map(|n| label(n))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((zone.clone(), ls))
        })
        .collect()
}

fn objects_fps<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    let v = f32::deserialize(d)?;
    if !(0.5..=10.0).contains(&v) {
        return Err(de::Error::custom("objects fps must be between 0.5 and 10"));
    }
    Ok(v)
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
    /// Remote access through the cloud (docs/design/remote.md): browsers
    /// reach this recorder's own web app at an address the cloud gives,
    /// end-to-end encrypted. Off until an admin switches it on.
    #[serde(default)]
    pub remote_access: bool,
    /// Who must use two-factor sign-in to sign in remotely: `admins` (the
    /// default), `everyone` or `nobody`. A password alone then works only
    /// on the local network.
    #[serde(default)]
    pub remote_2fa: Remote2fa,
    /// The ACME (RFC 8555) directory the remote-access certificate comes
    /// from, validated by DNS-01 through the cloud's DNS; the recorder makes
    /// its key and keeps it. `off`: keep the self-signed certificate.
    #[serde(default = "default_acme_directory")]
    pub acme_directory: AcmeDirectory,
    /// PEM roots the ACME server's HTTPS must chain to, for a private CA;
    /// the public roots when absent.
    pub acme_ca: Option<PathBuf>,
    /// The CA's CAA issuer domain. The remote name's CAA record then lets
    /// only this recorder's ACME account obtain certificates for it, by
    /// DNS-01 only (RFC 8657). `letsencrypt.org` for Let's Encrypt's
    /// directory, none for others unless set; `off` for none.
    pub acme_caa: Option<String>,
}

pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

fn default_acme_directory() -> AcmeDirectory {
    AcmeDirectory(Some(LETS_ENCRYPT.into()))
}

/// An `https://` ACME directory URL, or `off` (`None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcmeDirectory(pub Option<String>);

impl<'de> Deserialize<'de> for AcmeDirectory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "off" {
            return Ok(AcmeDirectory(None));
        }
        let u =
            url::Url::parse(&s).map_err(|e| de::Error::custom(format!("acme_directory: {e}")))?;
        if u.scheme() != "https" || u.host_str().is_none() || !u.username().is_empty() {
            return Err(de::Error::custom(
                "acme_directory must be an https:// URL (an ACME directory) or \"off\"",
            ));
        }
        Ok(AcmeDirectory(Some(s)))
    }
}

impl CloudConfig {
    /// The CAA issuer to bind the remote name to, if any.
    pub fn caa_issuer(&self) -> Option<String> {
        match self.acme_caa.as_deref() {
            Some("off") => None,
            Some(d) => Some(d.to_ascii_lowercase()),
            None if self.acme_directory.0.as_deref() == Some(LETS_ENCRYPT) => {
                Some("letsencrypt.org".into())
            }
            None => None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Remote2fa {
    #[default]
    Admins,
    Everyone,
    Nobody,
}

impl Remote2fa {
    /// Whether a remote sign-in by someone with this role needs 2FA.
    pub fn required(self, admin: bool) -> bool {
        match self {
            Remote2fa::Admins => admin,
            Remote2fa::Everyone => true,
            Remote2fa::Nobody => false,
        }
    }
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
    /// Days of footage the owner wants kept (1 to 3650): shown against what
    /// is kept, and in an installer's fleet view. A target, not a limit:
    /// retention still follows `max_bytes`, `min_free` and `max_age`.
    #[serde(default, deserialize_with = "target_days")]
    pub target_days: Option<u32>,
}

fn target_days<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let v = u32::deserialize(d)?;
    if !(1..=3650).contains(&v) {
        return Err(de::Error::custom("target_days must be between 1 and 3650"));
    }
    Ok(Some(v))
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
    /// Person and vehicle detection where there is motion.
    #[serde(default)]
    pub objects: ObjectsConfig,
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

impl CameraConfig {
    /// Object detection needs motion (it looks where motion is), and its
    /// zones must be motion's.
    pub fn check_objects(&self) -> Result<(), String> {
        let name = &self.name.get_ref().0;
        if self.objects.enabled && !self.motion.enabled {
            return Err(format!(
                "camera {name:?}: objects need motion detection: set [cameras.motion] enabled = true (object detection looks where there is motion)"
            ));
        }
        for (zone, labels) in &self.objects.zones {
            if !self.motion.zones.iter().any(|z| &z.name.0 == zone) {
                return Err(format!(
                    "camera {name:?}: objects.zones names {zone:?}, which is not a zone of [cameras.motion]"
                ));
            }
            // A rule no object can meet would silence the camera's alarms.
            if labels.is_empty() {
                return Err(format!(
                    "camera {name:?}: objects.zones.{zone} lists no label (remove the zone from objects.zones instead)"
                ));
            }
            if !labels.iter().any(|l| self.objects.labels.contains(l)) {
                return Err(format!(
                    "camera {name:?}: objects.zones.{zone} requires only labels that are not in objects.labels (none would ever be detected)"
                ));
            }
        }
        Ok(())
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
        let (cloud_ca, acme_ca) = match cfg.cloud.as_mut() {
            Some(c) => (c.ca.as_mut(), c.acme_ca.as_mut()),
            None => (None, None),
        };
        for p in [
            Some(&mut cfg.storage.path),
            cfg.web.cert.as_mut(),
            cfg.web.key.as_mut(),
            cloud_ca,
            acme_ca,
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

    /// Whether `[cloud] ca`, if set, holds certificates. Not part of
    /// [`Config::load`]: a wrong file must stop the cloud link, never the
    /// recording or the commands that read footage (`candor run` says so at
    /// start and records; `candor check` fails).
    pub fn check_cloud_ca(&self) -> Result<(), String> {
        match self.cloud.as_ref().and_then(|c| c.ca.as_deref()) {
            Some(ca) => crate::cloud::trust_roots(Some(ca), "[cloud] ca").map(|_| ()),
            None => Ok(()),
        }
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
        if let Some(issuer) = cfg.cloud.as_ref().and_then(CloudConfig::caa_issuer) {
            let ok = issuer.len() <= 253
                && issuer.split('.').all(|l| {
                    (1..=63).contains(&l.len())
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !ok {
                return Err(format!(
                    "[cloud] acme_caa: {issuer:?} is not a CA's issuer domain (like letsencrypt.org), nor \"off\""
                ));
            }
        }
        if let Some(rt) = &cfg.objects.runtime
            && !rt.is_absolute()
        {
            return Err(format!(
                "[objects] runtime must be an absolute path (it is code the recorder loads), not {}",
                rt.display()
            ));
        }
        if let Some(u) = &cfg.updates {
            // No credentials in it: error messages and logs name the URL.
            let ok = url::Url::parse(&u.repository).is_ok_and(|r| {
                matches!(r.scheme(), "http" | "https")
                    && r.host().is_some()
                    && r.username().is_empty()
                    && r.password().is_none()
            });
            if !ok {
                return Err(format!(
                    "[updates] repository must be an http:// or https:// URL without a user or password, not {:?}",
                    u.repository
                ));
            }
            match &u.root {
                Some(r) if !r.is_absolute() => {
                    return Err(
                        "[updates] root must be an absolute path to the release keys' root.json"
                            .into(),
                    );
                }
                None if candor_update::built_in_root().is_none() => {
                    return Err(
                        "[updates] root is needed: this build has no release root built in (official builds carry the project's)"
                            .into(),
                    );
                }
                _ => {}
            }
            if u.ca.as_ref().is_some_and(|c| !c.is_absolute()) {
                return Err("[updates] ca must be an absolute path to a PEM file".into());
            }
            if let Some(w) = &u.window {
                crate::updates::Window::parse(w)?;
            }
            let every = u.check_every.0.as_secs();
            if !(60..=7 * 86400).contains(&every) {
                return Err("[updates] check_every must be 1m to 7d".into());
            }
        }
        let mut seen = std::collections::HashMap::new();
        for c in &cfg.cameras {
            c.check_objects()?;
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
mod tests;
