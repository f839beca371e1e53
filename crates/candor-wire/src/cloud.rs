//! The cloud app's shapes (`candor cloud`'s API, WebSocket and Web Push).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A paired site as its owner sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Site {
    pub id: String,
    pub name: String,
    /// `online_only`, `health` or `health_and_events`: the recorder's choice.
    pub sharing: String,
    /// RFC 3339.
    pub paired_at: String,
    pub online: bool,
    /// Online or offline since, RFC 3339.
    pub since: String,
    /// The recorder's last status message, as far as its sharing level allows.
    pub status: Option<serde_json::Value>,
    /// Where its own web app opens through this cloud (end-to-end
    /// encrypted), when its recorder allows remote access.
    pub remote: Option<String>,
}

/// `GET /api/sites`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct SiteList {
    pub sites: Vec<Site>,
}

/// An alarm a recorder raised.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Alarm {
    pub site: String,
    pub site_name: String,
    /// The recorder's outbox id: unique per site.
    pub id: i64,
    /// When it happened at the site, RFC 3339.
    pub at: String,
    /// Delivered after a link outage.
    pub late: bool,
    /// Only at `health_and_events` without private alarms.
    pub camera: Option<String>,
    pub kind: Option<String>,
    pub acked_by: Option<String>,
    /// The recorder recorded the acknowledgement.
    pub ack_recorded: bool,
    /// When the cloud received it, RFC 3339.
    pub received: String,
}

/// `GET /api/alarms`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct AlarmList {
    pub alarms: Vec<Alarm>,
}

/// A message on the cloud app's WebSocket, for the account's own sites.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Notice {
    /// A site changed (paired, online, offline, new status).
    Site { site: Site },
    /// A new alarm.
    Alarm { alarm: Alarm },
    /// Someone on this account acknowledged an alarm.
    Ack { site: String, id: i64, by: String },
    /// The recorder recorded the acknowledgement.
    AckRecorded { site: String, id: i64 },
    /// The site was unpaired.
    Unpaired { site: String },
}

/// Sign-up, sign-in and `GET /api/me`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Account {
    pub email: String,
    /// For state changes (`X-CSRF-Token`), once signed in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf: Option<String>,
    /// TOTP is on (`GET /api/me` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totp: Option<bool>,
}

/// `POST /api/totp/begin`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct TotpSecret {
    pub secret: String,
    pub uri: String,
}

/// `POST /api/pair`: the claim on a recorder's code, and the digits to
/// compare with the recorder's screen.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Claim {
    pub claim: String,
    /// The name the recorder gave.
    pub recorder: String,
    pub confirmation: String,
}

/// `GET /api/pair/{claim}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ClaimState {
    /// The recorder's admin confirmed: the site exists.
    Paired { site: String },
    /// Waiting for the recorder's admin.
    Waiting { confirmation: String },
    /// Expired, cancelled, or not this account's.
    Gone,
}

/// What a Web Push notification carries (encrypted to the device; the
/// push service sees none of it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PushPayload {
    /// `Alarm at <site>`.
    pub title: String,
    /// `<kind> on <camera>`, or that details stay on the recorder.
    pub body: String,
    pub site: String,
    /// The alarm's id at the site.
    pub alarm: i64,
    pub at: String,
    pub late: bool,
    /// What a tap opens: the event on the recorder itself, through remote
    /// access (`https://<label>.<zone>/#alarm=<id>`), when it is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `access` for a technician's request, arrival or departure (then
    /// `alarm` is 0 and `url` opens the recorder's Access page); absent
    /// for an alarm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl PushPayload {
    /// Only what the recorder shared: with private alarms, the site and
    /// the time.
    pub fn of(alarm: &Alarm) -> PushPayload {
        PushPayload {
            title: format!("Alarm at {}", alarm.site_name),
            body: match (&alarm.camera, &alarm.kind) {
                (Some(c), Some(k)) => format!("{k} on {c}"),
                _ => "Details stay on the recorder.".into(),
            },
            site: alarm.site.clone(),
            alarm: alarm.id,
            at: alarm.at.clone(),
            late: alarm.late,
            url: None,
            kind: None,
        }
    }
}

/// An answer that only says what happened (`202 Accepted`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Said {
    pub message: String,
}
