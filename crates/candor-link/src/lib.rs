//! The recorder–cloud link protocol (see `docs/design/cloud.md`).
//!
//! One TLS connection, opened by the recorder, carries frames:
//!
//! ```text
//! version u8 (= 1) | kind u8 | stream u32 BE | length u32 BE | payload
//! ```
//!
//! - `kind` 0, stream 0: a control message, JSON ([`Message`]). JSON rather
//!   than a binary encoding so that the egress ledger can show the owner
//!   exactly what left the site, field by field.
//! - `kind` 1–3: open, data and close of a multiplexed byte stream (the
//!   end-to-end encrypted remote access of the next roadmap item rides here;
//!   the cloud sees only ciphertext).
//! - `kind` 4: credit, a u32 BE count of bytes the sender may now send more
//!   on that stream (flow control per stream: [`mux`]).
//!
//! Every frame is size-limited before any allocation, every message is
//! validated while decoding (unknown fields and types are errors), and the
//! decoder is fuzzed. Nothing here does I/O, except [`tunnel`] (feature
//! `io`), the tokio shell both ends use to carry streams.

pub mod dial;
#[cfg(feature = "tls")]
pub mod identity;
pub mod mux;
#[cfg(feature = "io")]
pub mod tunnel;

use serde::{Deserialize, Serialize};

pub const VERSION: u8 = 1;
/// Control messages: status and alarms are small; 64 KiB leaves room.
pub const MAX_CONTROL: u32 = 64 * 1024;
/// Stream data frames.
pub const MAX_DATA: u32 = 256 * 1024;
const HEADER: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Control = 0,
    Open = 1,
    Data = 2,
    Close = 3,
    Credit = 4,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    #[error("protocol version {0} is not supported (this side speaks {VERSION})")]
    Version(u8),
    #[error("unknown frame kind {0}")]
    Kind(u8),
    #[error("{kind:?} frame of {len} bytes exceeds the limit of {max}")]
    TooLarge { kind: Kind, len: u32, max: u32 },
    #[error("control frames use stream 0, data frames another (got {0})")]
    Stream(u32),
    #[error("invalid control message: {0}")]
    Message(String),
    #[error("an empty data frame (stream {0}): it carries nothing and would cost a queue entry")]
    Empty(u32),
    #[error("a credit frame holds 4 bytes (got {0})")]
    Credit(u32),
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    Control(Message),
    Open {
        stream: u32,
        payload: Vec<u8>,
    },
    Data {
        stream: u32,
        payload: bytes::Bytes,
    },
    Close {
        stream: u32,
    },
    /// The receiver drained `bytes` of the stream: the sender may send
    /// that much more.
    Credit {
        stream: u32,
        bytes: u32,
    },
}

/// How much of the site the owner shares with the cloud. The recorder
/// enforces it: it never sends what the level excludes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sharing {
    /// Online or offline, nothing else.
    OnlineOnly,
    /// Also camera, recording and disk health.
    Health,
    /// Also event details (camera, kind) in alarms.
    HealthAndEvents,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraHealth {
    pub name: String,
    pub streaming: bool,
    pub recording: bool,
}

/// A CAA `issue` property (RFC 8659) binding a name to one ACME account
/// (RFC 8657 `accounturi`), with DNS-01 as the only validation method.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Caa {
    /// The CA's issuer domain, e.g. `letsencrypt.org`.
    pub issuer: String,
    /// The recorder's ACME account URL.
    pub account: String,
}

/// A technician's grant as the recorder reports it to the cloud, and as
/// the cloud (which only mirrors it, for the installer's fleet view) may
/// quote it back. The recorder's own store decides; a quote that differs
/// from it is refused and audited (docs/design/installers.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantNote {
    /// The recorder's grant id.
    pub id: u64,
    pub technician: String,
    pub org: String,
    /// Of `config`, `diagnostics`, `live`, `playback`. Which cameras a
    /// video grant covers stays on the recorder: camera names are not the
    /// cloud's below the `health` sharing level.
    pub scopes: Vec<String>,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Grants per message: a recorder has one grant in force per technician,
/// and an owner has no reason to let more than a few work at once.
pub const MAX_GRANTS: usize = 50;

/// What the owner is told about technicians' access (a push to their phone).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessEvent {
    /// A technician's request waits for the owner on the Access page.
    RequestWaiting,
    /// A technician signed in under a grant for the first time.
    Started,
    /// A grant ended: expired or revoked.
    Ended,
}

/// Why the cloud refused a recorder, as a code the recorder branches on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The site was unpaired (in the cloud app, or by the recorder): its key
    /// is refused for good. The recorder forgets its pairing.
    Unpaired,
    /// Too many recorders pairing from one address; try again later.
    Busy,
    /// The pairing confirmation code did not match.
    CodeMismatch,
    /// The recorder sent something the cloud does not accept at this point.
    Protocol,
    /// Anything else: refusals from a cloud that sent no code, and codes
    /// this recorder does not know yet (a newer cloud's).
    #[default]
    #[serde(other)]
    Other,
}

/// Control messages, both directions. `type` names the variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Message {
    // Recorder → cloud.
    Hello {
        proto: u8,
        software: String,
        sharing: Sharing,
        /// Remote access is switched on: the cloud may open streams. Left
        /// out when off, so clouds from before remote access accept it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        remote: bool,
    },
    Status {
        seq: u64,
        /// Present only when sharing ≥ health.
        cameras: Option<Vec<CameraHealth>>,
        disk_used_percent: Option<f32>,
        footage_days: Option<f32>,
        last_event_at: Option<String>,
        /// The owner's footage target (`[storage] target_days`), when set
        /// and sharing ≥ health. Left out otherwise, as is `certificate`:
        /// clouds from before them accept a status without them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        footage_target_days: Option<u32>,
        /// Trouble with the remote-access certificate, in words (failing
        /// to renew, or expiring soon); absent when there is none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        certificate: Option<String>,
    },
    /// Each alarm once: `id` is the recorder's, for exactly-once delivery
    /// across reconnects; `late` when it waited in the queue for the link.
    Alarm {
        id: u64,
        at: String,
        late: bool,
        /// Present only when sharing = health_and_events.
        camera: Option<String>,
        kind: Option<String>,
    },
    AckRecorded {
        alarm: u64,
    },
    Pong {
        nonce: u64,
    },
    /// An admin started pairing on the recorder: the cloud answers with a
    /// one-time code. The connection's client key is the one being paired.
    PairStart {
        name: String,
    },
    /// The admin compared the confirmation code on both screens and confirmed
    /// it; `confirmation` is the recorder's own computation, which the cloud
    /// checks against its own.
    PairConfirm {
        confirmation: String,
    },
    /// Unpair: final. The cloud deletes the site and refuses this key.
    Unpair {},
    /// The technicians' grants in force that answer the cloud's requests
    /// (those the owner made for a technician who asked here stay off
    /// the cloud), whole, on each connection and on each change.
    Grants {
        /// Counts up with each list this recorder sends; the cloud answers
        /// `grants_stored` with it and quotes it back with the list.
        generation: u64,
        grants: Vec<GrantNote>,
    },
    /// Tell the owner, on their phone, about a technician's access.
    AccessNotice {
        event: AccessEvent,
        technician: String,
        org: String,
    },
    /// Publish this ACME DNS-01 answer at `_acme-challenge.<name>` (empty:
    /// remove it) and, when given, this CAA record at `<name>`, where
    /// `<name>` is the remote name the cloud gave this recorder on this link:
    /// a recorder can ask for nothing about any other name.
    AcmeDns {
        txt: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caa: Option<Caa>,
    },
    // Cloud → recorder.
    PairCode {
        code: String,
        expires_in: u32,
    },
    /// An owner entered the code: `account` is who claims this recorder and
    /// `nonce` the claim's random part, both bound into the confirmation code.
    PairClaimed {
        account: String,
        nonce: String,
    },
    Paired {
        site: String,
    },
    /// Why the cloud is closing the connection: `code` for the recorder to
    /// act on, `reason` for people (logged and shown, never parsed).
    Refused {
        #[serde(default)]
        code: Refusal,
        reason: String,
    },
    Welcome {
        site: String,
    },
    /// The cloud stored the alarm: the recorder may drop it from its queue.
    AlarmStored {
        alarm: u64,
    },
    /// The owner acknowledged an alarm in the app.
    Acknowledge {
        alarm: u64,
        by: String,
    },
    /// A request only: the recorder asks its owner locally before applying it.
    SharingRequest {
        sharing: Sharing,
    },
    /// The grants the cloud's mirror holds for this site, quoted once per
    /// connection after the welcome. They grant nothing: the recorder
    /// compares them with its own and audits every difference, so a cloud
    /// whose records were changed shows itself.
    GrantClaims {
        /// The generation of the list, as the recorder numbered it.
        generation: u64,
        grants: Vec<GrantNote>,
    },
    /// The cloud stored the recorder's list of this generation: a later
    /// quote of an older one is a replay, not a mirror lagging behind.
    GrantsStored {
        generation: u64,
    },
    /// A technician of a linked installer asks for access. A request only:
    /// the recorder shows it to its admin, who grants (or not) on the
    /// recorder; nothing the cloud sends makes a grant
    /// (docs/design/installers.md).
    AccessRequest {
        technician: String,
        org: String,
        /// Of `config`, `diagnostics`, `live`, `playback`.
        scopes: Vec<String>,
        /// Cameras for video; absent: all.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cameras: Option<Vec<String>>,
        hours: u32,
        reason: String,
    },
    Ping {
        nonce: u64,
    },
    /// The answer to a hello with remote access on: browsers reach this
    /// recorder at `https://{host}:{port}/`, through the cloud. Sent only
    /// then, so recorders from before remote access never see it.
    Remote {
        host: String,
        port: u16,
        /// The cloud serves the name's DNS and publishes `acme_dns`
        /// requests: the recorder may obtain a certificate by ACME DNS-01.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        acme: bool,
    },
    /// The answer to `acme_dns`: served by the zone from now on, or why not.
    AcmeDnsDone {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A browser for this recorder waits at the cloud: open a data
    /// connection to the cloud ([`dial`]) that starts with this token, and
    /// serve the browser on it. Sent only on a link whose TLS settled on
    /// [`ALPN_DIAL`].
    Dial {
        /// [`dial::TOKEN_LEN`] lowercase hex digits, single use.
        token: String,
        /// The browser's address as the cloud saw it.
        client: String,
    },
}

impl Message {
    /// Whether only the cloud may send this message. Each side refuses the
    /// other side's messages: the recorder acts only on this short list.
    pub fn from_cloud(&self) -> bool {
        matches!(
            self,
            Message::Welcome { .. }
                | Message::AlarmStored { .. }
                | Message::Acknowledge { .. }
                | Message::SharingRequest { .. }
                | Message::AccessRequest { .. }
                | Message::GrantClaims { .. }
                | Message::GrantsStored { .. }
                | Message::Ping { .. }
                | Message::PairCode { .. }
                | Message::PairClaimed { .. }
                | Message::Paired { .. }
                | Message::Refused { .. }
                | Message::Remote { .. }
                | Message::AcmeDnsDone { .. }
                | Message::Dial { .. }
        )
    }

    /// The `type` tag, for logs and the egress ledger.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "hello",
            Message::Status { .. } => "status",
            Message::Alarm { .. } => "alarm",
            Message::AckRecorded { .. } => "ack_recorded",
            Message::Pong { .. } => "pong",
            Message::PairStart { .. } => "pair_start",
            Message::PairConfirm { .. } => "pair_confirm",
            Message::Unpair {} => "unpair",
            Message::Welcome { .. } => "welcome",
            Message::AlarmStored { .. } => "alarm_stored",
            Message::Acknowledge { .. } => "acknowledge",
            Message::SharingRequest { .. } => "sharing_request",
            Message::AccessRequest { .. } => "access_request",
            Message::GrantClaims { .. } => "grant_claims",
            Message::GrantsStored { .. } => "grants_stored",
            Message::Grants { .. } => "grants",
            Message::AccessNotice { .. } => "access_notice",
            Message::Ping { .. } => "ping",
            Message::Remote { .. } => "remote",
            Message::Dial { .. } => "dial",
            Message::AcmeDns { .. } => "acme_dns",
            Message::AcmeDnsDone { .. } => "acme_dns_done",
            Message::PairCode { .. } => "pair_code",
            Message::PairClaimed { .. } => "pair_claimed",
            Message::Paired { .. } => "paired",
            Message::Refused { .. } => "refused",
        }
    }

    /// The limits a peer checks while decoding, checked before sending.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Message::Hello {
                proto, software, ..
            } => {
                if *proto != VERSION {
                    return Err(format!("proto {proto}"));
                }
                short("software", software, 64)
            }
            Message::Status {
                cameras,
                disk_used_percent,
                footage_days,
                last_event_at,
                footage_target_days,
                certificate,
                ..
            } => {
                if footage_target_days.is_some_and(|d| !(1..=3650).contains(&d)) {
                    return Err("footage_target_days: 1 to 3650".into());
                }
                if let Some(c) = certificate {
                    short("certificate", c, 200)?;
                    if c.chars().any(char::is_control) {
                        return Err("certificate: no control characters".into());
                    }
                }
                if let Some(c) = cameras {
                    if c.len() > 1024 {
                        return Err("more than 1024 cameras".into());
                    }
                    for cam in c {
                        short("camera name", &cam.name, 64)?;
                    }
                }
                for v in [disk_used_percent, footage_days].into_iter().flatten() {
                    if !v.is_finite() || *v < 0.0 {
                        return Err("a figure is negative or not a number".into());
                    }
                }
                short("last_event_at", last_event_at.as_deref().unwrap_or(""), 40)
            }
            Message::Alarm {
                at, camera, kind, ..
            } => {
                short("at", at, 40)?;
                short("camera", camera.as_deref().unwrap_or(""), 64)?;
                short("kind", kind.as_deref().unwrap_or(""), 32)
            }
            Message::Welcome { site } | Message::Paired { site } => short("site", site, 64),
            Message::PairStart { name } => short("name", name, 64),
            Message::AccessRequest {
                technician,
                org,
                scopes,
                cameras,
                hours,
                reason,
            } => {
                technician_and_org(technician, org)?;
                short("reason", reason, 500)?;
                if reason.chars().any(unsafe_text) {
                    return Err("reason: no control or formatting characters".into());
                }
                scopes_and_cameras(scopes, cameras.as_deref())?;
                if ![1, 2, 4, 8, 24].contains(hours) {
                    return Err("hours: 1, 2, 4, 8 or 24".into());
                }
                Ok(())
            }
            Message::Grants { grants, .. } | Message::GrantClaims { grants, .. } => {
                if grants.len() > MAX_GRANTS {
                    return Err(format!("more than {MAX_GRANTS} grants"));
                }
                for g in grants {
                    technician_and_org(&g.technician, &g.org)?;
                    scopes_and_cameras(&g.scopes, None)?;
                }
                Ok(())
            }
            Message::AccessNotice {
                technician, org, ..
            } => technician_and_org(technician, org),
            Message::PairConfirm { confirmation } => short("confirmation", confirmation, 16),
            Message::PairCode { code, .. } => short("code", code, 16),
            Message::PairClaimed { account, nonce } => {
                short("account", account, 128)?;
                short("nonce", nonce, 64)
            }
            Message::Refused { reason, .. } => short("reason", reason, 256),
            Message::Acknowledge { by, .. } => short("by", by, 128),
            Message::Dial { token, client } => {
                if !dial::is_token(token) {
                    return Err("token is not 64 lowercase hex digits".into());
                }
                short("client", client, dial::MAX_CLIENT)
            }
            Message::Remote { host, .. } => {
                if dns_name(host) {
                    Ok(())
                } else {
                    Err("host is not a lowercase DNS name".into())
                }
            }
            Message::AcmeDns { txt, caa } => {
                // A DNS-01 value is a base64url SHA-256: 43 characters.
                if txt.len() > 2 {
                    return Err("more than 2 TXT values".into());
                }
                for t in txt {
                    if t.len() != 43
                        || !t
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    {
                        return Err("a TXT value is not a DNS-01 answer".into());
                    }
                }
                if let Some(c) = caa {
                    if !dns_name(&c.issuer) {
                        return Err("CAA issuer is not a lowercase DNS name".into());
                    }
                    // Printable, and nothing that ends or quotes a CAA parameter.
                    let ok = c.account.len() <= 128
                        && c.account.starts_with("https://")
                        && c.account
                            .bytes()
                            .all(|b| (0x21..0x7f).contains(&b) && !b";\"\\".contains(&b));
                    if !ok {
                        return Err("CAA account is not an https URL".into());
                    }
                }
                Ok(())
            }
            Message::AcmeDnsDone { error } => {
                let e = error.as_deref().unwrap_or("");
                // Logged and shown by the recorder: no forged log lines.
                if e.chars().any(char::is_control) {
                    return Err("error holds control characters".into());
                }
                short("error", e, 256)
            }
            _ => Ok(()),
        }
    }
}

fn short(what: &str, s: &str, max: usize) -> Result<(), String> {
    if s.len() > max {
        Err(format!("{what} longer than {max} bytes"))
    } else {
        Ok(())
    }
}

/// A technician's sign-in name on the recorder, and their company as text
/// for its pages and logs: no line breaks or other control characters.
fn technician_and_org(technician: &str, org: &str) -> Result<(), String> {
    short("technician", technician, 64)?;
    short("org", org, 64)?;
    if technician.is_empty()
        || !technician
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
    {
        return Err("technician: letters, digits, '.', '_', '-' or '@'".into());
    }
    if org.chars().any(unsafe_text) {
        return Err("org: no control or formatting characters".into());
    }
    Ok(())
}

/// Characters that would let text shown in pages, logs and notifications
/// pass for something else: control characters, line and paragraph
/// separators, and invisible formatting (bidirectional overrides and
/// isolates, zero-width characters, the soft hyphen).
pub fn unsafe_text(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

fn scopes_and_cameras(scopes: &[String], cameras: Option<&[String]>) -> Result<(), String> {
    if scopes.is_empty() || scopes.len() > 5 {
        return Err("scopes: 1 to 5".into());
    }
    for sc in scopes {
        if !["config", "diagnostics", "live", "playback", "maintenance"].contains(&sc.as_str()) {
            return Err(format!("unknown scope {sc:?}"));
        }
    }
    if let Some(c) = cameras {
        if c.len() > 64 {
            return Err("at most 64 cameras".into());
        }
        for name in c {
            short("camera", name, 64)?;
        }
    }
    Ok(())
}

/// A lowercase DNS name without a trailing dot (as names are compared).
fn dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

fn header(kind: Kind, stream: u32, len: usize) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0] = VERSION;
    h[1] = kind as u8;
    h[2..6].copy_from_slice(&stream.to_be_bytes());
    h[6..10].copy_from_slice(&(len as u32).to_be_bytes());
    h
}

/// Encodes a frame. Errors if it would exceed the limits the peer enforces.
pub fn encode(frame: &Frame) -> Result<Vec<u8>, LinkError> {
    let mut out = Vec::new();
    encode_into(frame, &mut out)?;
    Ok(out)
}

/// Appends a frame's encoding to `out` (the link's writer batches frames in
/// one buffer); on error `out` is unchanged.
pub fn encode_into(frame: &Frame, out: &mut Vec<u8>) -> Result<(), LinkError> {
    let json;
    let credit;
    let (kind, stream, payload): (Kind, u32, &[u8]) = match frame {
        Frame::Control(m) => {
            m.validate().map_err(LinkError::Message)?;
            json = serde_json::to_vec(m).map_err(|e| LinkError::Message(e.to_string()))?;
            (Kind::Control, 0, &json)
        }
        Frame::Open { stream, payload } => (Kind::Open, *stream, payload),
        Frame::Data { stream, payload } => (Kind::Data, *stream, &payload[..]),
        Frame::Close { stream } => (Kind::Close, *stream, &[]),
        Frame::Credit { stream, bytes } => {
            credit = bytes.to_be_bytes();
            (Kind::Credit, *stream, &credit)
        }
    };
    check(kind, stream, payload.len() as u64)?;
    out.reserve(HEADER + payload.len());
    out.extend_from_slice(&header(kind, stream, payload.len()));
    out.extend_from_slice(payload);
    Ok(())
}

fn check(kind: Kind, stream: u32, len: u64) -> Result<(), LinkError> {
    let max = if kind == Kind::Control {
        MAX_CONTROL
    } else {
        MAX_DATA
    };
    if len > u64::from(max) {
        return Err(LinkError::TooLarge {
            kind,
            len: len.min(u64::from(u32::MAX)) as u32,
            max,
        });
    }
    if (kind == Kind::Control) != (stream == 0) {
        return Err(LinkError::Stream(stream));
    }
    if kind == Kind::Credit && len != 4 {
        return Err(LinkError::Credit(len.min(u64::from(u32::MAX)) as u32));
    }
    if kind == Kind::Data && len == 0 {
        return Err(LinkError::Empty(stream));
    }
    Ok(())
}

/// Incremental decoder: feed bytes as they arrive, take whole frames out.
/// An error is final: the connection must be closed (the peer is broken or
/// hostile, and resynchronising a byte stream is guesswork).
#[derive(Default)]
pub struct Decoder {
    buf: bytes::BytesMut,
    /// The size of the allocation `buf` lives in: every allocation is made
    /// here, never by `BytesMut` growing on its own, so this is known.
    alloc: usize,
}

/// Bytes a new read buffer of the decoder has room for.
pub const READ: usize = 32 * 1024;
/// Below this much room a read gets a new buffer.
pub const READ_FLOOR: usize = 4 * 1024;

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Makes room for `n` more bytes: a new buffer, holding the partial
    /// frame the old one ended with, when the old one is full. Frames
    /// already taken keep the old one alive while they are in use.
    fn room(&mut self, n: usize) {
        let len = self.buf.len();
        if self.buf.capacity() - len >= n {
            return;
        }
        // The rest of a frame whose header is in, but no more than has
        // arrived of it (a header alone reserves no whole frame), and at
        // least as much as has arrived: a frame trickled in a byte at a
        // time is copied into new buffers a logarithmic number of times,
        // not once per read.
        let rest = if len >= HEADER {
            let size = u32::from_be_bytes([self.buf[6], self.buf[7], self.buf[8], self.buf[9]]);
            (HEADER + size.min(MAX_DATA.max(MAX_CONTROL)) as usize).saturating_sub(len)
        } else {
            0
        };
        let free = n.max(READ).max(rest.min(len.max(READ)));
        let mut b = bytes::BytesMut::with_capacity(len + free);
        b.extend_from_slice(&self.buf);
        self.alloc = b.capacity();
        self.buf = b;
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.room(bytes.len());
        self.buf.extend_from_slice(bytes);
    }

    /// The buffer to read the next bytes into directly (`read_buf`): one
    /// copy fewer than [`Self::push`]. It has room for at least
    /// [`READ_FLOOR`] bytes (and [`READ`] when it is new), so a read into it
    /// never grows it.
    pub fn read_room(&mut self) -> &mut bytes::BytesMut {
        self.room(READ_FLOOR);
        &mut self.buf
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, LinkError> {
        if self.buf.len() < HEADER {
            return Ok(None);
        }
        if self.buf[0] != VERSION {
            return Err(LinkError::Version(self.buf[0]));
        }
        let kind = match self.buf[1] {
            0 => Kind::Control,
            1 => Kind::Open,
            2 => Kind::Data,
            3 => Kind::Close,
            4 => Kind::Credit,
            k => return Err(LinkError::Kind(k)),
        };
        let stream = u32::from_be_bytes([self.buf[2], self.buf[3], self.buf[4], self.buf[5]]);
        let len = u32::from_be_bytes([self.buf[6], self.buf[7], self.buf[8], self.buf[9]]);
        // Limits before waiting for (or allocating) the payload.
        check(kind, stream, u64::from(len))?;
        let total = HEADER + len as usize;
        if self.buf.len() < total {
            return Ok(None);
        }
        let mut frame = self.buf.split_to(total);
        let payload = frame.split_off(HEADER);
        Ok(Some(match kind {
            Kind::Control => {
                let m: Message = serde_json::from_slice(&payload)
                    .map_err(|e| LinkError::Message(e.to_string()))?;
                m.validate().map_err(LinkError::Message)?;
                Frame::Control(m)
            }
            Kind::Open => Frame::Open {
                stream,
                payload: payload.to_vec(),
            },
            // A payload of at least a quarter of the buffer it was read into
            // is a slice of that buffer, not a copy (the relay's bulk: 16
            // KiB chunks in 32–48 KiB reads). A shorter one is copied out,
            // so what a slice keeps alive is at most 4× its own length and
            // a peer sending tiny frames to a stalled stream pins no more
            // than 4× the stream's window.
            Kind::Data => Frame::Data {
                stream,
                payload: if payload.len() * 4 >= self.alloc {
                    payload.freeze()
                } else {
                    bytes::Bytes::copy_from_slice(&payload)
                },
            },
            Kind::Close => Frame::Close { stream },
            Kind::Credit => Frame::Credit {
                stream,
                bytes: u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]),
            },
        }))
    }
}

/// ALPN protocol id of the link, so the cloud serves its web app and the
/// link on one TLS port.
pub const ALPN: &[u8] = b"candor-link/1";

/// The same link, from a recorder that also takes [`Message::Dial`]: a
/// recorder offers it before [`ALPN`], and a cloud that knows it picks it
/// (an older one picks [`ALPN`] and opens streams over the link), so
/// neither side ever sees a message or field it doesn't know.
pub const ALPN_DIAL: &[u8] = b"candor-link/1+dial";

/// The 6-digit confirmation code both screens show while pairing. It binds
/// the one-time code, the recorder's public key, the claiming account and the
/// claim's nonce: if anyone substituted any of them (a thief who read the
/// code, or a cloud swapping keys), the two screens differ.
pub fn confirmation(code: &str, recorder_key: &[u8], account: &str, nonce: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"candor-pair-v1");
    for part in [
        code.as_bytes(),
        recorder_key,
        account.as_bytes(),
        nonce.as_bytes(),
    ] {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part);
    }
    let d = h.finalize();
    let n = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) % 1_000_000;
    format!("{n:06}")
}

/// The fuzz entry point: any bytes, in any split, must decode or fail cleanly.
pub fn fuzz_decode(data: &[u8]) {
    let mut d = Decoder::new();
    let cut = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    d.push(&data[..cut]);
    while let Ok(Some(_)) = d.next_frame() {}
    d.push(&data[cut..]);
    while let Ok(Some(f)) = d.next_frame() {
        // What decodes must re-encode.
        let _ = encode(&f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm() -> Message {
        Message::Alarm {
            id: 7,
            at: "2026-11-28T04:00:00Z".into(),
            late: false,
            camera: Some("gate".into()),
            kind: Some("motion".into()),
        }
    }

    #[test]
    fn big_data_payloads_are_slices_of_the_read_and_small_ones_copies() {
        let mut wire = encode(&Frame::Data {
            stream: 3,
            payload: vec![1; CHUNK_FOR_TEST].into(),
        })
        .unwrap();
        wire.extend(
            encode(&Frame::Data {
                stream: 3,
                payload: vec![2; 100].into(),
            })
            .unwrap(),
        );
        let mut d = Decoder::new();
        let room = d.read_room();
        assert!(room.capacity() - room.len() >= READ);
        room.extend_from_slice(&wire);
        let base = room.as_ptr() as usize;
        let Some(Frame::Data { payload: big, .. }) = d.next_frame().unwrap() else {
            panic!("a data frame");
        };
        let Some(Frame::Data { payload: small, .. }) = d.next_frame().unwrap() else {
            panic!("a data frame");
        };
        assert_eq!((big.len(), small.len()), (CHUNK_FOR_TEST, 100));
        assert_eq!(
            big.as_ptr() as usize,
            base + HEADER,
            "the big one is not copied"
        );
        let in_read = base..base + READ + wire.len();
        assert!(
            !in_read.contains(&(small.as_ptr() as usize)),
            "a small payload must not keep the read buffer alive"
        );
        assert!(small.iter().all(|&b| b == 2) && big.iter().all(|&b| b == 1));
        // The buffer is never grown in place under a slice: a new read gets
        // a new buffer, and the frame that straddles them arrives whole.
        let mut d = Decoder::new();
        let third = encode(&Frame::Data {
            stream: 5,
            payload: vec![7; 20_000].into(),
        })
        .unwrap();
        let all = [wire.clone(), wire.clone(), third].concat();
        let mut got = Vec::new();
        let mut rest = &all[..];
        while !rest.is_empty() {
            let room = d.read_room();
            let free = room.capacity() - room.len();
            assert!(free >= READ_FLOOR);
            let k = free.min(rest.len()).min(READ - 7);
            room.extend_from_slice(&rest[..k]);
            rest = &rest[k..];
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        let lens: Vec<usize> = got
            .iter()
            .map(|f| match f {
                Frame::Data { payload, .. } => payload.len(),
                _ => 0,
            })
            .collect();
        assert_eq!(lens, [CHUNK_FOR_TEST, 100, CHUNK_FOR_TEST, 100, 20_000]);
    }

    const CHUNK_FOR_TEST: usize = 16 * 1024;

    #[test]
    fn a_frame_trickled_a_byte_at_a_time_is_not_copied_once_per_byte() {
        let wire = encode(&Frame::Data {
            stream: 3,
            payload: vec![9; MAX_DATA as usize].into(),
        })
        .unwrap();
        let mut d = Decoder::new();
        let mut buffers = 0;
        let mut last = 0;
        for b in &wire {
            let room = d.read_room();
            if room.as_ptr() as usize != last {
                buffers += 1;
                last = room.as_ptr() as usize;
            }
            room.extend_from_slice(&[*b]);
        }
        let Some(Frame::Data { payload, .. }) = d.next_frame().unwrap() else {
            panic!("the frame");
        };
        assert_eq!(payload.len(), MAX_DATA as usize);
        assert!(buffers <= 8, "{buffers} buffers for one frame");
    }

    #[test]
    fn an_empty_data_frame_is_a_protocol_error() {
        let mut wire = vec![VERSION, 2];
        wire.extend_from_slice(&3u32.to_be_bytes());
        wire.extend_from_slice(&0u32.to_be_bytes());
        let mut d = Decoder::new();
        d.push(&wire);
        assert_eq!(d.next_frame(), Err(LinkError::Empty(3)));
        assert!(
            encode(&Frame::Data {
                stream: 3,
                payload: bytes::Bytes::new()
            })
            .is_err()
        );
    }

    #[test]
    fn frames_round_trip_in_any_split() {
        let frames = vec![
            Frame::Control(Message::Hello {
                proto: 1,
                software: "candor 0.1".into(),
                sharing: Sharing::Health,
                remote: true,
            }),
            Frame::Control(alarm()),
            Frame::Open {
                stream: 3,
                payload: b"sni:site.example".to_vec(),
            },
            Frame::Data {
                stream: 3,
                payload: vec![0xAB; 70_000].into(),
            },
            Frame::Close { stream: 3 },
        ];
        let wire: Vec<u8> = frames.iter().flat_map(|f| encode(f).unwrap()).collect();
        for step in [1, 7, 10, 4096, wire.len()] {
            let mut d = Decoder::new();
            let mut got = Vec::new();
            for chunk in wire.chunks(step) {
                d.push(chunk);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, frames, "split every {step} bytes");
        }
    }

    #[test]
    fn control_messages_are_plain_json_the_ledger_can_show() {
        let w = encode(&Frame::Control(alarm())).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&w[HEADER..]).unwrap();
        assert_eq!(json["type"], "alarm");
        assert_eq!(json["camera"], "gate");
    }

    /// The recorder acts on the code, never on the wording: a reason that
    /// says "unpaired" without the code is just another refusal.
    #[test]
    fn a_refusal_carries_a_code_and_text_is_only_text() {
        let decode = |json: &str| {
            let mut d = Decoder::new();
            d.push(&header(Kind::Control, 0, json.len()));
            d.push(json.as_bytes());
            match d.next_frame().unwrap() {
                Some(Frame::Control(Message::Refused { code, .. })) => code,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            decode(r#"{"type":"refused","code":"unpaired","reason":"x"}"#),
            Refusal::Unpaired
        );
        assert_eq!(
            decode(r#"{"type":"refused","reason":"unpaired"}"#),
            Refusal::Other
        );
        assert_eq!(
            decode(r#"{"type":"refused","code":"some_future_code","reason":"x"}"#),
            Refusal::Other
        );
        let m = Message::Refused {
            code: Refusal::Busy,
            reason: "later".into(),
        };
        let bytes = encode(&Frame::Control(m)).unwrap();
        assert!(String::from_utf8_lossy(&bytes).contains(r#""code":"busy""#));
    }

    #[test]
    fn limits_and_types_are_enforced_before_the_payload_arrives() {
        let mut d = Decoder::new();
        d.push(&header(Kind::Control, 0, 10 * 1024 * 1024));
        assert!(matches!(d.next_frame(), Err(LinkError::TooLarge { .. })));
        let mut d = Decoder::new();
        d.push(&[2, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(d.next_frame().unwrap_err(), LinkError::Version(2));
        let mut d = Decoder::new();
        d.push(&header(Kind::Data, 0, 1));
        assert_eq!(d.next_frame().unwrap_err(), LinkError::Stream(0));
        // Unknown message types and fields are refused, not ignored.
        for json in [
            r#"{"type":"run_shell","cmd":"id"}"#,
            r#"{"type":"ping","nonce":1,"extra":true}"#,
        ] {
            let mut d = Decoder::new();
            d.push(&header(Kind::Control, 0, json.len()));
            d.push(json.as_bytes());
            assert!(
                matches!(d.next_frame(), Err(LinkError::Message(_))),
                "{json}"
            );
        }
        // Values are validated too.
        let long = Message::Welcome {
            site: "x".repeat(65),
        };
        assert!(encode(&Frame::Control(long)).is_err());
    }

    #[test]
    fn confirmation_binds_every_part() {
        let base = confirmation("ABCDE12345", &[1; 32], "owner@example.com", "n1");
        assert_eq!(base.len(), 6);
        assert_eq!(
            base,
            confirmation("ABCDE12345", &[1; 32], "owner@example.com", "n1")
        );
        for other in [
            confirmation("ABCDE12346", &[1; 32], "owner@example.com", "n1"),
            confirmation("ABCDE12345", &[2; 32], "owner@example.com", "n1"),
            confirmation("ABCDE12345", &[1; 32], "thief@example.com", "n1"),
            confirmation("ABCDE12345", &[1; 32], "owner@example.com", "n2"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn each_side_has_its_own_messages() {
        assert!(Message::Ping { nonce: 1 }.from_cloud());
        assert!(!alarm().from_cloud());
        assert!(!Message::Unpair {}.from_cloud());
    }

    #[test]
    fn grants_go_from_the_recorder_quotes_from_the_cloud_both_bounded() {
        let note = |id| GrantNote {
            id,
            technician: "bob@acme".into(),
            org: "ACME".into(),
            scopes: vec!["config".into()],
            expires_at: 1,
        };
        let report = Message::Grants {
            generation: 1,
            grants: vec![note(1)],
        };
        let quote = Message::GrantClaims {
            generation: 1,
            grants: vec![note(1)],
        };
        assert!(!report.from_cloud() && quote.from_cloud());
        assert!(report.validate().is_ok() && quote.validate().is_ok());
        assert!(Message::GrantsStored { generation: 1 }.from_cloud());
        let many = Message::GrantClaims {
            generation: 1,
            grants: (0..=MAX_GRANTS as u64).map(note).collect(),
        };
        assert!(many.validate().is_err());
        for bad in [
            GrantNote {
                scopes: vec!["root".into()],
                ..note(1)
            },
            GrantNote {
                technician: "bob\nforged".into(),
                ..note(1)
            },
            GrantNote {
                org: "a\u{7}".into(),
                ..note(1)
            },
            // Text that would pass for other text in pages and logs.
            GrantNote {
                org: "ACME\u{202E}ytiruceS".into(),
                ..note(1)
            },
            GrantNote {
                org: "ACME\u{2028}forged".into(),
                ..note(1)
            },
            GrantNote {
                org: "AC\u{200B}ME".into(),
                ..note(1)
            },
        ] {
            let m = Message::Grants {
                generation: 1,
                grants: vec![bad],
            };
            assert!(m.validate().is_err(), "{m:?}");
        }
        let notice = Message::AccessNotice {
            event: AccessEvent::RequestWaiting,
            technician: "bob@acme".into(),
            org: "ACME".into(),
        };
        assert!(!notice.from_cloud() && notice.validate().is_ok());
        let json = serde_json::to_string(&notice).unwrap();
        assert!(json.contains(r#""event":"request_waiting""#), "{json}");
    }

    #[test]
    fn an_access_request_is_bounded_and_only_a_request() {
        let ok = || Message::AccessRequest {
            technician: "bob@acme".into(),
            org: "ACME".into(),
            scopes: vec!["config".into()],
            cameras: None,
            hours: 1,
            reason: "fix it".into(),
        };
        assert!(ok().from_cloud() && ok().validate().is_ok());
        let json = serde_json::to_string(&ok()).unwrap();
        assert!(json.contains(r#""type":"access_request""#), "{json}");
        let bad: [fn(&mut Message); 8] = [
            |m| {
                if let Message::AccessRequest { hours, .. } = m {
                    *hours = 3
                }
            },
            |m| {
                if let Message::AccessRequest { scopes, .. } = m {
                    scopes.clear()
                }
            },
            |m| {
                if let Message::AccessRequest { scopes, .. } = m {
                    scopes[0] = "admin".into()
                }
            },
            |m| {
                if let Message::AccessRequest { technician, .. } = m {
                    *technician = "x".repeat(65)
                }
            },
            |m| {
                if let Message::AccessRequest { reason, .. } = m {
                    *reason = "r".repeat(501)
                }
            },
            |m| {
                if let Message::AccessRequest { cameras, .. } = m {
                    *cameras = Some(vec!["c".into(); 65])
                }
            },
            |m| {
                if let Message::AccessRequest { technician, .. } = m {
                    *technician = "bob\n2026 admin logged in".into()
                }
            },
            |m| {
                if let Message::AccessRequest { reason, .. } = m {
                    *reason = "line\nforged".into()
                }
            },
        ];
        for (i, f) in bad.iter().enumerate() {
            let mut m = ok();
            f(&mut m);
            assert!(m.validate().is_err(), "case {i} accepted");
        }
    }

    #[test]
    fn remote_access_is_invisible_to_peers_from_before_it() {
        let hello = |remote| Message::Hello {
            proto: VERSION,
            software: "candor".into(),
            sharing: Sharing::Health,
            remote,
        };
        // Off: the hello an older cloud knows, field for field.
        let off =
            String::from_utf8(encode(&Frame::Control(hello(false))).unwrap()[HEADER..].to_vec())
                .unwrap();
        assert_eq!(
            off,
            r#"{"type":"hello","proto":1,"software":"candor","sharing":"health"}"#
        );
        let on = encode(&Frame::Control(hello(true))).unwrap();
        let mut d = Decoder::new();
        d.push(&on);
        assert_eq!(d.next_frame().unwrap(), Some(Frame::Control(hello(true))));
        let remote = |host: &str| Message::Remote {
            host: host.into(),
            port: 443,
            acme: false,
        };
        assert!(remote("k3x9q2ab.remote.example.com").validate().is_ok());
        for bad in ["", "UPPER.example", "a..b", "spa ce.x", "x.example.com."] {
            assert!(remote(bad).validate().is_err(), "{bad}");
        }
        assert!(remote("a.b").from_cloud());
    }

    #[test]
    fn acme_dns_carries_only_a_challenge_answer_and_an_account_binding() {
        let caa = |account: &str| Caa {
            issuer: "letsencrypt.org".into(),
            account: account.into(),
        };
        let m = |txt: Vec<&str>, c: Option<Caa>| Message::AcmeDns {
            txt: txt.into_iter().map(String::from).collect(),
            caa: c,
        };
        let answer = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";
        assert!(
            m(vec![answer], Some(caa("https://ca.example/acct/1")))
                .validate()
                .is_ok()
        );
        assert!(m(vec![], None).validate().is_ok());
        assert!(m(vec![answer; 3], None).validate().is_err());
        assert!(m(vec!["short"], None).validate().is_err());
        assert!(
            m(vec!["LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX\""], None)
                .validate()
                .is_err()
        );
        for bad in [
            "http://ca/acct",
            "https://ca/a;validationmethods=http-01",
            "https://ca/a b",
            "https://ca/\"x",
        ] {
            assert!(m(vec![], Some(caa(bad))).validate().is_err(), "{bad}");
        }
        let mut bad_issuer = caa("https://ca.example/acct/1");
        bad_issuer.issuer = "Evil; x=y".into();
        assert!(m(vec![], Some(bad_issuer)).validate().is_err());
        let long = format!("https://ca.example/{}", "a".repeat(120));
        assert!(
            m(vec![], Some(caa(&long))).validate().is_err(),
            "128 bytes at most"
        );
        assert!(!m(vec![], None).from_cloud());
        let forged = Message::AcmeDnsDone {
            error: Some("no\nINFO forged line".into()),
        };
        assert!(forged.validate().is_err());
        assert!(Message::AcmeDnsDone { error: None }.from_cloud());
    }

    #[test]
    fn sharing_levels_order() {
        assert!(
            Sharing::OnlineOnly < Sharing::Health && Sharing::Health < Sharing::HealthAndEvents
        );
    }

    #[test]
    fn fuzz_entry_survives_mutations() {
        let mut wire: Vec<u8> = encode(&Frame::Control(alarm())).unwrap();
        wire.extend(
            encode(&Frame::Data {
                stream: 9,
                payload: vec![1; 100].into(),
            })
            .unwrap(),
        );
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..5000 {
            let mut m = wire.clone();
            for _ in 0..1 + (s % 4) {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let i = (s as usize) % m.len();
                match s % 3 {
                    0 => m[i] ^= 1 << (s % 8),
                    1 => m.truncate(i),
                    _ => m.insert(i, s as u8),
                }
                if m.is_empty() {
                    break;
                }
            }
            fuzz_decode(&m);
        }
    }
}
