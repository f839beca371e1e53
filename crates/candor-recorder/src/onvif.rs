//! ONVIF client: WS-Discovery on the LAN, then, with a camera's credentials,
//! its identity, profiles and RTSP stream URIs. The XML lives in
//! `candor-onvif`; this module does the network and the clock.
//!
//! Only plain HTTP to the camera is supported for now (what ONVIF cameras
//! offer on the LAN); the digest never sends the password itself.

use candor_onvif::device::{self, DeviceInformation, Profile};
use candor_onvif::discovery::{self, Found};
use candor_onvif::soap::{self, Credentials, SoapError};
use http_body_util::{BodyExt, Full, Limited};
use std::net::SocketAddr;
use std::time::Duration;

/// Answers larger than this are refused before parsing.
const MAX_ANSWER: usize = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum OnvifError {
    #[error("{url}: {msg}")]
    Http { url: String, msg: String },
    #[error("{url}: {err}")]
    Soap { url: String, err: SoapError },
    #[error("bad device address {0:?}")]
    BadUrl(String),
    #[error("discovery socket: {0}")]
    Io(#[from] std::io::Error),
}

impl OnvifError {
    pub fn is_not_authorized(&self) -> bool {
        matches!(self, OnvifError::Soap { err, .. } if err.is_not_authorized())
    }
}

/// Sends a Probe to `target` (the multicast group, or a unicast address) and
/// collects answers for `wait`, merged by endpoint.
pub async fn probe(target: SocketAddr, wait: Duration) -> Result<Vec<Found>, OnvifError> {
    let sock = tokio::net::UdpSocket::bind(if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })
    .await?;
    let id = format!("urn:uuid:{:032x}", rand::random::<u128>());
    sock.send_to(discovery::probe(&id).as_bytes(), target)
        .await?;
    let mut found: Vec<Found> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let end = tokio::time::Instant::now() + wait;
    while let Ok(Ok((n, _))) = tokio::time::timeout_at(end, sock.recv_from(&mut buf)).await {
        // Anything on the LAN may answer: parse defensively, skip junk.
        let Ok(text) = std::str::from_utf8(&buf[..n]) else {
            continue;
        };
        for f in discovery::parse_probe_matches(text).unwrap_or_default() {
            match found
                .iter_mut()
                .find(|g| g.endpoint == f.endpoint && !f.endpoint.is_empty())
            {
                Some(g) => {
                    for x in f.xaddrs {
                        if !g.xaddrs.contains(&x) {
                            g.xaddrs.push(x);
                        }
                    }
                }
                None => found.push(f),
            }
        }
    }
    Ok(found)
}

async fn post(url: &str, body: String) -> Result<String, OnvifError> {
    post_within(url, body, TIMEOUT).await
}

async fn post_within(url: &str, body: String, timeout: Duration) -> Result<String, OnvifError> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|_| OnvifError::BadUrl(url.to_owned()))?;
    if uri.scheme_str() != Some("http") {
        return Err(OnvifError::BadUrl(format!(
            "{url} (only http:// is supported)"
        )));
    }
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let req = hyper::Request::post(uri)
        .header("content-type", "application/soap+xml; charset=utf-8")
        .body(Full::new(bytes::Bytes::from(body)))
        .map_err(|e| OnvifError::Http {
            url: url.to_owned(),
            msg: e.to_string(),
        })?;
    let http = |msg: String| OnvifError::Http {
        url: url.to_owned(),
        msg,
    };
    let resp = tokio::time::timeout(timeout, client.request(req))
        .await
        .map_err(|_| http(format!("no answer within {timeout:?}")))?
        .map_err(|e| http(e.to_string()))?;
    let body = Limited::new(resp.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| http(format!("reading the answer: {e}")))?
        .to_bytes();
    // SOAP faults come with 400/500 statuses: the body says more than the status.
    String::from_utf8(body.to_vec()).map_err(|_| http("answer is not UTF-8".into()))
}

/// A camera as ONVIF describes it.
#[derive(Clone, Debug)]
pub struct Described {
    pub info: DeviceInformation,
    /// Camera clock minus ours, seconds.
    pub clock_offset_secs: i64,
    pub profiles: Vec<Profile>,
    /// RTSP URI of the main stream (most pixels) and of the sub stream.
    pub main: Option<(Profile, String)>,
    pub sub: Option<(Profile, String)>,
}

impl Described {
    /// What `candor discover --json` and the web app's Discover show.
    pub fn wire(&self) -> candor_wire::Description {
        candor_wire::Description {
            manufacturer: self.info.manufacturer.clone(),
            model: self.info.model.clone(),
            serial: self.info.serial.clone(),
            clock_offset_secs: self.clock_offset_secs,
            profiles: self
                .profiles
                .iter()
                .map(|p| candor_wire::OnvifProfile {
                    token: p.token.clone(),
                    name: p.name.clone(),
                    encoding: p.encoding.clone(),
                    width: p.width,
                    height: p.height,
                    fps: p.fps,
                })
                .collect(),
            main: self.main.as_ref().map(|(_, u)| u.clone()),
            sub: self.sub.as_ref().map(|(_, u)| u.clone()),
        }
    }
}

use candor_media::time::unix_secs as now_secs;

/// Keeps the path of a service address a camera reports but the host the
/// caller reached it on: cameras behind NAT or with a stale DHCP lease report
/// addresses that don't work.
fn same_host(service: &str, device: &hyper::Uri) -> String {
    match (service.parse::<hyper::Uri>(), device.authority()) {
        (Ok(s), Some(a)) => format!(
            "http://{a}{}",
            s.path_and_query().map(|p| p.as_str()).unwrap_or("/")
        ),
        _ => service.to_owned(),
    }
}

fn soap_err(url: &str) -> impl FnOnce(SoapError) -> OnvifError {
    let url = url.to_owned();
    move |err| OnvifError::Soap { url, err }
}

/// The first steps with any camera: its clock (unauthenticated, so digests
/// can use camera time) and, signed, its service addresses.
async fn connect<'a>(
    device_url: &str,
    username: &'a str,
    password: &'a str,
) -> Result<(hyper::Uri, Signer<'a>, device::Capabilities), OnvifError> {
    let device: hyper::Uri = device_url
        .parse()
        .map_err(|_| OnvifError::BadUrl(device_url.to_owned()))?;
    let answer = post(
        device_url,
        soap::envelope(device::GET_SYSTEM_DATE_AND_TIME, None),
    )
    .await?;
    let offset = device::parse_system_date_and_time(&answer)
        .map(|t| t - now_secs())
        .unwrap_or(0);
    let signer = Signer {
        username,
        password,
        offset,
    };
    let caps =
        device::parse_capabilities(&signer.call(device_url, device::GET_CAPABILITIES).await?)
            .map_err(soap_err(device_url))?;
    Ok((device, signer, caps))
}

/// The camera's clock minus ours, in seconds (ONVIF GetSystemDateAndTime,
/// which needs no credentials).
pub async fn clock_offset(device_url: &str) -> Result<i64, OnvifError> {
    let answer = post(
        device_url,
        soap::envelope(device::GET_SYSTEM_DATE_AND_TIME, None),
    )
    .await?;
    device::parse_system_date_and_time(&answer)
        .map(|t| t - now_secs())
        .map_err(soap_err(device_url))
}

pub async fn describe(
    device_url: &str,
    username: &str,
    password: &str,
) -> Result<Described, OnvifError> {
    let (device, signer, caps) = connect(device_url, username, password).await?;
    let info = device::parse_device_information(
        &signer
            .call(device_url, device::GET_DEVICE_INFORMATION)
            .await?,
    )
    .map_err(soap_err(device_url))?;
    let media = caps
        .media
        .as_deref()
        .map(|m| same_host(m, &device))
        .unwrap_or_else(|| device_url.to_owned());
    let profiles = device::parse_profiles(&signer.call(&media, device::GET_PROFILES).await?)
        .map_err(soap_err(&media))?;
    let (main, sub) = device::main_and_sub(&profiles);
    let mut uris = Vec::new();
    for p in [main, sub] {
        uris.push(match p {
            Some(p) => {
                let answer = signer
                    .call(&media, &device::get_stream_uri(&p.token))
                    .await?;
                let uri = device::parse_stream_uri(&answer).map_err(soap_err(&media))?;
                Some((p.clone(), uri))
            }
            None => None,
        });
    }
    let sub = uris.pop().flatten();
    let main = uris.pop().flatten();
    Ok(Described {
        info,
        clock_offset_secs: signer.offset,
        profiles,
        main,
        sub,
    })
}

/// The camera's relay outputs (siren, gate, light).
pub async fn relay_outputs(
    device_url: &str,
    username: &str,
    password: &str,
) -> Result<Vec<device::RelayOutput>, OnvifError> {
    let (_, signer, _) = connect(device_url, username, password).await?;
    device::parse_relay_outputs(&signer.call(device_url, device::GET_RELAY_OUTPUTS).await?)
        .map_err(soap_err(device_url))
}

/// Switches one of the camera's relay outputs.
pub async fn set_relay_output(
    device_url: &str,
    username: &str,
    password: &str,
    token: &str,
    active: bool,
) -> Result<(), OnvifError> {
    let (_, signer, _) = connect(device_url, username, password).await?;
    let answer = signer
        .call(device_url, &device::set_relay_output_state(token, active))
        .await?;
    candor_onvif::soap::response_body(&answer).map_err(soap_err(device_url))?;
    Ok(())
}

/// Signed calls to one camera, with its clock offset.
struct Signer<'a> {
    username: &'a str,
    password: &'a str,
    offset: i64,
}

impl Signer<'_> {
    async fn call(&self, url: &str, body: &str) -> Result<String, OnvifError> {
        self.call_within(url, body, TIMEOUT).await
    }

    async fn call_within(
        &self,
        url: &str,
        body: &str,
        timeout: Duration,
    ) -> Result<String, OnvifError> {
        let nonce: [u8; 16] = rand::random();
        let created = jiff::Timestamp::from_second(now_secs() + self.offset)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let creds = Credentials {
            username: self.username,
            password: self.password,
            nonce: &nonce,
            created: &created,
        };
        post_within(url, soap::envelope(body, Some(&creds)), timeout).await
    }
}

/// Where camera events go: the index, one row per event.
pub struct EventSink {
    pub store: std::sync::Arc<candor_storage::Store>,
    pub camera_id: i64,
    pub camera: String,
    pub bus: crate::bus::EventBus,
    /// The camera's object detection and status: with detection working,
    /// the camera's own motion events raise no alarm (objects do), as
    /// Candor's motion events.
    pub objects: tokio::sync::watch::Receiver<crate::config::ObjectsConfig>,
    pub status: std::sync::Arc<std::sync::Mutex<crate::CameraStatus>>,
}

const SUBSCRIPTION_TTL: &str = "PT60S";
const RENEW_EVERY: Duration = Duration::from_secs(30);
const PULL_TIMEOUT: Duration = Duration::from_secs(15);

/// Follows a camera's ONVIF events (PullPoint) until `shutdown`: motion,
/// tamper and digital inputs become Candor events. Reconnects with backoff;
/// events still open when the link drops are closed then, so none stays
/// "ongoing" for ever.
pub async fn follow_events(
    device_url: String,
    username: String,
    password: String,
    sink: EventSink,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut backoff = crate::ingest::Backoff::new();
    let mut open: std::collections::HashMap<(candor_onvif::events::Kind, String), OpenEvent> =
        Default::default();
    loop {
        let started = std::time::Instant::now();
        let r = tokio::select! {
            r = pull_loop(&device_url, &username, &password, &sink, &mut open) => r,
            _ = shutdown.changed() => Ok(()),
        };
        close_all(&sink, &mut open).await;
        if *shutdown.borrow() {
            return;
        }
        if let Err(e) = r {
            if started.elapsed() > Duration::from_secs(60) {
                backoff.reset();
            }
            let delay = backoff.next_delay().max(Duration::from_secs(1));
            tracing::warn!(camera = %sink.camera, "ONVIF events: {e}; retrying in {delay:.1?}");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// An event this task started and has not ended.
struct OpenEvent {
    id: i64,
    kind: &'static str,
    start: candor_media::Time90k,
    detail: String,
}

impl EventSink {
    fn announce(&self, e: &OpenEvent, end: Option<candor_media::Time90k>) {
        let _ = self.bus.send(self.change(e, end));
    }

    fn change(&self, e: &OpenEvent, end: Option<candor_media::Time90k>) -> crate::bus::EventChange {
        let phase = if end.is_some() {
            crate::bus::Phase::End
        } else {
            crate::bus::Phase::Start
        };
        crate::bus::EventChange {
            end,
            detail: Some(e.detail.clone()),
            alarm: e.kind != "motion"
                || crate::objects::motion_alarms(
                    &self.objects.borrow(),
                    &self.status.lock().unwrap_or_else(|e| e.into_inner()),
                ),
            ..crate::bus::EventChange::new(
                e.id,
                self.camera.clone(),
                e.kind,
                "onvif",
                phase,
                e.start,
            )
        }
    }

    /// Ends the event in the index and announces it as the index has it
    /// (a snapshot, a pin or an acknowledgement made while it went on).
    async fn end(&self, e: &OpenEvent, at: candor_media::Time90k) {
        let (store, change) = (self.store.clone(), self.change(e, Some(at)));
        let id = e.id;
        let change = tokio::task::spawn_blocking(move || {
            if let Err(err) = store.end_event(id, at) {
                tracing::warn!("ending camera event {id}: {err}");
            }
            change.stored(&store)
        })
        .await;
        if let Ok(c) = change {
            let _ = self.bus.send(c);
        }
    }
}

async fn close_all(
    sink: &EventSink,
    open: &mut std::collections::HashMap<(candor_onvif::events::Kind, String), OpenEvent>,
) {
    let now = candor_media::Time90k::now();
    for (_, e) in open.drain() {
        sink.end(&e, now).await;
    }
}

async fn pull_loop(
    device_url: &str,
    username: &str,
    password: &str,
    sink: &EventSink,
    open: &mut std::collections::HashMap<(candor_onvif::events::Kind, String), OpenEvent>,
) -> Result<(), OnvifError> {
    use candor_onvif::events;
    let (device, signer, caps) = connect(device_url, username, password).await?;
    let service = caps
        .events
        .as_deref()
        .map(|e| same_host(e, &device))
        .ok_or_else(|| OnvifError::Http {
            url: device_url.to_owned(),
            msg: "the camera offers no event service".into(),
        })?;
    let sub = events::parse_subscription(
        &signer
            .call(
                &service,
                &events::create_pull_point_subscription(SUBSCRIPTION_TTL),
            )
            .await?,
    )
    .map_err(soap_err(&service))?;
    let sub = same_host(&sub, &device);
    tracing::info!(camera = %sink.camera, "following ONVIF events at {sub}");
    let mut renewed = std::time::Instant::now();
    loop {
        if renewed.elapsed() >= RENEW_EVERY {
            signer.call(&sub, &events::renew(SUBSCRIPTION_TTL)).await?;
            renewed = std::time::Instant::now();
        }
        // The camera holds the request up to 5 s when it has nothing to say;
        // the HTTP timeout must be longer than that.
        let answer = signer
            .call_within(&sub, &events::pull_messages("PT5S", 64), PULL_TIMEOUT)
            .await?;
        for n in events::parse_pull_messages(&answer).map_err(soap_err(&sub))? {
            let Some((kind, active)) = events::classify(&n) else {
                continue;
            };
            // One event per kind and source (e.g. per input or per rule).
            let source: String = n
                .source
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            let key = (kind, source.clone());
            let kind_s = match kind {
                events::Kind::Motion => "motion",
                events::Kind::Tamper => "tamper",
                events::Kind::Input => "input",
            };
            let now = candor_media::Time90k::now();
            let store = sink.store.clone();
            match (active, open.contains_key(&key)) {
                (true, false) => {
                    let (cam, detail) = (
                        sink.camera_id,
                        format!("{} {source}", n.topic).trim().to_owned(),
                    );
                    let d = detail.clone();
                    let id = tokio::task::spawn_blocking(move || {
                        store.start_event(cam, kind_s, "onvif", now, Some(&d))
                    })
                    .await
                    .map_err(|e| OnvifError::Http {
                        url: sub.clone(),
                        msg: e.to_string(),
                    })?
                    .map_err(|e| OnvifError::Http {
                        url: sub.clone(),
                        msg: format!("recording the event: {e}"),
                    })?;
                    tracing::info!(camera = %sink.camera, kind = kind_s, "camera event started");
                    let e = OpenEvent {
                        id,
                        kind: kind_s,
                        start: now,
                        detail,
                    };
                    sink.announce(&e, None);
                    open.insert(key, e);
                }
                (false, true) => {
                    if let Some(e) = open.remove(&key) {
                        sink.end(&e, now).await;
                        tracing::info!(camera = %sink.camera, kind = kind_s, "camera event ended");
                    }
                }
                _ => {}
            }
        }
    }
}
