//! The JSON shapes Candor's recorder shows to the outside: the HTTP API,
//! the CLI's `--json`, and the event messages of MQTT, webhooks and the web
//! app's live feed. Each shape is one struct here, serialized by everyone
//! who sends it, so the copies can't disagree; the OpenAPI document's
//! schemas are generated from the same structs ([`schema`]).
//!
//! Times are RFC 3339 strings in UTC (`2026-11-27T10:00:00.000Z`), as
//! `candor_media::Time90k` prints them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A recorded event: motion or an object (Candor's detectors), or what a
/// camera reported over ONVIF (tamper, input).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    pub id: i64,
    pub camera: String,
    /// `motion`, `object`, `tamper`, `input`.
    pub kind: String,
    /// `motion` or `object` (Candor's detectors) or `onvif` (the camera said so).
    pub source: String,
    /// RFC 3339.
    pub start: String,
    /// RFC 3339; `null` while the event goes on.
    pub end: Option<String>,
    /// Motion: the largest share of the picture that moved, 0..1. Object:
    /// the best score the model gave it, 0..1.
    pub score: Option<f64>,
    /// The (first) zone entered, if zones are configured.
    pub zone: Option<String>,
    pub detail: Option<String>,
    /// A snapshot is stored (`GET /api/v1/events/{id}/snapshot.jpg`).
    pub snapshot: bool,
    /// Kept beyond retention.
    pub pinned: bool,
    /// Acknowledged from the cloud app: by whom …
    pub acked_by: Option<String>,
    /// … and when (RFC 3339).
    pub acked_at: Option<String>,
    /// Object events: `person`, `bicycle`, `car`, `motorcycle`, `bus`, `truck`.
    #[serde(default)]
    pub label: Option<String>,
    /// Object events: the best box, `[x, y, w, h]` in 0..1 of the picture.
    #[serde(rename = "box", default)]
    pub bbox: Option<[f64; 4]>,
    /// Object events: every zone the object entered (its box's bottom
    /// centre, where it stands, inside the zone).
    #[serde(default)]
    pub zones: Vec<String>,
}

/// What changed about an event, as MQTT, webhooks and the live feed say it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventPhase {
    /// The event began.
    New,
    /// Something was added to an ongoing event (its snapshot).
    Update,
    /// The event ended (`end` is set).
    End,
}

/// One event message: `{"type": "new"|"update"|"end", "event": {...},
/// "alarm": bool}`; object events add Frigate's `before` and `after`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventMessage {
    #[serde(rename = "type")]
    pub phase: EventPhase,
    pub event: Event,
    /// This event raises alarms (the cloud's push, webhooks): with object
    /// detection on, object events do and motion events don't, unless the
    /// camera says otherwise (`[cameras.objects] alarm`).
    #[serde(default)]
    pub alarm: bool,
    /// Object events, as Frigate's `frigate/events` says them, so that
    /// automations written for Frigate carry over (README, "Frigate users").
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub before: Option<FrigateEvent>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub after: Option<FrigateEvent>,
}

/// An object event in Frigate's words (the fields its automations read).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FrigateEvent {
    /// The Candor event id, as text (Frigate's ids are text).
    pub id: String,
    pub camera: String,
    pub label: String,
    /// This look's score, and the best so far.
    pub score: f64,
    pub top_score: f64,
    /// Unix seconds.
    pub start_time: f64,
    pub end_time: Option<f64>,
    /// When the frame this message describes arrived (Unix seconds): for a
    /// `new`, the frame that confirmed the object.
    pub frame_time: f64,
    /// The best box, `[x, y, w, h]` in 0..1 (Frigate gives pixels in
    /// `box`; Candor's stream sizes vary, so fractions).
    #[serde(rename = "box")]
    pub bbox: [f64; 4],
    pub current_zones: Vec<String>,
    pub entered_zones: Vec<String>,
    pub has_snapshot: bool,
    pub has_clip: bool,
    pub stationary: bool,
    pub false_positive: bool,
}

/// `GET /api/v1/events`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct EventList {
    pub events: Vec<Event>,
}

/// `PUT /api/v1/events/{id}/pin`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Pinned {
    pub id: i64,
    pub pinned: bool,
}

/// `GET /api/v1/cameras/{name}/outputs`: the camera's relay outputs.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct RelayOutputs {
    pub outputs: Vec<RelayOutput>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct RelayOutput {
    /// What `POST …/outputs` names it by.
    pub token: String,
    /// `Bistable` (stays as set) or `Monostable` (returns to idle by itself).
    pub mode: String,
    /// `open` or `closed` when inactive.
    pub idle_state: Option<String>,
}

/// `POST /api/v1/cameras/{name}/outputs`: the output as switched.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct RelaySwitched {
    pub token: String,
    pub active: bool,
}

/// A share link (`POST /api/v1/shares`, `GET /api/v1/shares`, and what
/// `GET /api/v1/share` tells its holder).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ShareLink {
    pub id: i64,
    /// `clip` or `live`.
    pub kind: String,
    pub camera: String,
    /// The clip's range, RFC 3339.
    pub from: Option<String>,
    pub to: Option<String>,
    pub note: String,
    pub created_by: String,
    pub created_at: String,
    pub expires_at: String,
    pub revoked_at: Option<String>,
    /// Times the link was opened.
    pub views: i64,
    /// `#share=<token>`, to append to the recorder's address: only in the
    /// answer that created it (the token is kept only as a hash).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ShareList {
    pub shares: Vec<ShareLink>,
}

/// A stretch of continuous footage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Span {
    /// RFC 3339.
    pub start: String,
    /// RFC 3339.
    pub end: String,
    pub seconds: f64,
}

impl Span {
    pub fn new(start: String, end: String, seconds: f64) -> Span {
        Span {
            start,
            end,
            seconds,
        }
    }
}

/// `GET /api/v1/cameras/{name}/spans`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct SpanList {
    pub spans: Vec<Span>,
    /// Exports ending at or before this instant are byte-for-byte stable
    /// (players seeking with Range requests rely on it); RFC 3339.
    pub settled_end: Option<String>,
}

/// `candor spans --json`: a camera's footage and the gaps between it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Spans {
    pub camera: String,
    pub spans: Vec<Span>,
    pub gaps: Vec<Span>,
}

/// One row of the egress ledger: something that left the site.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EgressEntry {
    pub id: i64,
    /// RFC 3339.
    pub at: String,
    /// Host:port it went to.
    pub destination: String,
    /// The message type (`status`, `alarm`, …), or `connect`/`disconnect`
    /// (a `disconnect` row counts the connection's TLS overhead).
    pub kind: String,
    /// Bytes on the wire for this row.
    pub bytes: u64,
    /// The message itself (JSON), or a description.
    pub summary: String,
}

/// `GET /api/v1/egress`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct EgressList {
    pub entries: Vec<EgressEntry>,
    /// Sum of `bytes` over `entries`.
    pub total_bytes: u64,
}

/// A camera as the recorder sees it now: its connection and its stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CameraLive {
    pub name: String,
    /// `connecting`, `streaming`, `reconnecting` or `stopped`.
    pub state: String,
    /// RFC 3339, while streaming.
    pub streaming_since: Option<String>,
    /// Why it is reconnecting.
    pub error: Option<String>,
    /// The last error, even after it recovered.
    pub last_error: Option<String>,
    pub reconnects: u64,
    /// `h264` or `h265`, once known.
    pub codec: Option<String>,
    /// Width and height in pixels, once known.
    pub resolution: Option<(u32, u32)>,
    /// Frames per second over the last few seconds.
    pub fps: Option<f64>,
    /// Bits per second over the last few seconds.
    pub bitrate: Option<f64>,
}

/// A camera in the camera list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Camera {
    #[serde(flatten)]
    pub live: CameraLive,
    pub frames_written: u64,
    pub bytes_written: u64,
}

/// `GET /api/v1/cameras`: the cameras the caller may see.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct CameraList {
    pub cameras: Vec<Camera>,
}

/// `POST /api/v1/login` (when no second factor is pending) and
/// `POST /api/v1/setup`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct SignedIn {
    pub username: String,
    /// `admin`, `operator` or `viewer`.
    pub role: String,
    /// Send it back as `X-CSRF-Token` on state changes (absent after setup:
    /// sign in next).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
}

/// `GET /api/v1/me`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Me {
    pub username: String,
    pub role: String,
    /// The cameras this caller may see; `null`: all of them.
    pub cameras: Option<Vec<String>>,
    /// TOTP is on for this user.
    pub totp: bool,
    /// For sessions; `null` for API tokens.
    pub csrf_token: Option<String>,
    /// This session's id (to tell it apart in the session list); `null` for tokens.
    pub session: Option<i64>,
    /// For a technician: what their grant covers, and until when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<MeGrant>,
}

/// A technician's grant, as `GET /api/v1/me` shows it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct MeGrant {
    pub id: i64,
    /// Of `config`, `diagnostics`, `live`, `playback`.
    pub scopes: Vec<String>,
    /// RFC 3339.
    pub expires_at: String,
}

/// A camera's motion detector, as the system page shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MotionStats {
    /// `off`, `starting`, `running`, or why it can't run.
    pub state: String,
    /// The analysed stream (`768x576 avc1…`), once known.
    pub stream: Option<String>,
    pub decoded: u64,
    pub analysed: u64,
    pub dropped: u64,
    /// Share of one core since start: the detector's cost (object
    /// detection's included).
    pub cpu_percent: f64,
    /// Object detection, when the camera has it on.
    #[serde(default)]
    pub objects: Option<ObjectStats>,
}

/// A camera's object detection, as the system page shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ObjectStats {
    /// `running`, or why it can't run (ONNX Runtime missing, say).
    pub state: String,
    /// Frames the model looked at, squares it analysed, and frames skipped
    /// because every inference session was busy.
    pub looks: u64,
    pub inferences: u64,
    pub skipped: u64,
    /// Inferences that failed.
    pub errors: u64,
    /// Detection works: wanted looks are done. While it doesn't (every
    /// session busy for 10 s, inference failing, no runtime), motion
    /// raises the camera's alarms.
    pub working: bool,
    /// Share of one core since start spent in the model.
    pub cpu_percent: f64,
}

/// A camera on the system page: its state, its footage and the forecast.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CameraSystem {
    #[serde(flatten)]
    pub live: CameraLive,
    /// Footage on disk.
    pub bytes: u64,
    pub segments: u64,
    /// The oldest footage kept, RFC 3339.
    pub oldest: Option<String>,
    /// Days from the oldest footage to now.
    pub days_kept: Option<f64>,
    pub write_errors: u64,
    pub motion: Option<MotionStats>,
    /// Bytes a day at the current rate.
    pub daily_bytes: Option<f64>,
    /// Days of footage the camera will keep at that rate …
    pub forecast_days: Option<f64>,
    /// … and the limit that decides it: `max_age`, `camera max_bytes`,
    /// `storage` or `none`.
    pub forecast_limit: String,
}

/// The store's use of its disk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StorageUse {
    pub path: String,
    pub used_bytes: u64,
    pub max_bytes: Option<u64>,
    pub disk_free_bytes: u64,
    pub disk_total_bytes: u64,
    /// `[storage] target_days`: days of footage the owner wants kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_days: Option<u32>,
}

/// Live view: viewers per camera and frame latency.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LiveStats {
    pub viewers: std::collections::BTreeMap<String, u64>,
    pub latency_p50_us: Option<u64>,
    pub latency_p99_us: Option<u64>,
}

/// `GET /api/v1/system`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct System {
    pub version: String,
    pub uptime_secs: u64,
    pub web_uptime_secs: u64,
    pub storage: StorageUse,
    pub cameras: Vec<CameraSystem>,
    pub live: LiveStats,
    /// The watchdog's last rollback of a new version (`candor supervise`),
    /// if there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rollback: Option<Rollback>,
    /// The last online update check (`[updates]`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_check: Option<UpdateCheck>,
    /// Installing from the online repository (`[updates]`), if configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_install: Option<UpdateInstall>,
}

/// An install from the online repository: asked for on the System page
/// (now or at a time), or due in the maintenance window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UpdateInstall {
    /// `idle`, `scheduled`, `downloading`, `installed` (the supervisor hands
    /// over to it within seconds) or `failed`.
    pub state: String,
    pub version: Option<String>,
    /// RFC 3339: when a scheduled install runs, or when it ended.
    pub at: Option<String>,
    /// Who asked for it (`maintenance window` for an automatic one).
    pub by: Option<String>,
    /// Downloaded so far, of `total`.
    pub bytes: u64,
    pub total: u64,
    /// Why it failed, for people.
    pub message: Option<String>,
    /// Whether this recorder can install at all: it is run by `candor
    /// supervise`, which hands over to a new version.
    pub supervised: bool,
    /// `[updates] window`: when releases install themselves (local time).
    pub window: Option<String>,
}

/// `GET /api/v1/system/update`: what the System page's update box shows
/// (also to a technician whose grant has only the maintenance scope).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UpdateStatus {
    /// The running version.
    pub version: String,
    pub update_check: Option<UpdateCheck>,
    /// Absent when `[updates]` is not configured.
    pub update_install: Option<UpdateInstall>,
}

/// `POST /api/v1/system/update`: install the release the last check found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    /// The version the System page offered (it must still be the one the
    /// repository offers this recorder).
    pub version: String,
    /// RFC 3339; absent: now. At most 30 days ahead.
    #[serde(default)]
    pub at: Option<String>,
}

/// What the last online update check found (`<data>/updates/available.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UpdateCheck {
    /// RFC 3339.
    pub checked_at: String,
    /// The release this recorder may install now, if any.
    pub available: Option<String>,
    /// Its release notes.
    pub notes: Option<String>,
    /// Up to date, waiting for its wave, or what went wrong.
    pub message: String,
}

/// A new version the watchdog replaced with the last good one
/// (`<data>/updates/last.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Rollback {
    /// RFC 3339.
    pub at: String,
    /// The version rolled back.
    pub from: String,
    /// The version running instead.
    pub to: String,
    /// What happened, for people.
    pub why: String,
}

/// A user, as the users page shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserInfo {
    pub name: String,
    /// `admin`, `operator` or `viewer`.
    pub role: String,
    /// The cameras they may see; `null`: every camera.
    pub cameras: Option<Vec<String>>,
    pub totp: bool,
    /// Unix seconds.
    pub created_at: i64,
}

/// `GET /api/v1/users`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct UserList {
    pub users: Vec<UserInfo>,
}

/// A signed-in session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionInfo {
    pub id: i64,
    pub user: String,
    /// Unix seconds.
    pub created_at: i64,
    pub expires_at: i64,
    /// Where it signed in from.
    pub ip: Option<String>,
    /// Signed in through the cloud's relay (remote access); `ip` is then
    /// the browser's address as the cloud reported it.
    pub remote: bool,
}

/// `GET /api/v1/sessions`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionInfo>,
    /// The caller's own session, if it is one.
    pub current: Option<i64>,
}

/// An API token (never its secret, which is shown once at creation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TokenInfo {
    pub id: i64,
    pub user: String,
    pub name: String,
    pub role: String,
    pub cameras: Option<Vec<String>>,
    /// Unix seconds.
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// `GET /api/v1/tokens`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

/// `POST /api/v1/tokens`: the token itself, shown this once.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct NewToken {
    pub id: i64,
    /// `cnd_…`; only its hash is kept.
    pub token: String,
    pub role: String,
    pub cameras: Option<Vec<String>>,
}

/// `POST /api/v1/users`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Created {
    pub name: String,
}

/// One line of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuditEntry {
    /// Unix seconds.
    pub at: i64,
    pub user: Option<String>,
    pub action: String,
    pub detail: String,
}

/// `GET /api/v1/audit`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct AuditList {
    pub entries: Vec<AuditEntry>,
}

/// `POST /api/v1/me/totp`: a new TOTP secret to enrol.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct TotpSecret {
    /// Base32, for typing into an app.
    pub secret: String,
    /// `otpauth://totp/…`.
    pub uri: String,
    /// The URI as a QR code, an SVG `data:` URL.
    pub qr: String,
}

/// `POST /api/v1/me/totp/confirm`: one-time recovery codes, shown once.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

/// `POST /api/v1/me/password`: this session goes on with a new CSRF token
/// (the others ended).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Csrf {
    pub csrf_token: String,
}

/// An ONVIF device that answered a WS-Discovery probe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Discovered {
    /// The device's stable identity (`urn:uuid:…`).
    pub endpoint: String,
    /// Device service URLs.
    pub xaddrs: Vec<String>,
    pub name: Option<String>,
    pub hardware: Option<String>,
}

/// `POST /api/v1/discover`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct DiscoveredList {
    pub cameras: Vec<Discovered>,
}

/// One media profile an ONVIF camera offers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OnvifProfile {
    pub token: String,
    pub name: String,
    /// `H264`, `H265`, `JPEG`, … as the camera says.
    pub encoding: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<f64>,
}

/// What an ONVIF camera says of itself, given its credentials
/// (`POST /api/v1/discover/describe`, `candor discover --user`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Description {
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
    /// The camera's clock minus ours, seconds.
    pub clock_offset_secs: i64,
    pub profiles: Vec<OnvifProfile>,
    /// RTSP URI of the main stream (most pixels) …
    pub main: Option<String>,
    /// … and of the sub stream.
    pub sub: Option<String>,
}

/// `candor discover --json`: a camera that answered, what it said of
/// itself when asked with credentials, or why it would not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DiscoveredCamera {
    #[serde(flatten)]
    pub found: Discovered,
    #[serde(flatten)]
    pub description: Option<Description>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A camera's motion settings (`GET /api/v1/cameras/{name}/motion`), as
/// the decimals they were written as.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MotionSettings {
    pub enabled: bool,
    pub fps: f64,
    pub sensitivity: u8,
    pub min_size: f64,
    /// `1500ms`.
    pub hold: String,
    pub zones: Vec<MotionZone>,
    /// Polygons ignored, in 0..1 image coordinates.
    pub masks: Vec<Vec<[f32; 2]>>,
}

/// A camera's object detection settings (`GET /api/v1/cameras/{name}/objects`),
/// in the shape of `[cameras.objects]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ObjectSettings {
    pub enabled: bool,
    /// `person`, `bicycle`, `car`, `motorcycle`, `bus`, `truck`.
    pub labels: Vec<String>,
    pub min_score: f64,
    pub threshold: f64,
    /// Per-label `min_score`.
    pub scores: std::collections::BTreeMap<String, f64>,
    pub fps: f64,
    /// `objects`, `motion` or `both`: what raises alarms.
    pub alarm: String,
    /// Motion zones that require labels for an alarm.
    pub zones: std::collections::BTreeMap<String, Vec<String>>,
}

/// A named polygon in 0..1 image coordinates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MotionZone {
    pub name: String,
    pub points: Vec<[f32; 2]>,
}

/// The first message of a live view WebSocket: what the fragments hold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LiveInit {
    /// Always `init`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `avc1.640028`, …
    pub codec: String,
    /// For `MediaSource.isTypeSupported`.
    pub mime: String,
    pub width: u16,
    pub height: u16,
    /// Unix milliseconds when the recorder received the first frame sent.
    pub first_frame_received_ms: u64,
}

/// `POST /api/v1/cameras`: the camera added (its URL with the password
/// hidden).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct CameraAdded {
    pub name: String,
    pub url: String,
}

/// `GET /api/v1/health`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    pub version: String,
}

/// The body of every API error (4xx, 5xx).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Error {
    /// Stable, for programs: `locked_out`, `scoped`, `too_large`, …
    pub code: String,
    /// For people: what went wrong and what to do.
    pub message: String,
}

/// The cloud app's shapes (`candor cloud`'s API and WebSocket).
pub mod cloud;

/// JSON Schemas for the OpenAPI document.
pub mod schema;

/// The version this program reports (a release's stamp, else the crate's).
pub mod version;
pub use version::version;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_message_has_the_documented_shape() {
        let m = EventMessage {
            phase: EventPhase::End,
            event: Event {
                id: 7,
                camera: "gate".into(),
                kind: "motion".into(),
                source: "motion".into(),
                start: "2026-11-27T10:00:00.000Z".into(),
                end: Some("2026-11-27T10:00:05.000Z".into()),
                score: Some(0.25),
                zone: None,
                detail: None,
                snapshot: true,
                pinned: false,
                acked_by: None,
                acked_at: None,
                label: None,
                bbox: None,
                zones: vec![],
            },
            alarm: true,
            before: None,
            after: None,
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["type"], "end");
        assert_eq!(v["alarm"], true);
        assert_eq!(v["event"]["camera"], "gate");
        assert!(v["event"]["zone"].is_null());
        assert!(v["event"]["box"].is_null());
        assert!(v.get("before").is_none() && v.get("after").is_none());
        let keys: Vec<&str> = v["event"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 16, "{keys:?}");
    }

    #[test]
    fn schemas_are_references_into_components() {
        let mut g = schema::responses();
        let r = schema::of::<EventList>(&mut g);
        assert_eq!(
            serde_json::to_value(&r).unwrap()["$ref"],
            "#/components/schemas/EventList"
        );
        let defs = g.take_definitions(true);
        assert!(
            defs.contains_key("Event") && defs.contains_key("EventList"),
            "{defs:?}"
        );
    }
}

/// One version of the recorder's config file (`GET /api/v1/config/versions`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ConfigVersion {
    pub id: i64,
    /// RFC 3339.
    pub at: String,
    /// Who made it; none for a hand edit or the recorder itself.
    pub user: Option<String>,
    /// `local`, `remote`, `technician`, `file` (a hand edit noticed at
    /// start), `cli` or `system` (an unconfirmed change reverted).
    pub origin: String,
    pub address: Option<String>,
    pub note: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ConfigVersions {
    /// Newest first.
    pub versions: Vec<ConfigVersion>,
    /// The version the file is now.
    pub current: i64,
    /// A change that reverts by itself unless confirmed.
    pub pending: Option<ConfigPending>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ConfigPending {
    pub version: i64,
    /// What it goes back to ([web] and [cloud] as in this version).
    pub previous: i64,
    /// RFC 3339: when it reverts.
    pub deadline: String,
}

/// `GET /api/v1/config/diff`: a unified diff, secrets shown as
/// `<secret:…>` fingerprints.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ConfigDiff {
    pub from: i64,
    pub to: i64,
    pub diff: String,
}

/// `GET /api/v1/config/text`: the config file, secrets redacted.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ConfigText {
    pub version: i64,
    pub text: String,
    /// The cameras in it, by name.
    pub cameras: Vec<String>,
}

/// What a config change did (rollback, text edit, camera change).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ConfigChanged {
    pub version: i64,
    /// Applied at once, in words.
    pub live: Vec<String>,
    /// Sections saved but used only after a restart.
    pub restart: Vec<String>,
    /// Set when the change could cut off access ([web], [cloud]): it
    /// reverts by itself unless confirmed (`POST /api/v1/config/confirm`)
    /// before this RFC 3339 time.
    pub confirm_by: Option<String>,
}

/// `GET /api/v1/cameras/{name}/config`: what "Change camera" edits. The
/// password is never sent; leave it out of the change to keep it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct CameraSettings {
    pub name: String,
    /// Without credentials.
    pub url: String,
    pub username: Option<String>,
    pub has_password: bool,
    pub sub_url: Option<String>,
    pub onvif: Option<String>,
}
