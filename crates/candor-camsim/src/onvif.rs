//! ONVIF for the simulator: device and media services per simulated camera
//! over HTTP (`/onvif/cam<i>/device_service`, `…/media_service`), checking
//! WS-Security digests the way cameras do, and a WS-Discovery responder, so
//! discovery and stream lookup are testable without a real camera.

use crate::Source;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use candor_onvif::{soap, xml};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub struct OnvifConfig {
    pub username: String,
    pub password: String,
    /// Seconds added to this machine's clock to get the camera's: cameras'
    /// clocks are often wrong, and clients must correct for it.
    pub clock_offset_secs: i64,
    pub cameras: usize,
    /// `rtsp://host:port` of the RTSP side.
    pub rtsp_base: String,
}

struct Shared {
    cfg: OnvifConfig,
    http: SocketAddr,
    source: Arc<Source>,
    seen_nonces: Mutex<HashSet<Vec<u8>>>,
    /// Per camera: notifications waiting for the next PullMessages.
    queues: Vec<(
        Mutex<std::collections::VecDeque<String>>,
        tokio::sync::Notify,
    )>,
    /// Per camera: its relay outputs ([`RELAYS`]) and whether each is active.
    relays: Vec<Mutex<std::collections::BTreeMap<&'static str, bool>>>,
}

/// Each simulated camera's relay outputs: (token, mode, idle state).
pub const RELAYS: [(&str, &str, &str); 2] = [
    ("siren", "Bistable", "open"),
    ("gate", "Bistable", "closed"),
];

pub struct OnvifSim {
    pub http: SocketAddr,
    pub discovery: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Camera-side events the simulator can raise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimEvent {
    Motion,
    Tamper,
    Input,
}

impl SimEvent {
    fn parse(s: &str) -> Option<SimEvent> {
        match s {
            "motion" => Some(SimEvent::Motion),
            "tamper" => Some(SimEvent::Tamper),
            "input" => Some(SimEvent::Input),
            _ => None,
        }
    }
}

fn raise(s: &Shared, camera: usize, ev: SimEvent, on: bool) -> bool {
    let Some((q, n)) = s.queues.get(camera) else {
        return false;
    };
    let (topic, source, item) = match ev {
        SimEvent::Motion => (
            "tns1:RuleEngine/CellMotionDetector/Motion",
            r#"<tt:SimpleItem Name="VideoSourceConfigurationToken" Value="vsc0"/><tt:SimpleItem Name="Rule" Value="MotionRule"/>"#,
            "IsMotion",
        ),
        SimEvent::Tamper => (
            "tns1:VideoSource/GlobalSceneChange/ImagingService",
            r#"<tt:SimpleItem Name="Source" Value="vs0"/>"#,
            "State",
        ),
        SimEvent::Input => (
            "tns1:Device/Trigger/DigitalInput",
            r#"<tt:SimpleItem Name="InputToken" Value="1"/>"#,
            "LogicalState",
        ),
    };
    let t = now_secs() + s.cfg.clock_offset_secs;
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let r = t.rem_euclid(86_400);
    let utc = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        r / 3600,
        r % 3600 / 60,
        r % 60
    );
    q.lock().unwrap_or_else(|e| e.into_inner()).push_back(format!(
        r#"<wsnt:NotificationMessage><wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">{topic}</wsnt:Topic><wsnt:Message><tt:Message UtcTime="{utc}" PropertyOperation="Changed"><tt:Source>{source}</tt:Source><tt:Data><tt:SimpleItem Name="{item}" Value="{on}"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>"#
    ));
    n.notify_waiters();
    n.notify_one();
    true
}

impl Drop for OnvifSim {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

use candor_media::time::unix_secs as now_secs;

impl OnvifSim {
    /// Serves HTTP on `http` and answers WS-Discovery probes on UDP `discovery`.
    pub async fn start(
        http: SocketAddr,
        discovery: SocketAddr,
        cfg: OnvifConfig,
        source: Arc<Source>,
    ) -> std::io::Result<OnvifSim> {
        let listener = tokio::net::TcpListener::bind(http).await?;
        let http = listener.local_addr()?;
        let udp = tokio::net::UdpSocket::bind(discovery).await?;
        let discovery = udp.local_addr()?;
        let cfg_cameras = cfg.cameras;
        let queues = (0..cfg.cameras)
            .map(|_| (Mutex::new(Default::default()), tokio::sync::Notify::new()))
            .collect();
        let shared = Arc::new(Shared {
            cfg,
            http,
            source,
            seen_nonces: Mutex::new(HashSet::new()),
            queues,
            relays: (0..cfg_cameras)
                .map(|_| Mutex::new(RELAYS.iter().map(|r| (r.0, false)).collect()))
                .collect(),
        });
        let app = axum::Router::new()
            .route("/onvif/{cam}/{service}", axum::routing::post(service))
            // Test control, not ONVIF: POST /control/cam0/motion/on
            .route(
                "/control/{cam}/{kind}/{state}",
                axum::routing::post(control),
            )
            // Test inspection: GET /control/cam0/relays → {"gate":false,…}
            .route("/control/{cam}/relays", axum::routing::get(relays))
            .with_state(shared.clone());
        let web = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let disc = tokio::spawn(discovery_loop(udp, shared.clone()));
        Ok(OnvifSim {
            http,
            discovery,
            shared,
            tasks: vec![web, disc],
        })
    }

    /// Raises (or clears) an event on a simulated camera; the next
    /// PullMessages delivers it.
    pub fn raise(&self, camera: usize, ev: SimEvent, on: bool) -> bool {
        raise(&self.shared, camera, ev, on)
    }
}

async fn control(
    State(s): State<Arc<Shared>>,
    Path((cam, kind, state)): Path<(String, String, String)>,
) -> Response {
    let cam = cam
        .strip_prefix("cam")
        .and_then(|n| n.parse::<usize>().ok());
    match (cam, SimEvent::parse(&kind), state.as_str()) {
        (Some(c), Some(ev), "on" | "off") if raise(&s, c, ev, state == "on") => {
            StatusCode::NO_CONTENT.into_response()
        }
        _ => (
            StatusCode::BAD_REQUEST,
            "use /control/camN/motion|tamper|input/on|off",
        )
            .into_response(),
    }
}

async fn relays(State(s): State<Arc<Shared>>, Path(cam): Path<String>) -> Response {
    let cam = cam
        .strip_prefix("cam")
        .and_then(|n| n.parse::<usize>().ok());
    match cam.and_then(|c| s.relays.get(c)) {
        Some(r) => {
            let m = r.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let body = m
                .iter()
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .collect::<Vec<_>>()
                .join(",");
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                format!("{{{body}}}"),
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such camera").into_response(),
    }
}

/// `PT5S` / `PT0.5S` / `PT1M` to a duration, capped so a client can't park a
/// request for ever.
fn iso_duration(s: &str) -> std::time::Duration {
    let secs = s
        .strip_prefix("PT")
        .and_then(|r| {
            if let Some(m) = r.strip_suffix('M') {
                m.parse::<f64>().ok().map(|m| m * 60.0)
            } else {
                r.strip_suffix('S')?.parse::<f64>().ok()
            }
        })
        .unwrap_or(5.0);
    std::time::Duration::from_secs_f64(secs.clamp(0.0, 10.0))
}

async fn discovery_loop(udp: tokio::net::UdpSocket, s: Arc<Shared>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let Ok((n, from)) = udp.recv_from(&mut buf).await else {
            return;
        };
        let Ok(text) = std::str::from_utf8(&buf[..n]) else {
            continue;
        };
        let Ok(probe) = xml::parse(text) else {
            continue;
        };
        if probe.path("Body/Probe").is_none() {
            continue;
        }
        let id = probe.text_at("Header/MessageID").unwrap_or("");
        let matches: String = (0..s.cfg.cameras)
            .map(|i| {
                format!(
                    concat!(
                        "<d:ProbeMatch><a:EndpointReference><a:Address>urn:uuid:00000000-0000-4000-8000-{:012}</a:Address></a:EndpointReference>",
                        "<d:Types>dn:NetworkVideoTransmitter</d:Types>",
                        "<d:Scopes>onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/name/camsim%20{} onvif://www.onvif.org/hardware/camsim</d:Scopes>",
                        "<d:XAddrs>http://{}/onvif/cam{}/device_service</d:XAddrs><d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch>"
                    ),
                    i, i, s.http, i
                )
            })
            .collect();
        let reply = format!(
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" "#,
                r#"xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" "#,
                r#"xmlns:dn="http://www.onvif.org/ver10/network/wsdl"><s:Header><a:RelatesTo>{}</a:RelatesTo></s:Header>"#,
                "<s:Body><d:ProbeMatches>{}</d:ProbeMatches></s:Body></s:Envelope>"
            ),
            soap::escape(id),
            matches
        );
        let _ = udp.send_to(reply.as_bytes(), from).await;
    }
}

fn envelope(body: &str) -> Response {
    (
        [("content-type", "application/soap+xml; charset=utf-8")],
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema"><env:Body>{body}</env:Body></env:Envelope>"#
        ),
    )
        .into_response()
}

fn fault(status: StatusCode, subcode: &str, reason: &str) -> Response {
    let mut r = envelope(&format!(
        r#"<env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode><env:Value>ter:{subcode}</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang="en">{reason}</env:Text></env:Reason></env:Fault>"#
    ));
    *r.status_mut() = status;
    r
}

/// Checks the UsernameToken as a camera does: right user, digest over a
/// fresh nonce, and `Created` within five minutes of the camera's clock.
fn authorized(s: &Shared, req: &xml::Element) -> bool {
    let Some(tok) = req.find("UsernameToken") else {
        return false;
    };
    let (Some(user), Some(digest), Some(nonce), Some(created)) = (
        tok.text_at("Username"),
        tok.text_at("Password"),
        tok.text_at("Nonce"),
        tok.text_at("Created"),
    ) else {
        return false;
    };
    let Ok(nonce) = base64::engine::general_purpose::STANDARD.decode(nonce) else {
        return false;
    };
    let camera_now = now_secs() + s.cfg.clock_offset_secs;
    let fresh = parse_rfc3339_secs(created).is_some_and(|t| (t - camera_now).abs() <= 300);
    let right =
        user == s.cfg.username && soap::password_digest(&nonce, created, &s.cfg.password) == digest;
    right
        && fresh
        && s.seen_nonces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(nonce)
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` to Unix seconds.
fn parse_rfc3339_secs(t: &str) -> Option<i64> {
    let t = t.strip_suffix('Z')?;
    let (date, time) = t.split_once('T')?;
    let mut d = date.split('-').map(|v| v.parse::<i64>().ok());
    let mut h = time.split(':');
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let (hh, mm) = (h.next()?.parse().ok()?, h.next()?.parse().ok()?);
    let ss: f64 = h.next()?.parse().ok()?;
    candor_onvif::device::unix_secs(y, mo, da, hh, mm, ss as i64)
}

async fn service(
    State(s): State<Arc<Shared>>,
    Path((cam, service)): Path<(String, String)>,
    body: String,
) -> Response {
    let Some(i) = cam
        .strip_prefix("cam")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&i| i < s.cfg.cameras)
    else {
        return (StatusCode::NOT_FOUND, "no such camera").into_response();
    };
    let Ok(req) = xml::parse(&body) else {
        return fault(
            StatusCode::BAD_REQUEST,
            "InvalidArgVal",
            "malformed request",
        );
    };
    let Some(op) = req.path("Body").and_then(|b| b.children.first()) else {
        return fault(StatusCode::BAD_REQUEST, "InvalidArgVal", "empty body");
    };
    // As on real cameras, the clock is readable without credentials.
    if op.name == "GetSystemDateAndTime" {
        let t = now_secs() + s.cfg.clock_offset_secs;
        let (days, rem) = (t.div_euclid(86_400), t.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        return envelope(&format!(
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>Manual</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings><tt:UTCDateTime><tt:Time><tt:Hour>{}</tt:Hour><tt:Minute>{}</tt:Minute><tt:Second>{}</tt:Second></tt:Time><tt:Date><tt:Year>{y}</tt:Year><tt:Month>{m}</tt:Month><tt:Day>{d}</tt:Day></tt:Date></tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        ));
    }
    if !authorized(&s, &req) {
        return fault(
            StatusCode::BAD_REQUEST,
            "NotAuthorized",
            "Sender not Authorized",
        );
    }
    let base = format!("http://{}/onvif/cam{i}", s.http);
    let (w, h) = s.source.dimensions();
    let codec = match s.source.codec() {
        candor_media::Codec::H264 => "H264",
        candor_media::Codec::H265 => "H265",
    };
    match (service.as_str(), op.name.as_str()) {
        ("device_service", "GetDeviceInformation") => envelope(&format!(
            "<tds:GetDeviceInformationResponse><tds:Manufacturer>Candor</tds:Manufacturer><tds:Model>camsim</tds:Model><tds:FirmwareVersion>{}</tds:FirmwareVersion><tds:SerialNumber>CAMSIM{i:04}</tds:SerialNumber><tds:HardwareId>camsim</tds:HardwareId></tds:GetDeviceInformationResponse>",
            env!("CARGO_PKG_VERSION")
        )),
        ("device_service", "GetCapabilities") => envelope(&format!(
            "<tds:GetCapabilitiesResponse><tds:Capabilities><tt:Device><tt:XAddr>{base}/device_service</tt:XAddr></tt:Device><tt:Events><tt:XAddr>{base}/event_service</tt:XAddr><tt:WSPullPointSupport>true</tt:WSPullPointSupport></tt:Events><tt:Media><tt:XAddr>{base}/media_service</tt:XAddr></tt:Media></tds:Capabilities></tds:GetCapabilitiesResponse>"
        )),
        ("media_service", "GetProfiles") => envelope(&format!(
            "<trt:GetProfilesResponse><trt:Profiles token=\"main\" fixed=\"true\"><tt:Name>mainStream</tt:Name><tt:VideoEncoderConfiguration token=\"enc0\"><tt:Name>enc0</tt:Name><tt:Encoding>{codec}</tt:Encoding><tt:Resolution><tt:Width>{w}</tt:Width><tt:Height>{h}</tt:Height></tt:Resolution><tt:RateControl><tt:FrameRateLimit>{:.0}</tt:FrameRateLimit><tt:BitrateLimit>{}</tt:BitrateLimit></tt:RateControl></tt:VideoEncoderConfiguration></trt:Profiles></trt:GetProfilesResponse>",
            s.source.frame_count() as f64 / s.source.duration_secs().max(0.001),
            s.source.bitrate() / 1000
        )),
        ("event_service", "CreatePullPointSubscription") => envelope(&format!(
            "<tev:CreatePullPointSubscriptionResponse xmlns:tev=\"http://www.onvif.org/ver10/events/wsdl\" xmlns:wsa5=\"http://www.w3.org/2005/08/addressing\"><tev:SubscriptionReference><wsa5:Address>{base}/subscription</wsa5:Address></tev:SubscriptionReference></tev:CreatePullPointSubscriptionResponse>"
        )),
        ("subscription", "PullMessages") => {
            let wait = iso_duration(op.text_at("Timeout").unwrap_or("PT5S"));
            let (q, n) = &s.queues[i];
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                let notified = n.notified();
                let msgs: Vec<String> = q
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .drain(..)
                    .collect();
                if !msgs.is_empty() || tokio::time::Instant::now() >= deadline {
                    return envelope(&format!(
                        "<tev:PullMessagesResponse xmlns:tev=\"http://www.onvif.org/ver10/events/wsdl\" xmlns:wsnt=\"http://docs.oasis-open.org/wsn/b-2\" xmlns:tns1=\"http://www.onvif.org/ver10/topics\">{}</tev:PullMessagesResponse>",
                        msgs.concat()
                    ));
                }
                let _ = tokio::time::timeout_at(deadline, notified).await;
            }
        }
        ("device_service", "GetRelayOutputs") => envelope(&format!(
            "<tds:GetRelayOutputsResponse>{}</tds:GetRelayOutputsResponse>",
            RELAYS
                .iter()
                .map(|(t, mode, idle)| format!(
                    "<tds:RelayOutputs token=\"{t}\"><tt:Properties><tt:Mode>{mode}</tt:Mode><tt:DelayTime>PT0S</tt:DelayTime><tt:IdleState>{idle}</tt:IdleState></tt:Properties></tds:RelayOutputs>"
                ))
                .collect::<String>()
        )),
        ("device_service", "SetRelayOutputState") => {
            let token = op.text_at("RelayOutputToken").unwrap_or("");
            let active = match op.text_at("LogicalState") {
                Some("active") => true,
                Some("inactive") => false,
                _ => return fault(StatusCode::BAD_REQUEST, "InvalidArgVal", "LogicalState must be active or inactive"),
            };
            let mut r = s.relays[i].lock().unwrap_or_else(|e| e.into_inner());
            match r.iter_mut().find(|(k, _)| **k == token) {
                Some((_, v)) => *v = active,
                None => return fault(StatusCode::BAD_REQUEST, "InvalidArgVal", "no such relay output token"),
            }
            envelope("<tds:SetRelayOutputStateResponse/>")
        }
        ("subscription", "Renew") => {
            envelope("<wsnt:RenewResponse xmlns:wsnt=\"http://docs.oasis-open.org/wsn/b-2\"/>")
        }
        ("subscription", "Unsubscribe") => envelope(
            "<wsnt:UnsubscribeResponse xmlns:wsnt=\"http://docs.oasis-open.org/wsn/b-2\"/>",
        ),
        ("media_service", "GetStreamUri") => {
            if op.text_at("ProfileToken") != Some("main") {
                return fault(StatusCode::BAD_REQUEST, "NoProfile", "no such profile");
            }
            envelope(&format!(
                "<trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>{}/cam{i}</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetStreamUriResponse>",
                soap::escape(&s.cfg.rtsp_base)
            ))
        }
        _ => fault(
            StatusCode::BAD_REQUEST,
            "ActionNotSupported",
            "not simulated",
        ),
    }
}

/// Inverse of days-from-civil (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates_round_trip() {
        for days in [-1000i64, 0, 10_957, 20_419, 2_932_896] {
            let (y, m, d) = super::civil_from_days(days);
            assert_eq!(
                candor_onvif::device::unix_secs(y, m, d, 0, 0, 0),
                Some(days * 86_400)
            );
        }
    }
}
