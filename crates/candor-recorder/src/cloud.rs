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
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc, watch};
use tracing::{info, warn};

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
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Paired {
    pub site: String,
    pub address: String,
    pub paired_at: String,
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
}

#[derive(Clone)]
pub struct CloudHandle {
    state: watch::Receiver<LinkState>,
    cmd: mpsc::Sender<Cmd>,
}

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
}

struct Files {
    key: PathBuf,
    paired: PathBuf,
}

impl Files {
    fn new(storage: &std::path::Path) -> Files {
        let dir = storage.join("cloud");
        Files {
            key: dir.join("key"),
            paired: dir.join("paired.json"),
        }
    }

    /// The recorder's key, generated on first use. Nothing derives from a
    /// serial number or a MAC: a new key is a new identity.
    fn identity(&self) -> Result<Identity, String> {
        if let Ok(k) = std::fs::read(&self.key) {
            return Identity::from_pkcs8(&k).map_err(|e| e.to_string());
        }
        let k = Identity::generate().map_err(|e| e.to_string())?;
        if let Some(d) = self.key.parent() {
            std::fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
        }
        write_private(&self.key, &k)?;
        Identity::from_pkcs8(&k).map_err(|e| e.to_string())
    }

    fn paired(&self) -> Option<Paired> {
        serde_json::from_slice(&std::fs::read(&self.paired).ok()?).ok()
    }

    fn save_paired(&self, p: &Paired) -> Result<(), String> {
        let tmp = self.paired.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(p).unwrap_or_default())
            .and_then(|_| std::fs::rename(&tmp, &self.paired))
            .map_err(|e| format!("saving {}: {e}", self.paired.display()))
    }

    /// Final: the key goes too, so pairing again makes a new identity.
    fn forget(&self) {
        let _ = std::fs::remove_file(&self.paired);
        let _ = std::fs::remove_file(&self.key);
    }
}

fn write_private(path: &std::path::Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(data))
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// What [`run`] needs from the rest of the recorder.
pub struct Deps {
    pub store: Arc<Store>,
    pub events: EventBus,
    pub status: crate::StatusSource,
    pub shutdown: watch::Receiver<bool>,
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
        ..Default::default()
    });
    let (cmd, cmd_rx) = mpsc::channel(8);
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
        }
        .run(),
    );
    (CloudHandle { state, cmd }, task)
}

/// The outbox payload: what the alarm message may carry, decided again at
/// send time against the sharing level then in force.
#[derive(Serialize, serde::Deserialize)]
struct Queued {
    event: i64,
    camera: String,
    kind: String,
}

async fn enqueue_alarms(
    store: Arc<Store>,
    events: EventBus,
    state: watch::Receiver<LinkState>,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut rx = events.subscribe();
    loop {
        let e = tokio::select! {
            e = rx.recv() => e,
            _ = shutdown.changed() => return,
        };
        match e {
            Ok(e) if e.phase == Phase::Start => {
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
    state: watch::Sender<LinkState>,
    cmd: mpsc::Receiver<Cmd>,
    wake: Arc<Notify>,
}

enum Ended {
    /// Reconnect after the backoff.
    Retry(String),
    /// A command changed what to do; loop at once.
    Again,
    Shutdown,
}

const STATUS_EVERY: Duration = Duration::from_secs(30);
/// Pings are answered at most this often (the cloud pings every 10 s): a
/// cloud cannot make the recorder work, or write, faster by pinging.
const PONG_MIN_INTERVAL: Duration = Duration::from_secs(5);
/// Messages from the cloud that make the recorder write (acknowledgements,
/// sharing requests) are taken at most this many per minute.
const CAUSED_PER_MINUTE: u32 = 10;
/// Egress ledger retention: a year and a margin, and at most this many rows.
const LEDGER_KEEP: Duration = Duration::from_secs(400 * 24 * 3600);
const LEDGER_MAX_ROWS: i64 = 1_000_000;

/// This hour's heartbeat row in the ledger: pongs are one row per hour,
/// updated with each one (before it is sent), not a row per ping.
struct Beat {
    id: i64,
    hour: i64,
    count: u64,
}

/// Writes one encoded frame and flushes it (after its ledger row is written).
async fn write_out(conn: &mut Conn, bytes: &[u8]) -> Result<(), String> {
    conn.get_mut().0.ledgered += bytes.len() as u64;
    conn.write_all(bytes)
        .await
        .map_err(|e| format!("sending: {e}"))?;
    conn.flush().await.map_err(|e| format!("sending: {e}"))
}

/// A budget of cloud-caused work per minute.
struct Budget {
    window: Instant,
    used: u32,
}

impl Budget {
    fn new() -> Budget {
        Budget {
            window: Instant::now(),
            used: 0,
        }
    }
    fn take(&mut self) -> bool {
        if self.window.elapsed() >= Duration::from_secs(60) {
            (self.window, self.used) = (Instant::now(), 0);
        }
        self.used += 1;
        self.used <= CAUSED_PER_MINUTE
    }
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
                    Some(Cmd::StartPairing) => pairing = true,
                    Some(Cmd::Settings {
                        sharing,
                        private_alarms,
                    }) => self.settings(sharing, private_alarms),
                    Some(_) => {}
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
                                Some(_) => {}
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
        let mut conn = match connect(&self.config, &identity).await {
            Ok(c) => c,
            Err(e) => return Ended::Retry(e),
        };
        let dest = self.config.address.to_string();
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
        let r = if paired {
            self.linked(&mut conn, &dest).await
        } else {
            self.pairing(&mut conn, &dest, *identity.public_key()).await
        };
        let _ = conn.get_mut().0.shutdown().await;
        let (wire, ledgered) = (conn.get_ref().0.written, conn.get_ref().0.ledgered);
        // The rows above hold the messages; this one holds the rest of what
        // went on the wire (TLS handshake, record headers and tags), so the
        // ledger's rows add up to the bytes that really left.
        let overhead = wire.saturating_sub(ledgered);
        self.ledger(
            &dest,
            "disconnect",
            overhead,
            &format!(
                "{wire} bytes on the wire in this connection: {ledgered} in the messages above, \
                 {overhead} of TLS handshake and record overhead (counted here)"
            ),
        );
        r
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
        conn: &mut Conn,
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
        write_out(conn, &bytes).await
    }

    /// Records, then sends. Nothing leaves that the ledger doesn't show.
    async fn send(&self, conn: &mut Conn, dest: &str, m: &Message) -> Result<(), String> {
        let bytes = candor_link::encode(&Frame::Control(m.clone())).map_err(|e| e.to_string())?;
        let json = String::from_utf8_lossy(&bytes[10..]).into_owned();
        let store = self.deps.store.clone();
        let (d, k, n) = (dest.to_string(), m.name().to_string(), bytes.len() as u64);
        tokio::task::spawn_blocking(move || store.record_egress(Time90k::now(), &d, &k, n, &json))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("egress ledger: {e}; not sending"))?;
        write_out(conn, &bytes).await
    }

    async fn pairing(&mut self, conn: &mut Conn, dest: &str, key: [u8; 32]) -> Ended {
        let start = Message::PairStart {
            name: self.config.name.clone(),
        };
        if let Err(e) = self.send(conn, dest, &start).await {
            return Ended::Retry(e);
        }
        self.state.send_modify(|s| {
            s.connected = true;
            s.last_error = None;
            s.pairing = Some(PairingView::default());
        });
        let mut decoder = Decoder::new();
        let mut buf = vec![0u8; 8192];
        let mut code = String::new();
        // Set only once the local admin confirmed, and sent: the cloud's
        // `paired` counts only after it (docs/design/cloud.md).
        let mut confirmed = false;
        let (mut beat, mut last_pong) = (None, None);
        let mut deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let msg = tokio::select! {
                r = next_message(conn, &mut decoder, &mut buf) => match r {
                    Ok(m) => m,
                    Err(e) => return Ended::Retry(e),
                },
                c = self.cmd.recv() => {
                    match c {
                        Some(Cmd::Confirm) => {
                            let Some(confirmation) = self.state.borrow().pairing.as_ref().and_then(|p| p.confirmation.clone()) else {
                                continue;
                            };
                            if let Err(e) = self.send(conn, dest, &Message::PairConfirm { confirmation }).await {
                                return Ended::Retry(e);
                            }
                            confirmed = true;
                            continue;
                        }
                        Some(Cmd::Cancel) | Some(Cmd::Unpair) | None => {
                            self.state.send_modify(|s| { s.pairing = None; s.connected = false; });
                            return Ended::Again;
                        }
                        Some(Cmd::Settings { sharing, private_alarms }) => { self.settings(sharing, private_alarms); continue; }
                        Some(Cmd::StartPairing) => continue,
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.state.send_modify(|s| { s.pairing = None; s.connected = false; });
                    return Ended::Retry("the pairing code expired; start again".into());
                }
                _ = self.deps.shutdown.changed() => return Ended::Shutdown,
            };
            match msg {
                Message::PairCode {
                    code: c,
                    expires_in,
                } => {
                    code = c.clone();
                    deadline = Instant::now() + Duration::from_secs(u64::from(expires_in.min(900)));
                    self.state.send_modify(|s| {
                        s.pairing = Some(PairingView {
                            code: Some(c),
                            expires_in: Some(expires_in),
                            ..Default::default()
                        })
                    });
                }
                Message::PairClaimed { account, nonce } if !code.is_empty() => {
                    // Computed here from what the recorder itself knows: the
                    // code it showed and its own key.
                    let confirmation = candor_link::confirmation(&code, &key, &account, &nonce);
                    info!("cloud pairing claimed by {account}; confirmation code {confirmation}");
                    self.state.send_modify(|s| {
                        if let Some(p) = &mut s.pairing {
                            p.claimed_by = Some(account);
                            p.confirmation = Some(confirmation);
                        }
                    });
                }
                Message::Paired { .. } if !confirmed => {
                    // A cloud that says "paired" before this recorder's
                    // admin confirmed is lying or broken: pairing needs
                    // the person at the recorder.
                    warn!("the cloud said paired before the admin confirmed; pairing abandoned");
                    self.state.send_modify(|s| {
                        s.pairing = None;
                        s.connected = false;
                        s.last_error = Some("the cloud claimed the pairing without this recorder's confirmation; start again".into());
                    });
                    return Ended::Retry("paired without confirmation".into());
                }
                Message::Paired { site } => {
                    let p = Paired {
                        site,
                        address: self.config.address.to_string(),
                        paired_at: jiff::Timestamp::now().to_string(),
                    };
                    if let Err(e) = self.files.save_paired(&p) {
                        return Ended::Retry(e);
                    }
                    info!(site = p.site, "paired with the cloud");
                    self.state.send_modify(|s| {
                        s.paired = Some(p);
                        s.pairing = None;
                        s.connected = false;
                    });
                    return Ended::Again;
                }
                Message::Refused { reason, .. } => {
                    self.state.send_modify(|s| s.pairing = None);
                    return Ended::Retry(format!("the cloud refused: {reason}"));
                }
                Message::Ping { nonce } => {
                    if last_pong.is_some_and(|t: Instant| t.elapsed() < PONG_MIN_INTERVAL) {
                        continue;
                    }
                    last_pong = Some(Instant::now());
                    if let Err(e) = self.pong(conn, dest, nonce, &mut beat).await {
                        return Ended::Retry(e);
                    }
                }
                other => return Ended::Retry(format!("unexpected {} while pairing", other.name())),
            }
        }
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
            };
        }
        let cams = self
            .deps
            .status
            .status()
            .into_iter()
            .map(|s| {
                let streaming =
                    matches!(s.camera.state, crate::ingest::CameraState::Streaming { .. });
                candor_link::CameraHealth {
                    name: s.camera.name,
                    streaming,
                    recording: streaming && s.storage.write_errors == 0,
                }
            })
            .collect();
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
        }
    }

    async fn linked(&mut self, conn: &mut Conn, dest: &str) -> Ended {
        let connected_at = Time90k::now();
        self.prune_ledger().await;
        let mut last_prune = Instant::now();
        let mut beat: Option<Beat> = None;
        let mut last_pong: Option<Instant> = None;
        let mut caused = Budget::new();
        let hello = Message::Hello {
            proto: candor_link::VERSION,
            software: format!("candor {}", env!("CARGO_PKG_VERSION")),
            sharing: self.config.sharing,
        };
        if let Err(e) = self.send(conn, dest, &hello).await {
            return Ended::Retry(e);
        }
        let mut decoder = Decoder::new();
        let mut buf = vec![0u8; 8192];
        let mut seq = 0u64;
        let mut last_status: Option<Message> = None;
        let mut status_tick = tokio::time::interval(Duration::from_secs(2));
        let mut last_status_sent = Instant::now() - STATUS_EVERY;
        let mut welcomed = false;
        let mut sent_alarms = std::collections::HashSet::new();
        let silent = Duration::from_secs(45);
        let mut last_heard = Instant::now();
        // The outbox is read when something may wait in it: after the welcome
        // and whenever an alarm was queued, not on every tick.
        let mut drain = false;
        loop {
            if welcomed && drain {
                drain = false;
                // Drain the outbox: oldest first; each stays until stored.
                let store = self.deps.store.clone();
                let pending = tokio::task::spawn_blocking(move || store.pending_alarms(100))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or_default();
                for p in pending {
                    if !sent_alarms.insert(p.id) {
                        continue;
                    }
                    let q: Option<Queued> = serde_json::from_str(&p.payload).ok();
                    let detail = self.config.sharing == Sharing::HealthAndEvents
                        && !self.config.private_alarms;
                    let m = Message::Alarm {
                        id: p.id as u64,
                        at: p.at.to_timestamp().to_string(),
                        late: p.at < connected_at || p.attempts > 0,
                        camera: q.as_ref().filter(|_| detail).map(|q| q.camera.clone()),
                        kind: q.as_ref().filter(|_| detail).map(|q| q.kind.clone()),
                    };
                    let _ = self.deps.store.alarm_attempted(p.id);
                    if let Err(e) = self.send(conn, dest, &m).await {
                        return Ended::Retry(e);
                    }
                }
            }
            let msg = tokio::select! {
                r = next_message(conn, &mut decoder, &mut buf) => match r {
                    Ok(m) => { last_heard = Instant::now(); m }
                    Err(e) => return Ended::Retry(e),
                },
                _ = self.wake.notified() => { drain = true; continue }
                _ = status_tick.tick() => {
                    if last_heard.elapsed() > silent {
                        return Ended::Retry("the cloud went silent".into());
                    }
                    // Retention also while a link stays up for months.
                    if last_prune.elapsed() > Duration::from_secs(3600) {
                        last_prune = Instant::now();
                        self.prune_ledger().await;
                    }
                    if !welcomed { continue; }
                    // Pushed on change (cameras, disk to the percent), and
                    // every 30 s regardless.
                    let mut s = self.status(seq + 1, false);
                    let changed = match (&s, &last_status) {
                        (Message::Status { cameras: a, disk_used_percent: d1, last_event_at: e1, .. },
                         Some(Message::Status { cameras: b, disk_used_percent: d2, last_event_at: e2, .. })) =>
                            a != b || d1.map(|d| d as i32) != d2.map(|d| d as i32) || e1 != e2,
                        _ => true,
                    };
                    if changed || last_status_sent.elapsed() >= STATUS_EVERY {
                        seq += 1;
                        s = self.status(seq, true);
                        if let Err(e) = self.send(conn, dest, &s).await {
                            return Ended::Retry(e);
                        }
                        last_status = Some(s);
                        last_status_sent = Instant::now();
                    }
                    continue;
                }
                c = self.cmd.recv() => {
                    match c {
                        Some(Cmd::Unpair) => {
                            let _ = self.send(conn, dest, &Message::Unpair {}).await;
                            self.forget("unpaired on the recorder");
                            return Ended::Again;
                        }
                        Some(Cmd::Settings { sharing, private_alarms }) => {
                            self.settings(sharing, private_alarms);
                            // Reconnect so the cloud hears the new level in Hello
                            // and the next status follows it.
                            return Ended::Again;
                        }
                        Some(_) => continue,
                        None => return Ended::Shutdown,
                    }
                }
                _ = self.deps.shutdown.changed() => return Ended::Shutdown,
            };
            match msg {
                Message::Welcome { site } => {
                    let ours = self.state.borrow().paired.as_ref().map(|p| p.site.clone());
                    if ours.as_deref() != Some(site.as_str()) {
                        return Ended::Retry(format!(
                            "the cloud welcomed site {site}, not this one"
                        ));
                    }
                    welcomed = true;
                    drain = true;
                    self.state.send_modify(|s| {
                        s.connected = true;
                        s.last_error = None;
                    });
                    info!("cloud link up ({dest})");
                }
                // Only for alarms this connection sent: anything else would
                // be index work a cloud could cause at will.
                Message::AlarmStored { alarm } if !sent_alarms.contains(&(alarm as i64)) => {}
                Message::AlarmStored { alarm } => {
                    // A long outage queues more than one read takes (100).
                    drain = true;
                    let store = self.deps.store.clone();
                    let _ =
                        tokio::task::spawn_blocking(move || store.alarm_delivered(alarm as i64))
                            .await;
                }
                Message::Acknowledge { .. } | Message::SharingRequest { .. } if !caused.take() => {
                    warn!(
                        "the cloud sends more than {CAUSED_PER_MINUTE} requests a minute; ignoring some"
                    );
                }
                Message::Acknowledge { alarm, by } => {
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
                    if let Err(e) = self.send(conn, dest, &Message::AckRecorded { alarm }).await {
                        return Ended::Retry(e);
                    }
                }
                Message::SharingRequest { sharing } => {
                    info!(
                        "the cloud asks for sharing level {sharing:?}; an admin decides on the Cloud page"
                    );
                    self.state
                        .send_modify(|s| s.sharing_request = Some(sharing));
                }
                Message::Ping { nonce } => {
                    if last_pong.is_some_and(|t| t.elapsed() < PONG_MIN_INTERVAL) {
                        continue;
                    }
                    last_pong = Some(Instant::now());
                    if let Err(e) = self.pong(conn, dest, nonce, &mut beat).await {
                        return Ended::Retry(e);
                    }
                }
                Message::Refused { code, reason } => {
                    if code == candor_link::Refusal::Unpaired {
                        self.forget(&format!("the cloud says: {reason}"));
                        return Ended::Again;
                    }
                    return Ended::Retry(format!("the cloud refused: {reason}"));
                }
                other => {
                    return Ended::Retry(format!("unexpected {} from the cloud", other.name()));
                }
            }
        }
    }
}

/// A TCP stream that counts what it writes, so the ledger can state the
/// bytes that really went on the wire.
pub struct Counting {
    inner: TcpStream,
    written: u64,
    /// Frame bytes already in the ledger as message rows.
    ledgered: u64,
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &r {
            self.written += *n as u64;
        }
        r
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

type Conn = tokio_rustls::client::TlsStream<Counting>;

async fn next_message(
    conn: &mut Conn,
    decoder: &mut Decoder,
    buf: &mut [u8],
) -> Result<Message, String> {
    loop {
        match decoder.next_frame() {
            Ok(Some(Frame::Control(m))) => {
                if !m.from_cloud() {
                    return Err(format!("protocol error: the cloud sent {}", m.name()));
                }
                return Ok(m);
            }
            // No remote access streams in this version: refuse rather than ignore.
            Ok(Some(_)) => {
                return Err("protocol error: stream frame before remote access exists".into());
            }
            Ok(None) => {}
            Err(e) => return Err(format!("protocol error: {e}")),
        }
        let n = conn
            .read(buf)
            .await
            .map_err(|e| format!("receiving: {e}"))?;
        if n == 0 {
            return Err("the cloud closed the connection".into());
        }
        decoder.push(&buf[..n]);
    }
}

async fn connect(config: &CloudConfig, identity: &Identity) -> Result<Conn, String> {
    let mut roots = rustls::RootCertStore::empty();
    match &config.ca {
        Some(p) => {
            let f =
                std::fs::File::open(p).map_err(|e| format!("[cloud] ca {}: {e}", p.display()))?;
            for c in rustls_pemfile::certs(&mut std::io::BufReader::new(f)) {
                let c = c.map_err(|e| format!("[cloud] ca {}: {e}", p.display()))?;
                roots.add(c).map_err(|e| format!("[cloud] ca: {e}"))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let tls = identity.client_config(roots).map_err(|e| e.to_string())?;
    let tcp = tokio::time::timeout(Duration::from_secs(15), tcp(config))
        .await
        .map_err(|_| format!("connecting to {} timed out", config.address))??;
    let _ = tcp.set_nodelay(true);
    let name = rustls::pki_types::ServerName::try_from(config.address.host.clone())
        .map_err(|e| format!("[cloud] address: {e}"))?;
    let conn = tokio::time::timeout(
        Duration::from_secs(15),
        tokio_rustls::TlsConnector::from(Arc::new(tls)).connect(
            name,
            Counting {
                inner: tcp,
                written: 0,
                ledgered: 0,
            },
        ),
    )
    .await
    .map_err(|_| "TLS handshake with the cloud timed out".to_string())?
    .map_err(|e| format!("TLS with {}: {e}", config.address))?;
    Ok(conn)
}

async fn tcp(config: &CloudConfig) -> Result<TcpStream, String> {
    let Some(proxy) = &config.proxy else {
        return TcpStream::connect((config.address.host.as_str(), config.address.port))
            .await
            .map_err(|e| format!("connecting to {}: {e}", config.address));
    };
    let mut s = TcpStream::connect((proxy.host.as_str(), proxy.port))
        .await
        .map_err(|e| format!("connecting to proxy {proxy}: {e}"))?;
    let target = config.address.to_string();
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .map_err(|e| format!("proxy {proxy}: {e}"))?;
    // Read the proxy's answer byte by byte up to the blank line, so no byte
    // of the TLS stream that follows is consumed here.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 {
            return Err(format!("proxy {proxy}: answer too long"));
        }
        let b = s
            .read_u8()
            .await
            .map_err(|e| format!("proxy {proxy}: {e}"))?;
        head.push(b);
    }
    let status = String::from_utf8_lossy(&head);
    let line = status.lines().next().unwrap_or("");
    if line.split_whitespace().nth(1) != Some("200") {
        return Err(format!("proxy {proxy} refused CONNECT {target}: {line}"));
    }
    Ok(s)
}
