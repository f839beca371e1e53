//! The recorder's end of the cloud link (see `docs/design/cloud.md`).
//!
//! One outbound TLS 1.3 connection, opened only while pairing or paired,
//! authenticated by the recorder's own Ed25519 key. Everything written is
//! put in the egress ledger first. The recorder acts on only the messages
//! `candor-link` allows from the cloud, and only in the ways written here:
//! it records acknowledgements, shows sharing requests to its admin, and
//! answers pings. Alarms wait in the index's outbox until the cloud says it
//! stored them, so each arrives exactly once however the link fails.

use crate::bus::{EventBus, Phase};
use crate::config::CloudConfig;
use candor_link::identity::Identity;
use candor_link::{Decoder, Frame, Message, Sharing};
use candor_media::Time90k;
use candor_storage::Store;
use serde::Serialize;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, mpsc, watch};
use tracing::{info, warn};

mod acme;
mod dial;
mod files;
mod net;
mod pairing;
mod session;
pub use acme::{CertView, Issued};
use files::Files;
pub use net::{Counting, trust_roots};
use net::{In, LinkIo, connect};
use session::{Action, CAUSED_PER_MINUTE, Linked, PONG_MIN_INTERVAL, Queued};

/// What the local web app shows on its Cloud page.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LinkState {
    pub address: String,
    pub name: String,
    pub paired: Option<Paired>,
    pub connected: bool,
    /// The link's last failure, in words.
    pub last_error: Option<String>,
    pub pairing: Option<PairingView>,
    pub sharing: Option<Sharing>,
    pub private_alarms: bool,
    /// The cloud asked for another sharing level; an admin decides.
    pub sharing_request: Option<Sharing>,
    /// The recorder's public key, hex, as the cloud knows it.
    pub key: Option<String>,
    /// Pairing requests taken so far: a caller that asked for pairing knows
    /// the state it sees once this has grown is its attempt's (or later).
    pub pairing_attempts: u64,
    pub remote: RemoteView,
}

/// Remote access as the Cloud page shows it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RemoteView {
    /// The admin's switch (`[cloud] remote_access`).
    pub enabled: bool,
    /// The name browsers use, once the cloud gave it on this connection.
    pub host: Option<String>,
    pub url: Option<String>,
    /// Remote connections open now.
    pub open: u32,
    /// Remote connections served since the recorder started.
    pub served: u64,
    /// Who needs two-factor sign-in to sign in remotely.
    pub require_2fa: crate::config::Remote2fa,
    /// The cloud publishes ACME DNS answers for the name (it said so with it).
    pub acme_dns: bool,
    /// The certificate browsers see for the remote name.
    pub certificate: CertView,
}

/// A connection that came through the cloud's relay: the recorder's end of
/// an end-to-end encrypted stream, for the web server.
pub struct RemoteConn {
    /// A stream over the link, or a data connection of its own.
    pub io: Box<dyn candor_link::tunnel::Io>,
    /// The browser's address as the cloud saw it.
    pub client: std::net::IpAddr,
}

/// The browser's address in a stream's open or a dial: `ip:port` or `ip`.
fn client_ip(client: &str) -> Option<std::net::IpAddr> {
    client
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| client.parse::<std::net::IpAddr>())
        .ok()
}

/// How long a data connection may take to reach the cloud (the browser
/// waits 10 s for it there).
const DIAL_WITHIN: Duration = Duration::from_secs(8);
/// Data connections that fail in a row before the link falls back to
/// streams for an hour.
const DIAL_FAILURES: u32 = 3;

/// Bytes buffered between a stream and the web server, each way.
const REMOTE_PIPE: usize = 64 * 1024;
/// Remote connections waiting for the web server to take them.
const REMOTE_QUEUE: usize = 16;
/// Streams the cloud may open a minute (as the cloud itself allows).
const REMOTE_OPENS_PER_MINUTE: usize = 120;
/// A remote stream on which nothing moved for this long is closed (the
/// web server's own idle timeout usually ends it first).
const REMOTE_IDLE: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Paired {
    pub site: String,
    pub address: String,
    pub paired_at: String,
    /// The remote-access name the cloud gave first: pinned, so a cloud
    /// cannot move the recorder's certificate to another name later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_host: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PairingView {
    pub code: Option<String>,
    pub expires_in: Option<u32>,
    /// The owner account that entered the code.
    pub claimed_by: Option<String>,
    /// The 6 digits to compare with the cloud app's.
    pub confirmation: Option<String>,
}

pub enum Cmd {
    StartPairing,
    Confirm,
    Cancel,
    Unpair,
    Settings {
        sharing: Sharing,
        private_alarms: bool,
    },
    /// Remote access on or off (already written to candor.toml).
    Remote(bool),
    /// Tell the owner's phone about a technician's access (dropped when
    /// the link is down: the Access page and the audit log keep it).
    Notice {
        event: candor_link::AccessEvent,
        technician: String,
        org: String,
    },
    /// Ask the cloud to publish an ACME DNS answer (see [`acme`]).
    AcmeDns {
        txt: Vec<String>,
        caa: Option<candor_link::Caa>,
        reply: tokio::sync::oneshot::Sender<Result<(), String>>,
    },
}

#[derive(Clone)]
pub struct CloudHandle {
    state: watch::Receiver<LinkState>,
    issued: watch::Receiver<Option<Arc<Issued>>>,
    cmd: mpsc::Sender<Cmd>,
    remote: Arc<Mutex<Option<mpsc::Receiver<RemoteConn>>>>,
    access: Arc<Mutex<Option<mpsc::Receiver<AccessRequest>>>>,
    grants: Arc<watch::Sender<Option<GrantReport>>>,
    claims: Arc<Mutex<Option<mpsc::Receiver<CloudGrants>>>>,
}

/// A technician's request for access, as the cloud relayed it (validated
/// by `candor_link`); the web app stores it for the admin to answer.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessRequest {
    pub technician: String,
    pub org: String,
    pub scopes: Vec<String>,
    pub cameras: Option<Vec<String>>,
    pub hours: u32,
    pub reason: String,
}

/// The list of grants the recorder reports, numbered (see `Message::Grants`).
#[derive(Clone, Debug, PartialEq)]
pub struct GrantReport {
    pub generation: u64,
    pub grants: Vec<candor_link::GrantNote>,
}

/// What the cloud said about the grants list, for the web app to check.
#[derive(Clone, Debug, PartialEq)]
pub enum CloudGrants {
    /// The cloud's quote of its mirror (once per connection), and the
    /// connection's random number.
    Claims(GrantReport, u64),
    /// The cloud stored this generation of the list, on that connection.
    Stored(u64, u64),
}

/// Requests waiting to be stored; more are dropped (the cloud's requests
/// are also limited per minute, and the store keeps at most 20 waiting).
const ACCESS_QUEUE: usize = 16;

impl CloudHandle {
    pub fn state(&self) -> LinkState {
        self.state.borrow().clone()
    }

    pub fn watch(&self) -> watch::Receiver<LinkState> {
        self.state.clone()
    }

    pub async fn send(&self, c: Cmd) -> bool {
        self.cmd.send(c).await.is_ok()
    }

    /// Certificates the CA issued for the remote name, newest last.
    pub fn issued(&self) -> watch::Receiver<Option<Arc<Issued>>> {
        self.issued.clone()
    }

    /// The connections remote access hands to the web server (once: the
    /// web server takes them).
    pub fn take_remote_conns(&self) -> Option<mpsc::Receiver<RemoteConn>> {
        self.remote.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// The grants to report to the cloud (the web app sets them at start
    /// and on each change; the link sends them on each connection).
    pub fn set_grants(&self, report: GrantReport) {
        // Never an older list after a newer one (two reports can finish in
        // either order); the same one again is sent again.
        self.grants.send_if_modified(|cur| {
            if cur
                .as_ref()
                .is_none_or(|c| report.generation >= c.generation)
            {
                *cur = Some(report);
                true
            } else {
                false
            }
        });
    }

    /// Tells the owner about a technician's access, if the link is up.
    pub fn notice(&self, event: candor_link::AccessEvent, technician: &str, org: &str) {
        let _ = self.cmd.try_send(Cmd::Notice {
            event,
            technician: technician.to_owned(),
            org: org.to_owned(),
        });
    }

    /// The cloud's quotes of this site's grants (once: the web app takes them).
    pub fn take_grant_claims(&self) -> Option<mpsc::Receiver<CloudGrants>> {
        self.claims.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Technicians' requests the cloud relays (once: the web app takes them).
    pub fn take_access_requests(&self) -> Option<mpsc::Receiver<AccessRequest>> {
        self.access.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// What [`run`] needs from the rest of the recorder.
pub struct Deps {
    pub store: Arc<Store>,
    pub events: EventBus,
    pub status: crate::StatusSource,
    pub shutdown: watch::Receiver<bool>,
    /// `[storage] target_days`, for the status at sharing ≥ health.
    pub footage_target_days: Option<u32>,
}

pub fn start(config: CloudConfig, deps: Deps) -> (CloudHandle, tokio::task::JoinHandle<()>) {
    let files = Files::new(deps.store.dir());
    let paired = files.paired();
    let (state_tx, state) = watch::channel(LinkState {
        address: config.address.to_string(),
        name: config.name.clone(),
        paired,
        sharing: Some(config.sharing),
        private_alarms: config.private_alarms,
        key: std::fs::read(&files.key)
            .ok()
            .and_then(|k| Identity::from_pkcs8(&k).ok())
            .map(|i| hex::encode(i.public_key())),
        remote: RemoteView {
            enabled: config.remote_access,
            require_2fa: config.remote_2fa,
            ..Default::default()
        },
        ..Default::default()
    });
    let state_tx = Arc::new(state_tx);
    let (cmd, cmd_rx) = mpsc::channel(8);
    let (remote_tx, remote_rx) = mpsc::channel(REMOTE_QUEUE);
    let (access_tx, access_rx) = mpsc::channel(ACCESS_QUEUE);
    let (grants_tx, grants_rx) = watch::channel(None);
    let (claims_tx, claims_rx) = mpsc::channel(4);
    let (issued_tx, issued) = watch::channel(None);
    tokio::spawn(
        acme::Acme {
            config: config.clone(),
            dir: deps.store.dir().join("tls/remote/acme"),
            state: state_tx.clone(),
            cmd: cmd.clone(),
            store: deps.store.clone(),
            issued: issued_tx,
            shutdown: deps.shutdown.clone(),
        }
        .run(),
    );
    let wake = Arc::new(Notify::new());
    // Alarms are queued whether or not the link is up; the link drains them.
    tokio::spawn(enqueue_alarms(
        deps.store.clone(),
        deps.events.clone(),
        state.clone(),
        wake.clone(),
        deps.shutdown.clone(),
    ));
    let task = tokio::spawn(
        Link {
            config,
            files,
            deps,
            state: state_tx,
            cmd: cmd_rx,
            wake,
            remote_tx,
            access_tx,
            grants: grants_rx,
            claims_tx,
            remote_opens: Default::default(),
            data_conns: Default::default(),
            link_peer: None,
            dial_off_until: None,
            write_errors_seen: Default::default(),
        }
        .run(),
    );
    (
        CloudHandle {
            state,
            issued,
            cmd,
            remote: Arc::new(Mutex::new(Some(remote_rx))),
            access: Arc::new(Mutex::new(Some(access_rx))),
            grants: Arc::new(grants_tx),
            claims: Arc::new(Mutex::new(Some(claims_rx))),
        },
        task,
    )
}

/// A command that needs the link up, while it is not: said so at once.
fn not_linked(c: Cmd) {
    if let Cmd::AcmeDns { reply, .. } = c {
        let _ = reply.send(Err("not connected to the cloud".into()));
    }
}

async fn enqueue_alarms(
    store: Arc<Store>,
    events: EventBus,
    state: watch::Receiver<LinkState>,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut rx = events.subscribe();
    // An event raises its alarm once: at its start, or at the update that
    // made it one (an object walking into a zone that requires its label).
    let mut raised = std::collections::VecDeque::<i64>::new();
    loop {
        let e = tokio::select! {
            e = rx.recv() => e,
            _ = shutdown.changed() => return,
        };
        match e {
            Ok(e) if e.alarm && e.phase != Phase::End && !raised.contains(&e.id) => {
                if raised.len() >= 1024 {
                    raised.pop_front();
                }
                raised.push_back(e.id);
                if state.borrow().paired.is_none() {
                    continue;
                }
                let payload = serde_json::to_string(&Queued {
                    event: e.id,
                    camera: e.camera.clone(),
                    kind: e.kind.to_string(),
                })
                .unwrap_or_default();
                let store = store.clone();
                let (at, id) = (e.start, e.id);
                match tokio::task::spawn_blocking(move || {
                    store.enqueue_alarm(at, Some(id), &payload)
                })
                .await
                {
                    Ok(Ok(_)) => wake.notify_one(),
                    Ok(Err(err)) => warn!("queueing a cloud alarm: {err}"),
                    Err(err) => warn!("queueing a cloud alarm: {err}"),
                }
            }
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                warn!("cloud alarm queue missed {n} event changes (bus overflow)");
            }
            Err(_) => return,
        }
    }
}

struct Link {
    config: CloudConfig,
    files: Files,
    deps: Deps,
    state: Arc<watch::Sender<LinkState>>,
    cmd: mpsc::Receiver<Cmd>,
    wake: Arc<Notify>,
    remote_tx: mpsc::Sender<RemoteConn>,
    access_tx: mpsc::Sender<AccessRequest>,
    grants: watch::Receiver<Option<GrantReport>>,
    claims_tx: mpsc::Sender<CloudGrants>,
    remote_opens: std::collections::VecDeque<Instant>,
    /// The data connections, connecting and open, ended with the link.
    data_conns: dial::DataConns,
    /// The cloud's address as this link reached it (data connections go
    /// there, unless through a proxy).
    link_peer: Option<std::net::SocketAddr>,
    /// Data connections kept failing (a filter that passes only TLS, say):
    /// until then, links offer only streams (ALPN `candor-link/1`).
    dial_off_until: Option<Instant>,
    /// Per camera: its write-error count when last seen, and when it last
    /// grew. A camera is "not recording" while writes failed recently, not
    /// for ever after one full disk that retention fixed.
    write_errors_seen: Mutex<std::collections::HashMap<String, (u64, Instant)>>,
}

enum Ended {
    /// Reconnect after the backoff.
    Retry(String),
    /// A command changed what to do; loop at once.
    Again,
    Shutdown,
}

/// The remote-access certificate's trouble, in words: failing to be
/// obtained or renewed, or valid for less than [`CERT_WARN`] more.
/// Nothing while remote access is off or all is well. `now`: Unix seconds.
fn certificate_trouble(remote: &RemoteView, now: i64) -> Option<String> {
    let c = &remote.certificate;
    if !remote.enabled {
        return None;
    }
    // A category and a date only: the CA's error text can name paths,
    // the ACME account and the host, which are not the cloud's to read
    // (the Cloud page shows it to the owner).
    let failing = (c.state == "retrying").then(|| match c.next_attempt.as_deref() {
        Some(t) => format!("failing to renew (next try {t})"),
        None => "failing to renew".to_owned(),
    });
    let soon = c
        .not_after
        .as_deref()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .is_some_and(|t| t.as_second() - now < CERT_WARN.as_secs() as i64);
    let out = match (failing, soon && c.source == "acme") {
        (Some(f), true) => format!("{f}; expires {}", c.not_after.as_deref().unwrap_or("")),
        (Some(f), false) => f,
        (None, true) => format!("expires {}", c.not_after.as_deref().unwrap_or("")),
        (None, false) => return None,
    };
    // Bounded and on one line, as the link requires.
    let mut s = String::new();
    for ch in out.chars().map(|ch| if ch.is_control() { ' ' } else { ch }) {
        if s.len() + ch.len_utf8() > 200 {
            break;
        }
        s.push(ch);
    }
    Some(s)
}

/// A camera whose writes failed this recently is "not recording".
const WRITE_ERRORS_RECENT: Duration = Duration::from_secs(300);

/// A certificate valid for less than this is trouble (ACME renews at a
/// third of its life left: for a 90-day certificate, 30 days before).
const CERT_WARN: Duration = Duration::from_secs(14 * 86_400);

/// Egress ledger retention: a year and a margin, and at most this many rows.
pub(crate) const LEDGER_KEEP: Duration = Duration::from_secs(400 * 24 * 3600);
pub(crate) const LEDGER_MAX_ROWS: i64 = 1_000_000;

/// This hour's heartbeat row in the ledger: pongs are one row per hour,
/// updated with each one (before it is sent), not a row per ping.
struct Beat {
    id: i64,
    hour: i64,
    count: u64,
}

impl Link {
    async fn run(mut self) {
        let mut backoff = Duration::from_secs(1);
        let mut pairing = false;
        loop {
            if *self.deps.shutdown.borrow() {
                return;
            }
            let paired = self.state.borrow().paired.is_some();
            if !paired && !pairing {
                // Nothing to do: no connection at all until an admin asks.
                let c = tokio::select! {
                    c = self.cmd.recv() => c,
                    _ = self.deps.shutdown.changed() => return,
                };
                match c {
                    Some(Cmd::StartPairing) => {
                        pairing = true;
                        // A fresh attempt: the web app waits for a code or
                        // for this attempt's own error, not an old one.
                        self.state.send_modify(|s| {
                            s.last_error = None;
                            s.pairing = Some(PairingView::default());
                            s.pairing_attempts += 1;
                        });
                    }
                    Some(Cmd::Settings {
                        sharing,
                        private_alarms,
                    }) => self.settings(sharing, private_alarms),
                    Some(Cmd::Remote(on)) => self.set_remote(on),
                    Some(c) => not_linked(c),
                    None => return,
                }
                continue;
            }
            let started = Instant::now();
            let r = self.session(paired).await;
            match r {
                Ended::Shutdown => return,
                Ended::Again => {
                    pairing = false;
                    backoff = Duration::from_secs(1);
                    continue;
                }
                Ended::Retry(why) => {
                    self.state.send_modify(|s| {
                        s.connected = false;
                        s.last_error = Some(why.clone());
                    });
                    if !paired {
                        // A failed pairing attempt is over; the admin starts again.
                        warn!("cloud pairing failed: {why}");
                        pairing = false;
                        self.state.send_modify(|s| s.pairing = None);
                        continue;
                    }
                    if started.elapsed() > Duration::from_secs(60) {
                        backoff = Duration::from_secs(1);
                    }
                    let jitter = Duration::from_millis(rand::random::<u64>() % 1000);
                    info!("cloud link: {why}; retrying in {:?}", backoff + jitter);
                    let deadline = tokio::time::sleep(backoff + jitter);
                    tokio::pin!(deadline);
                    loop {
                        tokio::select! {
                            _ = &mut deadline => break,
                            c = self.cmd.recv() => match c {
                                Some(Cmd::Unpair) => {
                                    // Offline unpairing is local and final; the
                                    // cloud learns when the key is refused... it
                                    // never will be presented again.
                                    self.forget("unpaired on the recorder while the cloud was unreachable");
                                    break;
                                }
                                Some(Cmd::Settings { sharing, private_alarms }) => self.settings(sharing, private_alarms),
                                Some(Cmd::Remote(on)) => self.set_remote(on),
                                Some(c) => not_linked(c),
                                None => return,
                            },
                            _ = self.deps.shutdown.changed() => return,
                        }
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
    }

    fn settings(&mut self, sharing: Sharing, private_alarms: bool) {
        self.config.sharing = sharing;
        self.config.private_alarms = private_alarms;
        self.state.send_modify(|s| {
            s.sharing = Some(sharing);
            s.private_alarms = private_alarms;
            if s.sharing_request == Some(sharing) {
                s.sharing_request = None;
            }
        });
    }

    fn set_remote(&mut self, on: bool) {
        self.config.remote_access = on;
        self.state.send_modify(|s| {
            s.remote.enabled = on;
            if !on {
                s.remote.host = None;
                s.remote.url = None;
            }
        });
    }

    fn forget(&mut self, why: &str) {
        self.files.forget();
        let _ = self.deps.store.clear_outbox();
        info!("cloud: {why}");
        self.state.send_modify(|s| {
            s.paired = None;
            s.connected = false;
            s.pairing = None;
            s.key = None;
            s.sharing_request = None;
            s.last_error = Some(why.to_string());
        });
    }

    async fn session(&mut self, paired: bool) -> Ended {
        let identity = match self.files.identity() {
            Ok(i) => i,
            Err(e) => return Ended::Retry(format!("recorder key: {e}")),
        };
        self.state
            .send_modify(|s| s.key = Some(hex::encode(identity.public_key())));
        let dest = self.config.address.to_string();
        let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let dial = self.dial_off_until.is_none_or(|t| Instant::now() >= t);
        let conn = match connect(&self.config, &identity, written.clone(), dial).await {
            Ok(c) => c,
            Err(e) => {
                // A failed attempt may have sent a CONNECT request and a
                // ClientHello (which names the cloud): those bytes left too.
                let n = written.load(std::sync::atomic::Ordering::Relaxed);
                if n > 0 {
                    self.ledger(
                        &dest,
                        "connect",
                        n,
                        &format!("failed after {n} bytes (proxy CONNECT, TLS handshake): {e}"),
                    );
                }
                return Ended::Retry(e);
            }
        };
        self.ledger(
            &dest,
            "connect",
            0,
            &format!(
                "TLS 1.3 to {dest}{}",
                self.config
                    .proxy
                    .as_ref()
                    .map(|p| format!(" via proxy {p}"))
                    .unwrap_or_default()
            ),
        );
        self.link_peer = conn.get_ref().0.peer_addr().ok();
        let dial = conn.get_ref().1.alpn_protocol() == Some(candor_link::ALPN_DIAL);
        // One writer for messages and remote-access streams; this task reads.
        let (rd, wr) = tokio::io::split(conn);
        let (ended_tx, mut ended) = mpsc::unbounded_channel();
        let (tunnel, mut writer) =
            candor_link::tunnel::Tunnel::start(wr, REMOTE_IDLE, Some(ended_tx));
        let mut io = LinkIo {
            rd,
            tunnel,
            decoder: Decoder::new(),
            ledgered: 0,
            dial,
        };
        let r = if paired {
            self.linked(&mut io, &mut ended, &dest).await
        } else {
            self.pairing(&mut io, &dest, *identity.public_key()).await
        };
        io.tunnel.end();
        self.data_conns.end_all();
        // What is queued (an unpair) goes out, unless the cloud stopped reading.
        match tokio::time::timeout(Duration::from_secs(5), &mut writer).await {
            Ok(Ok((w, _))) => {
                let mut conn = io.rd.unsplit(w);
                let _ = conn.get_mut().0.shutdown().await;
            }
            _ => writer.abort(),
        }
        // Streams the link's end closed still get their rows.
        while let Ok(e) = ended.try_recv() {
            io.ledgered += e.wire;
            self.tunnel_row(&dest, &e);
        }
        // The link's streams are gone; its data connections are going, and
        // each counts itself out as it closes.
        let open = self.data_conns.open() as u32;
        self.state.send_modify(|s| {
            s.remote.open = open;
            s.remote.host = None;
            s.remote.url = None;
        });
        let (wire, ledgered) = (
            written.load(std::sync::atomic::Ordering::Relaxed),
            io.ledgered,
        );
        // The rows above hold the messages and tunnels; this one holds the
        // rest of what went on the wire (a proxy's CONNECT, the TLS
        // handshake, record headers and tags, stream resets), so the
        // ledger's rows add up to the bytes that really left.
        let overhead = wire.saturating_sub(ledgered);
        self.ledger(
            &dest,
            "disconnect",
            overhead,
            &format!(
                "{wire} bytes on the wire in this connection: {ledgered} in the messages and tunnels above, \
                 {overhead} of TLS handshake and record overhead, and any proxy CONNECT (counted here)"
            ),
        );
        r
    }

    /// A remote-access stream ended: one row with its bytes, not its
    /// contents (TLS between the browser and this recorder: the cloud and
    /// this ledger see only ciphertext).
    fn tunnel_row(&self, dest: &str, e: &candor_link::tunnel::Ended) {
        self.state
            .send_modify(|s| s.remote.open = s.remote.open.saturating_sub(1));
        self.ledger(
            dest,
            "tunnel",
            e.wire,
            &format!(
                "remote access from {} through the cloud, {:.0} s ({}): {} bytes sent, {} received, \
                 end-to-end encrypted between the browser and this recorder (contents not shown; \
                 {} bytes with stream framing)",
                e.client,
                e.duration.as_secs_f64(),
                e.why,
                e.sent,
                e.received,
                e.wire
            ),
        );
    }

    /// A browser through the cloud: handed to the web server if remote
    /// access is on and the cloud named this recorder on this connection;
    /// refused otherwise.
    fn open_stream(
        &mut self,
        io: &mut LinkIo,
        core: &Linked,
        stream: u32,
        client: String,
        first: Vec<u8>,
    ) -> Result<(), String> {
        if !self.remote_open_allowed() {
            return io
                .tunnel
                .refuse(stream)
                .map_err(|e| format!("protocol error: {e}"));
        }
        let permit = self.remote_tx.try_reserve();
        match (
            self.config.remote_access && core.streams_allowed(),
            client_ip(&client),
            permit,
        ) {
            (true, Some(ip), Ok(permit)) => {
                let (ours, web) = tokio::io::duplex(REMOTE_PIPE);
                io.tunnel
                    .accept(stream, client, &first, ours)
                    .map_err(|e| format!("protocol error: {e}"))?;
                permit.send(RemoteConn {
                    io: Box::new(web),
                    client: ip,
                });
                self.state.send_modify(|s| {
                    s.remote.open += 1;
                    s.remote.served += 1;
                });
            }
            _ => io
                .tunnel
                .refuse(stream)
                .map_err(|e| format!("protocol error: {e}"))?,
        }
        Ok(())
    }

    /// Whether the cloud may hand over one more browser now (its limit,
    /// enforced here too: each costs a TLS handshake and a ledger row).
    fn remote_open_allowed(&mut self) -> bool {
        let now = Instant::now();
        while self
            .remote_opens
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            self.remote_opens.pop_front();
        }
        if self.remote_opens.len() >= REMOTE_OPENS_PER_MINUTE {
            return false;
        }
        self.remote_opens.push_back(now);
        true
    }

    /// A browser waits at the cloud: connect a data connection for it to
    /// the cloud (the link's own peer address, or through the configured
    /// proxy to the configured address; never one the cloud names) and hand
    /// it to the web server. `core` has checked that the cloud named this
    /// recorder for remote access on this link; refused here are more than
    /// 120 a minute, more than [`dial::MAX_OPEN`] at once (8 per client),
    /// and any while the switch is off. A refused dial's browser is closed
    /// by the cloud when its wait runs out.
    fn dial(&mut self, token: String, client: String, dest: &str) {
        // (The token's form was checked when the message was decoded.)
        let Some(ip) = client_ip(&client) else {
            info!("remote access: a dial for an unreadable client address refused");
            return;
        };
        if !self.config.remote_access {
            return;
        }
        if !self.remote_open_allowed() {
            info!("remote access: a dial refused, too many this minute");
            return;
        }
        let Some(place) = self.data_conns.place(ip) else {
            info!("remote access: a dial refused, too many data connections open");
            return;
        };
        let proxy = self.config.proxy.clone();
        let address = self.config.address.clone();
        let peer = self.link_peer;
        let remote_tx = self.remote_tx.clone();
        let conns = self.data_conns.clone();
        let ledger = dial::Ledger {
            store: self.deps.store.clone(),
            state: self.state.clone(),
            dest: dest.to_owned(),
            client,
            before: 0,
        };
        tokio::spawn(async move {
            let written = std::sync::atomic::AtomicU64::new(0);
            let preamble = candor_link::dial::preamble(&token);
            let connect = async {
                // The address the link reached (no second DNS answer, which
                // may differ), unless a proxy makes the connections.
                let mut tcp = match (&proxy, peer) {
                    (None, Some(peer)) => tokio::net::TcpStream::connect(peer)
                        .await
                        .map_err(|e| format!("connecting to {peer}: {e}"))?,
                    _ => net::tcp_to(proxy.as_ref(), &address, &written).await?,
                };
                let _ = tcp.set_nodelay(true);
                tcp.write_all(&preamble)
                    .await
                    .map_err(|e| format!("sending: {}", net::in_words(&e)))?;
                Ok::<_, String>(tcp)
            };
            let r = tokio::time::timeout(DIAL_WITHIN, connect).await;
            let proxied = written.load(std::sync::atomic::Ordering::Relaxed);
            let before = proxied + preamble.len() as u64;
            let tcp = match r {
                Ok(Ok(tcp)) => tcp,
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e,
                        _ => format!("it took over {DIAL_WITHIN:?}"),
                    };
                    let n = conns.failed();
                    warn!(
                        "remote access: a data connection to the cloud failed ({n} in a row): {why}"
                    );
                    // What may have left: a proxy's CONNECT, the preamble.
                    dial::row(
                        &ledger.store,
                        &ledger.dest,
                        before,
                        format!(
                            "remote access from {}: a data connection that failed ({why}); \
                             at most {before} bytes sent (a proxy's CONNECT and the token)",
                            ledger.client
                        ),
                    );
                    return;
                }
            };
            let io = match dial::DataConn::new(tcp, place, dial::Ledger { before, ..ledger }) {
                Ok(io) => io,
                Err(e) => return info!("remote access: a data connection not served: {e}"),
            };
            // The web server takes connections as they come; one that can't
            // be queued in a second is closed (and has its row).
            let conn = RemoteConn {
                io: Box::new(io),
                client: ip,
            };
            if remote_tx
                .send_timeout(conn, Duration::from_secs(1))
                .await
                .is_err()
            {
                info!("remote access: the web server is busy; a data connection closed");
            }
        });
    }

    fn ledger(&self, dest: &str, kind: &str, bytes: u64, summary: &str) {
        if let Err(e) = self
            .deps
            .store
            .record_egress(Time90k::now(), dest, kind, bytes, summary)
        {
            warn!("egress ledger: {e}");
        }
    }

    /// Ledger retention (see [`LEDGER_KEEP`]); the removed entries become one
    /// summary row that keeps their count and bytes.
    async fn prune_ledger(&self) {
        let store = self.deps.store.clone();
        let keep_from =
            Time90k::now() - candor_media::Duration90k(LEDGER_KEEP.as_secs() as i64 * 90_000);
        match tokio::task::spawn_blocking(move || store.prune_egress(keep_from, LEDGER_MAX_ROWS))
            .await
        {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => info!("egress ledger: {n} entries past retention summarized in one"),
            Ok(Err(e)) => warn!("egress ledger retention: {e}"),
            Err(e) => warn!("egress ledger retention: {e}"),
        }
    }

    /// Answers a ping: the hour's heartbeat row grows first, then the pong leaves.
    async fn pong(
        &self,
        io: &mut LinkIo,
        dest: &str,
        nonce: u64,
        beat: &mut Option<Beat>,
    ) -> Result<(), String> {
        let bytes = candor_link::encode(&Frame::Control(Message::Pong { nonce }))
            .map_err(|e| e.to_string())?;
        let n = bytes.len() as u64;
        let hour = Time90k::now().0 / (3600 * 90_000);
        let (row, count) = match beat {
            Some(b) if b.hour == hour => (Some(b.id), b.count + 1),
            _ => (None, 1),
        };
        let summary = format!(
            "{count} heartbeat answers (pong, about {n} bytes each) in this connection-hour; pings are answered at most every {} s",
            PONG_MIN_INTERVAL.as_secs()
        );
        let store = self.deps.store.clone();
        let d = dest.to_string();
        let id = tokio::task::spawn_blocking(move || match row {
            Some(id) => store.add_to_egress(id, n, &summary).map(|_| id),
            None => store.record_egress(Time90k::now(), &d, "pong", n, &summary),
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("egress ledger: {e}; not sending"))?;
        *beat = Some(Beat { id, hour, count });
        io.write(Message::Pong { nonce }, n)
    }

    /// Records, then sends. Nothing leaves that the ledger doesn't show.
    /// The grants the web app last set, if it has (not before: an empty
    /// list would clear the cloud's mirror of grants that exist).
    async fn send_grants(
        &mut self,
        io: &mut LinkIo,
        dest: &str,
        core: &mut session::Linked,
    ) -> Result<(), String> {
        let report = self.grants.borrow_and_update().clone();
        let Some(report) = report else { return Ok(()) };
        let m = Message::Grants {
            generation: report.generation,
            grants: report.grants,
        };
        // Made from the recorder's own rows, which its forms check as the
        // link does; should one still not fit, it is left out, not a reason
        // to end the link at every connection.
        if let Err(e) = m.validate() {
            warn!("grants not reported to the cloud: {e}");
            return Ok(());
        }
        core.grants_sent(report.generation);
        self.send(io, dest, &m).await
    }

    async fn send(&self, io: &mut LinkIo, dest: &str, m: &Message) -> Result<(), String> {
        let bytes = candor_link::encode(&Frame::Control(m.clone())).map_err(|e| e.to_string())?;
        let json = String::from_utf8_lossy(&bytes[10..]).into_owned();
        let store = self.deps.store.clone();
        let (d, k, n) = (dest.to_string(), m.name().to_string(), bytes.len() as u64);
        tokio::task::spawn_blocking(move || store.record_egress(Time90k::now(), &d, &k, n, &json))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("egress ledger: {e}; not sending"))?;
        io.write(m.clone(), n)
    }

    /// `footage_days` sums the index's usage, the one costly part: asked
    /// for only when the message will be sent.
    fn status(&self, seq: u64, footage_days: bool) -> Message {
        let sharing = self.config.sharing;
        if sharing == Sharing::OnlineOnly {
            return Message::Status {
                seq,
                cameras: None,
                disk_used_percent: None,
                footage_days: None,
                last_event_at: None,
                footage_target_days: None,
                certificate: None,
            };
        }
        let now_i = Instant::now();
        let mut seen = self
            .write_errors_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let cams = self
            .deps
            .status
            .status()
            .into_iter()
            .map(|s| {
                let streaming =
                    matches!(s.camera.state, crate::ingest::CameraState::Streaming { .. });
                let n = s.storage.write_errors;
                let e = seen.entry(s.camera.name.clone()).or_insert((0, now_i));
                if n > e.0 {
                    *e = (n, now_i);
                }
                let failing = n > 0 && now_i.duration_since(e.1) < WRITE_ERRORS_RECENT;
                candor_link::CameraHealth {
                    name: s.camera.name,
                    streaming,
                    recording: streaming && !failing,
                }
            })
            .collect();
        drop(seen);
        let store = &self.deps.store;
        let disk = candor_storage::retention::disk_space(store)
            .ok()
            .filter(|(_, total)| *total > 0)
            .map(|(free, total)| (100.0 * (total - free) as f64 / total as f64) as f32);
        let now = Time90k::now();
        let days = footage_days
            .then(|| store.usage().ok())
            .flatten()
            .and_then(|u| {
                u.iter()
                    .filter_map(|u| u.oldest)
                    .min_by_key(|o| o.0)
                    .map(|o| ((now.0 - o.0) as f64 / (86_400.0 * 90_000.0)) as f32)
            });
        let last_event = if sharing == Sharing::HealthAndEvents {
            store
                .events(&candor_storage::events::EventFilter {
                    limit: Some(1),
                    ..Default::default()
                })
                .ok()
                .and_then(|e| e.into_iter().next())
                .map(|e| e.start.to_timestamp().to_string())
        } else {
            None
        };
        Message::Status {
            seq,
            cameras: Some(cams),
            disk_used_percent: disk.map(|d| d.max(0.0)),
            footage_days: days.map(|d| d.max(0.0)),
            last_event_at: last_event,
            footage_target_days: self.deps.footage_target_days,
            certificate: self.certificate_trouble(),
        }
    }

    fn certificate_trouble(&self) -> Option<String> {
        certificate_trouble(
            &self.state.borrow().remote,
            jiff::Timestamp::now().as_second(),
        )
    }

    /// The I/O shell of a paired connection: reads the cloud, the clock,
    /// the outbox and local commands, and carries out what
    /// [`session::Linked`] decides.
    async fn linked(
        &mut self,
        io: &mut LinkIo,
        ended: &mut mpsc::UnboundedReceiver<candor_link::tunnel::Ended>,
        dest: &str,
    ) -> Ended {
        self.prune_ledger().await;
        let mut last_prune = Instant::now();
        let mut beat: Option<Beat> = None;
        let ours = self.state.borrow().paired.as_ref().map(|p| p.site.clone());
        let mut core = Linked::new(
            ours,
            self.config.sharing,
            self.config.private_alarms,
            Time90k::now(),
            Instant::now(),
        );
        core.set_dial(io.dial);
        let hello = Message::Hello {
            proto: candor_link::VERSION,
            software: format!("candor {}", candor_wire::version()),
            sharing: self.config.sharing,
            remote: self.config.remote_access,
        };
        if self.config.remote_access {
            core.ask_remote();
        }
        if let Err(e) = self.send(io, dest, &hello).await {
            return Ended::Retry(e);
        }
        let tunnel = io.tunnel.clone();
        // Names this connection to the grants check (see `CloudGrants`).
        let conn_id: u64 = rand::random();
        let mut status_tick = tokio::time::interval(Duration::from_secs(2));
        // The outbox is read when something may wait in it: after the welcome
        // and whenever an alarm was queued, not on every tick.
        let mut drain = false;
        // The ACME task waits on this for the cloud's answer (dropped with
        // the connection: the task then hears the link closed).
        let mut acme_reply: Option<tokio::sync::oneshot::Sender<Result<(), String>>> = None;
        loop {
            if core.welcomed() && drain {
                drain = false;
                let store = self.deps.store.clone();
                let pending = tokio::task::spawn_blocking(move || store.pending_alarms(100))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or_default();
                for (id, m) in core.alarms(&pending) {
                    if let Err(e) = self.deps.store.alarm_attempted(id) {
                        warn!("cloud outbox: {e}");
                    }
                    if let Err(e) = self.send(io, dest, &m).await {
                        return Ended::Retry(e);
                    }
                }
            }
            let msg = tokio::select! {
                r = io.next(true) => match r {
                    Ok(In::Message(m)) => m,
                    Ok(In::Open { stream, client, first }) => {
                        if let Err(e) = self.open_stream(io, &core, stream, client, first) {
                            return Ended::Retry(e);
                        }
                        continue;
                    }
                    Err(e) => return Ended::Retry(e),
                },
                Some(e) = ended.recv() => {
                    io.ledgered += e.wire;
                    self.tunnel_row(dest, &e);
                    continue;
                }
                _ = tunnel.ended() => return Ended::Retry("sending to the cloud failed".into()),
                _ = self.wake.notified() => { drain = true; continue }
                Ok(()) = self.grants.changed() => {
                    if core.welcomed()
                        && let Err(e) = self.send_grants(io, dest, &mut core).await
                    {
                        return Ended::Retry(e);
                    }
                    continue;
                }
                _ = status_tick.tick() => {
                    let now = Instant::now();
                    if core.silent(now) {
                        return Ended::Retry("the cloud went silent".into());
                    }
                    // Data connections keep failing while the link works: a
                    // network that lets only TLS out. Streams over the link
                    // for the next hour (a reconnect offers only those).
                    if io.dial && self.data_conns.failures() >= DIAL_FAILURES {
                        warn!(
                            "remote access: {DIAL_FAILURES} data connections in a row failed to reach the cloud; \
                             using streams over the link for the next hour"
                        );
                        self.dial_off_until = Some(now + Duration::from_secs(3600));
                        self.data_conns.forget_failures();
                        return Ended::Again;
                    }
                    // Retention also while a link stays up for months.
                    if last_prune.elapsed() > Duration::from_secs(3600) {
                        last_prune = Instant::now();
                        self.prune_ledger().await;
                    }
                    if let Some(seq) = core.status_due(&self.status(0, false), now) {
                        let s = self.status(seq, true);
                        if let Err(e) = self.send(io, dest, &s).await {
                            return Ended::Retry(e);
                        }
                        core.status_sent(s, seq, now);
                    }
                    continue;
                }
                c = self.cmd.recv() => {
                    match c {
                        Some(Cmd::Unpair) => {
                            let _ = self.send(io, dest, &Message::Unpair {}).await;
                            self.forget("unpaired on the recorder");
                            return Ended::Again;
                        }
                        Some(Cmd::Settings { sharing, private_alarms }) => {
                            self.settings(sharing, private_alarms);
                            // Reconnect so the cloud hears the new level in Hello
                            // and the next status follows it.
                            return Ended::Again;
                        }
                        Some(Cmd::Remote(on)) => {
                            self.set_remote(on);
                            // Reconnect: the hello says it, and switching off
                            // ends every remote connection at once.
                            return Ended::Again;
                        }
                        Some(Cmd::Notice { event, technician, org }) => {
                            let m = Message::AccessNotice { event, technician, org };
                            if core.welcomed()
                                && m.validate().is_ok()
                                && let Err(e) = self.send(io, dest, &m).await
                            {
                                return Ended::Retry(e);
                            }
                            continue;
                        }
                        Some(Cmd::AcmeDns { txt, caa, reply }) => {
                            match core.acme_ask(Instant::now()) {
                                Ok(()) => {
                                    if let Err(e) = self.send(io, dest, &Message::AcmeDns { txt, caa }).await {
                                        let _ = reply.send(Err(e.clone()));
                                        return Ended::Retry(e);
                                    }
                                    acme_reply = Some(reply);
                                }
                                Err(e) => {
                                    let _ = reply.send(Err(e.into()));
                                }
                            }
                            continue;
                        }
                        Some(c) => { not_linked(c); continue }
                        None => return Ended::Shutdown,
                    }
                }
                _ = self.deps.shutdown.changed() => return Ended::Shutdown,
            };
            match core.on_message(msg, Instant::now()) {
                Action::None => {}
                Action::Dial { token, client } => self.dial(token, client, dest),
                Action::Up => {
                    drain = true;
                    if let Err(e) = self.send_grants(io, dest, &mut core).await {
                        return Ended::Retry(e);
                    }
                    self.state.send_modify(|s| {
                        s.connected = true;
                        s.last_error = None;
                    });
                    info!("cloud link up ({dest})");
                }
                Action::Delivered(alarm) => {
                    drain = true;
                    let store = self.deps.store.clone();
                    match tokio::task::spawn_blocking(move || store.alarm_delivered(alarm)).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => warn!("cloud outbox: {e}"),
                        Err(e) => warn!("cloud outbox: {e}"),
                    }
                }
                Action::Throttled => warn!(
                    "the cloud sends more than {CAUSED_PER_MINUTE} requests a minute; ignoring some"
                ),
                Action::Acknowledge { alarm, by } => {
                    // The outbox keeps delivered alarms (with their event) for
                    // a while, so an acknowledgement finds its event.
                    let store = self.deps.store.clone();
                    let by2 = by.clone();
                    let ok = tokio::task::spawn_blocking(move || {
                        store.ack_alarm(alarm as i64, &by2, Time90k::now())
                    })
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or(false);
                    info!("alarm {alarm} acknowledged in the cloud by {by} (recorded: {ok})");
                    if let Err(e) = self.send(io, dest, &Message::AckRecorded { alarm }).await {
                        return Ended::Retry(e);
                    }
                }
                Action::SharingRequest(sharing) => {
                    info!(
                        "the cloud asks for sharing level {sharing:?}; an admin decides on the Cloud page"
                    );
                    self.state
                        .send_modify(|s| s.sharing_request = Some(sharing));
                }
                Action::AccessRequest(r) => {
                    info!(
                        "the cloud relays an access request from {} ({}); an admin decides on the Access page",
                        r.technician, r.org
                    );
                    if self.access_tx.try_send(r).is_err() {
                        warn!("access request dropped: too many waiting to be stored");
                    }
                }
                Action::GrantsStored(generation) => {
                    let _ = self
                        .claims_tx
                        .try_send(CloudGrants::Stored(generation, conn_id));
                }
                Action::GrantClaims { generation, grants } => {
                    let c = CloudGrants::Claims(GrantReport { generation, grants }, conn_id);
                    if self.claims_tx.try_send(c).is_err() {
                        warn!(
                            "the cloud's grant claims were not checked: the last are still waiting"
                        );
                    }
                }
                Action::Pong(nonce) => {
                    if let Err(e) = self.pong(io, dest, nonce, &mut beat).await {
                        return Ended::Retry(e);
                    }
                }
                Action::Remote { host, port, acme } => {
                    let pinned = self
                        .state
                        .borrow()
                        .paired
                        .as_ref()
                        .and_then(|p| p.remote_host.clone());
                    match pinned {
                        Some(p) if p != host => {
                            warn!(
                                "the cloud names this recorder {host}, not {p} as before: remote access stays off"
                            );
                            return Ended::Retry(format!(
                                "the cloud changed this recorder's remote name (was {p}, now {host})"
                            ));
                        }
                        Some(_) => {}
                        None => {
                            let mut paired = self.state.borrow().paired.clone();
                            if let Some(p) = &mut paired {
                                p.remote_host = Some(host.clone());
                                if let Err(e) = self.files.save_paired(p) {
                                    return Ended::Retry(e);
                                }
                            }
                            self.state.send_modify(|s| s.paired = paired);
                        }
                    }
                    let url = if port == 443 {
                        format!("https://{host}/")
                    } else {
                        format!("https://{host}:{port}/")
                    };
                    info!("remote access through the cloud at {url}");
                    self.state.send_modify(|s| {
                        s.remote.host = Some(host);
                        s.remote.url = Some(url);
                        s.remote.acme_dns = acme;
                    });
                }
                Action::AcmeDnsDone(error) => {
                    if let Some(r) = acme_reply.take() {
                        let _ = r.send(error.map_or(Ok(()), Err));
                    }
                }
                Action::Forget(why) => {
                    self.forget(&why);
                    return Ended::Again;
                }
                Action::End(why) => return Ended::Retry(why),
            }
        }
    }
}

#[cfg(test)]
mod certificate_tests {
    use super::*;

    #[test]
    fn certificate_trouble_is_a_failing_renewal_or_an_expiry_within_14_days() {
        let now = 1_800_000_000;
        let at = |secs: i64| jiff::Timestamp::from_second(secs).unwrap().to_string();
        let view = |state, source, after: i64, error: Option<&str>| RemoteView {
            enabled: true,
            certificate: acme::CertView {
                source,
                state,
                not_after: Some(at(after)),
                error: error.map(str::to_owned),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            certificate_trouble(&view("valid", "acme", now + 60 * 86_400, None), now),
            None
        );
        let t = certificate_trouble(&view("valid", "acme", now + 86_400, None), now).unwrap();
        assert!(t.starts_with("expires "), "{t}");
        // A self-signed stand-in is what the recorder serves until the CA
        // answers: its expiry is not trouble, its failing renewal is.
        assert_eq!(
            certificate_trouble(&view("obtaining", "self_signed", now + 86_400, None), now),
            None
        );
        // The CA's words stay on the recorder.
        let t = certificate_trouble(
            &view(
                "retrying",
                "self_signed",
                now + 86_400,
                Some("/etc/secret path\nx"),
            ),
            now,
        )
        .unwrap();
        assert!(
            t.starts_with("failing to renew") && !t.contains("secret"),
            "{t}"
        );
        let mut off = view("retrying", "acme", now, Some("x"));
        off.enabled = false;
        assert_eq!(certificate_trouble(&off, now), None);
    }
}
