//! The optional cloud (`candor cloud -c cloud.toml`); see `docs/design/cloud.md`.
//!
//! One TLS port serves two things, told apart by ALPN after the handshake:
//! the owners' web app (`h2`/`http/1.1`, [`api`]) and the recorders' link
//! (`candor-link/1`, [`link`]). Recorders authenticate with their own
//! Ed25519 key as a client certificate; the cloud stores only public keys.
//! The cloud can't reach a recorder: it answers on connections recorders
//! open, and the only things it may say are the messages `candor-link`
//! allows from the cloud.

pub mod api;
pub mod db;
pub mod dns;
pub mod link;
pub mod push;
pub mod relay;
pub mod ui;

use db::{Db, Val};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};

#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("database: {0}")]
    Db(#[from] db::DbError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("remote zone {zone}: {message}")]
    Zone { zone: String, message: String },
}

impl CloudError {
    /// The config file can't be read or is invalid: the operator's to fix
    /// (the binary exits with 2 for these, as for the recorder's config).
    pub fn is_config(&self) -> bool {
        matches!(self, CloudError::Read { .. } | CloudError::Config { .. })
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 443))
}

fn default_subject() -> String {
    "mailto:admin@localhost".into()
}

/// `cloud.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Web app and recorder link, one TLS port.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Holds the generated TLS certificate and, by default, `cloud.db`.
    pub data_dir: PathBuf,
    /// `postgres://user@host/db`, or a SQLite file (default `<data_dir>/cloud.db`).
    #[serde(default)]
    pub database: Option<String>,
    /// PEM certificate chain and key; generated (self-signed) when absent.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// Names (DNS or IP) the generated certificate covers besides localhost
    /// and the loopback addresses: the name recorders and phones use to
    /// reach this cloud. Ignored with `cert`/`key`.
    #[serde(default)]
    pub hostnames: Vec<String>,
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// The VAPID contact (`mailto:` or `https:`) push services may use.
    #[serde(default = "default_subject")]
    pub vapid_subject: String,
    /// Extra CA certificates (PEM) trusted for push endpoints, beside the
    /// public roots. For a private push service (and the tests).
    #[serde(default)]
    pub push_ca: Option<PathBuf>,
    /// Seconds without a frame from a recorder before it is shown offline.
    #[serde(default = "default_offline")]
    pub offline_after_secs: u64,
    /// Push service hosts allowed although they resolve to non-public
    /// addresses (a push service inside the operator's network). Others
    /// must resolve to public addresses only.
    #[serde(default)]
    pub push_allow_hosts: Vec<String>,
    /// Open connections at most (recorders and app), in all.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Open app (browser) connections at most from one address. Recorder
    /// links are not counted here: many sites may share one NAT address.
    #[serde(default = "default_max_app_per_address")]
    pub max_app_connections_per_address: usize,
    /// Links with an unknown key (recorders pairing) at once from one
    /// address; each also ends 11 minutes after it opened.
    #[serde(default = "default_pairing_per_address")]
    pub max_pairing_per_address: usize,
    /// An app connection on which nothing moves for this long is closed.
    #[serde(default = "default_idle")]
    pub idle_timeout_secs: u64,
    /// Remote access (docs/design/remote.md): browsers reach a recorder
    /// that allows it at `https://<label>.<remote_zone>/` on this cloud's
    /// port, and the cloud passes their TLS, unopened, to the recorder.
    /// Off when absent. The zone's names must resolve to this cloud.
    #[serde(default)]
    pub remote_zone: Option<String>,
    /// The port browsers connect to for remote access, if not `listen`'s
    /// (a NAT or load balancer in front).
    #[serde(default)]
    pub remote_port: Option<u16>,
    /// Where the cloud serves `remote_zone` as its authoritative DNS server
    /// (UDP and TCP), e.g. `0.0.0.0:53`; delegate the zone here (NS). It
    /// answers recorders' ACME DNS-01 challenges, so they get publicly
    /// trusted certificates for their own keys. Off when absent.
    #[serde(default)]
    pub dns_listen: Option<SocketAddr>,
    /// The addresses every `<label>.<remote_zone>` resolves to: this
    /// cloud's public addresses. Required with `dns_listen`.
    #[serde(default)]
    pub remote_addresses: Vec<std::net::IpAddr>,
}

fn default_pairing_per_address() -> usize {
    link::PAIRING_PER_ADDRESS
}

fn default_idle() -> u64 {
    60
}

fn default_max_connections() -> usize {
    20_000
}

fn default_max_app_per_address() -> usize {
    64
}

fn default_offline() -> u64 {
    25
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, CloudError> {
        let text = std::fs::read_to_string(path).map_err(|source| CloudError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut c: Config = toml::from_str(&text).map_err(|e| CloudError::Config {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        if c.data_dir.is_relative()
            && let Some(dir) = path.parent()
        {
            c.data_dir = dir.join(&c.data_dir);
        }
        for h in &c.hostnames {
            let ip = h.parse::<std::net::IpAddr>().is_ok();
            let dns = !h.contains([':', '/'])
                && rustls::pki_types::ServerName::try_from(h.as_str()).is_ok();
            if !(ip || dns) {
                return Err(CloudError::Config {
                    path: path.to_owned(),
                    message: format!(
                        "hostnames: {h:?} is not a DNS name or an IP address (write it without port or scheme)"
                    ),
                });
            }
        }
        if let Some(z) = &mut c.remote_zone {
            *z = z.trim_end_matches('.').to_ascii_lowercase();
            let ok = z.split('.').count() >= 2
                && z.split('.').all(|l| {
                    (1..=63).contains(&l.len())
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !ok || z.len() > 200 {
                return Err(CloudError::Config {
                    path: path.to_owned(),
                    message: format!(
                        "remote_zone: {z:?} is not a DNS zone (like remote.example.com: at least two labels, no scheme or port)"
                    ),
                });
            }
        }
        if c.dns_listen.is_some() && (c.remote_zone.is_none() || c.remote_addresses.is_empty()) {
            return Err(CloudError::Config {
                path: path.to_owned(),
                message: "dns_listen needs remote_zone and remote_addresses (the addresses the zone's names resolve to: this cloud's)".into(),
            });
        }
        if !(5..=600).contains(&c.offline_after_secs) {
            return Err(CloudError::Config {
                path: path.to_owned(),
                message: "offline_after_secs must be between 5 and 600".into(),
            });
        }
        if !(c.vapid_subject.starts_with("mailto:") || c.vapid_subject.starts_with("https:")) {
            return Err(CloudError::Config {
                path: path.to_owned(),
                message: "vapid_subject must be a mailto: or https: URL".into(),
            });
        }
        Ok(c)
    }

    pub fn database_url(&self) -> String {
        self.database.clone().unwrap_or_else(|| {
            self.data_dir
                .join("cloud.db")
                .to_string_lossy()
                .into_owned()
        })
    }
}

/// What the open apps of one account learn in real time.
#[derive(Clone, Debug)]
pub struct Notice {
    pub account: String,
    /// Serialized once, and shared (not copied) by every socket it goes to.
    pub json: axum::extract::ws::Utf8Bytes,
}

/// A pairing in progress, keyed by its one-time code.
pub struct Pairing {
    pub pubkey: [u8; 32],
    pub name: String,
    pub expires: std::time::Instant,
    /// To the recorder's pairing connection.
    pub tx: mpsc::Sender<candor_link::Message>,
    pub claim: Option<Claim>,
}

#[derive(Clone)]
pub struct Claim {
    pub id: String,
    pub account: String,
    pub email: String,
    pub confirmation: String,
    /// Set when the recorder confirmed.
    pub site: Option<String>,
}

pub struct Online {
    pub tx: mpsc::Sender<candor_link::Message>,
    pub conn: u64,
}

/// A site's link as remote access sees it, keyed by the site's label in
/// [`Cloud::remote`] while the link is up.
pub struct RemoteEnd {
    pub site: String,
    pub conn: u64,
    pub tunnel: candor_link::tunnel::Tunnel,
    /// The recorder's last hello allowed remote access.
    pub allowed: std::sync::atomic::AtomicBool,
    /// … and its link settled on `candor_link::ALPN_DIAL`: browsers go to
    /// it as data connections (`Message::Dial`).
    pub dial: std::sync::atomic::AtomicBool,
    /// Stream ids the cloud opens: odd, rising.
    pub next_stream: std::sync::atomic::AtomicU32,
    /// Opens in the last minute, and by whom (see [`relay::OPENS_PER_MINUTE`]).
    pub opens: Mutex<std::collections::VecDeque<(std::time::Instant, std::net::IpAddr)>>,
    /// Places for the site's streams: [`candor_link::mux::MAX_STREAMS`] in
    /// all, [`relay::STREAMS_PER_CLIENT`] per client address.
    pub streams: Arc<candor_auth::conn::ConnGate>,
    /// Counts the times this site's browsers were cut off: its link ended,
    /// or its hello switched remote access off. A joined data connection
    /// closes when the count moves past the one it was joined under (the
    /// recorder closes its side too; this does not rely on it).
    pub cuts: tokio::sync::watch::Sender<u64>,
}

impl RemoteEnd {
    /// Closes every data connection joined so far.
    pub fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }
}

/// A link's last sign of life, watched by [`link::silence_sweeper`]: one
/// task checks every connection each second, instead of a timer per
/// connection (10,000 wake-ups a second at 10,000 recorders).
pub struct Liveness {
    /// Milliseconds since [`epoch_ms`]'s start when the last bytes arrived.
    pub last: std::sync::atomic::AtomicU64,
    pub kill: tokio::sync::Notify,
}

/// Monotonic milliseconds since the first call.
pub fn epoch_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    EPOCH
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

pub struct Cloud {
    pub config: Config,
    pub db: Db,
    pub online: Mutex<HashMap<String, Online>>,
    pub pairings: Mutex<HashMap<String, Pairing>>,
    pub liveness: Mutex<HashMap<u64, Arc<Liveness>>>,
    pub notices: broadcast::Sender<Notice>,
    pub limiter: candor_auth::Limiter,
    /// Bounds concurrent argon2 work (sign-in, sign-up, password changes).
    pub hashing: candor_auth::HashGate,
    /// Signs device cookies (browsers that signed in before).
    pub device_key: candor_auth::DeviceKey,
    /// Places for links whose key is unknown (pairing): see [`link::PAIRING_PER_ADDRESS`].
    pub pairing_gate: Arc<candor_auth::conn::ConnGate>,
    pub push: push::Push,
    /// Sites whose link is up, by label, for remote access.
    pub remote: Mutex<HashMap<String, Arc<RemoteEnd>>>,
    /// Browsers waiting for their recorder's data connection, by token
    /// (see [`relay::dial`]).
    pub dials: Arc<Mutex<HashMap<String, relay::Waiting>>>,
    /// The remote zone's DNS records, when this cloud serves them (`dns_listen`).
    pub dns: Option<Arc<dns::Zone>>,
    /// ACME DNS requests in the last minute, per site, across reconnects
    /// (see [`link::ACME_PER_MINUTE`]); only paired sites have entries.
    pub acme_asked: Mutex<HashMap<String, std::collections::VecDeque<std::time::Instant>>>,
    next_conn: std::sync::atomic::AtomicU64,
}

/// The device cookie key, made on first start and kept in the database.
async fn device_key(db: &Db) -> Result<candor_auth::DeviceKey, CloudError> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let fresh: [u8; 32] = rand::random();
    db.exec(
        "INSERT INTO meta (key, value) VALUES ('device_key', $1) ON CONFLICT (key) DO NOTHING",
        vec![b64.encode(fresh).into()],
    )
    .await?;
    let k = db
        .query_one("SELECT value FROM meta WHERE key = 'device_key'", vec![])
        .await?
        .and_then(|r| r.text(0).ok())
        .and_then(|s| b64.decode(s).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .unwrap_or(fresh);
    Ok(candor_auth::DeviceKey::new(k))
}

pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

impl Cloud {
    pub async fn open(config: Config) -> Result<Arc<Cloud>, CloudError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| CloudError::Read {
            path: config.data_dir.clone(),
            source,
        })?;
        {
            // cloud.db holds the VAPID key and TOTP secrets.
            use std::os::unix::fs::PermissionsExt;
            let _ =
                std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700));
        }
        let db = Db::open(&config.database_url()).await?;
        // Sites can't be online before anyone connected.
        db.exec("UPDATE site SET online = 0", vec![]).await?;
        let push = push::Push::open(&db, &config).await?;
        let device_key = device_key(&db).await?;
        let pairing_gate = candor_auth::conn::ConnGate::new(candor_auth::conn::Limits {
            max_connections: link::PAIRING_IN_ALL,
            max_per_address: config.max_pairing_per_address.max(1),
            ..Default::default()
        });
        let dns = match (&config.dns_listen, &config.remote_zone) {
            (Some(_), Some(zone)) => {
                let z = dns::Zone::new(zone, &config.remote_addresses).map_err(|message| {
                    CloudError::Zone {
                        zone: zone.clone(),
                        message,
                    }
                })?;
                // The CAA records recorders asked for hold while they are offline.
                let rows = db
                    .query(
                        "SELECT label, caa FROM site WHERE label IS NOT NULL AND caa IS NOT NULL",
                        vec![],
                    )
                    .await?;
                for r in rows {
                    let (Ok(label), Ok(caa)) = (r.text(0), r.text(1)) else {
                        continue;
                    };
                    if let Ok(c) = serde_json::from_str::<candor_link::Caa>(&caa) {
                        let _ = z.set(&label, &[], Some(&c)).await;
                    }
                }
                Some(Arc::new(z))
            }
            _ => None,
        };
        Ok(Arc::new(Cloud {
            config,
            dns,
            acme_asked: Mutex::default(),
            db,
            online: Mutex::default(),
            pairings: Mutex::default(),
            liveness: Mutex::default(),
            notices: broadcast::channel(1024).0,
            limiter: candor_auth::Limiter::default(),
            hashing: candor_auth::HashGate::default(),
            device_key,
            pairing_gate,
            push,
            remote: Mutex::default(),
            dials: Arc::default(),
            next_conn: 0.into(),
        }))
    }

    pub fn conn_id(&self) -> u64 {
        self.next_conn
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    pub fn notify(&self, account: &str, n: candor_wire::cloud::Notice) {
        let _ = self.notices.send(Notice {
            account: account.to_owned(),
            json: serde_json::to_string(&n).unwrap_or_default().into(),
        });
    }

    /// The site's row as the app shows it.
    pub async fn site_json(
        &self,
        site: &str,
    ) -> Result<Option<candor_wire::cloud::Site>, db::DbError> {
        let Some(r) = self
            .db
            .query_one(
                "SELECT id, name, sharing, paired_at, online, since, status, label, remote FROM site WHERE id = $1",
                vec![Val::from(site)],
            )
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(site_row(&r, &self.config)?))
    }
}

/// A site row (`id, name, sharing, paired_at, online, since, status, label,
/// remote`) as the app shows it.
/// Where browsers reach a site's recorder, if its remote access is on.
pub fn remote_url(config: &Config, label: Option<String>, remote: bool) -> Option<String> {
    match (&config.remote_zone, label, remote) {
        (Some(zone), Some(label), true) => {
            let port = config.remote_port.unwrap_or(config.listen.port());
            Some(if port == 443 {
                format!("https://{label}.{zone}/")
            } else {
                format!("https://{label}.{zone}:{port}/")
            })
        }
        _ => None,
    }
}

pub fn site_row(r: &db::Row, config: &Config) -> Result<candor_wire::cloud::Site, db::DbError> {
    let remote = remote_url(config, r.opt_text(7)?, r.int(8)? != 0);
    Ok(candor_wire::cloud::Site {
        remote,
        id: r.text(0)?,
        name: r.text(1)?,
        sharing: r.text(2)?,
        paired_at: ts(r.int(3)?),
        online: r.int(4)? != 0,
        since: ts(r.int(5)?),
        status: r
            .opt_text(6)?
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok()),
    })
}

pub fn ts(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The TLS set-up: TLS 1.3 only (every current browser has it, and the
/// link requires it), recorder keys checked by [`candor_link::identity`].
pub fn tls_config(
    config: &Config,
) -> Result<(Arc<rustls::ServerConfig>, candor_auth::tls::Loaded), CloudError> {
    let id = candor_auth::tls::load_or_generate_for(
        &config.data_dir.join("tls"),
        config.cert.as_deref(),
        config.key.as_deref(),
        "cloud.toml",
        &config.hostnames,
    )
    .map_err(CloudError::Tls)?;
    let certs = id.certs.clone();
    let key = id.key.clone_key();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut c = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| CloudError::Tls(e.to_string()))?
        .with_client_cert_verifier(candor_link::identity::RecorderKeyVerifier::new())
        .with_single_cert(certs, key)
        .map_err(|e| CloudError::Tls(e.to_string()))?;
    c.alpn_protocols = vec![
        candor_link::ALPN_DIAL.to_vec(),
        candor_link::ALPN.to_vec(),
        b"h2".to_vec(),
        b"http/1.1".to_vec(),
    ];
    Ok((Arc::new(c), id))
}

/// Runs until `shutdown` turns true.
pub async fn run(config: Config, mut shutdown: watch::Receiver<bool>) -> Result<(), CloudError> {
    let (tls, id) = tls_config(&config)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| CloudError::Listen {
            addr: config.listen,
            source,
        })?;
    let cloud = Cloud::open(config).await?;
    tracing::info!(
        addr = %listener.local_addr().map_or(cloud.config.listen, |a| a),
        database = cloud.db.kind(),
        "cloud listening; certificate {} {}(SHA-256 {})",
        id.cert_path.display(),
        if id.generated { "(generated now) " } else { "" },
        id.fingerprint
    );
    if cloud.config.cert.is_none() {
        // The generated certificate is self-signed: say how recorders and
        // phones come to trust it, and for which names it is valid.
        let mut names = vec!["localhost", "127.0.0.1", "::1"];
        names.extend(cloud.config.hostnames.iter().map(String::as_str));
        tracing::warn!(
            "the certificate is self-signed and valid for {}: set `hostnames` in cloud.toml to the name recorders \
             and phones use, copy {} to each recorder and set its [cloud] ca to that file; phones must trust it \
             too to install the app and receive Web Push. A certificate from a public CA (cert/key) needs neither.",
            names.join(", "),
            id.cert_path.display()
        );
    }
    tokio::spawn(link::sweeper(cloud.clone()));
    tokio::spawn(link::silence_sweeper(cloud.clone()));
    let _dns = match (&cloud.dns, cloud.config.dns_listen) {
        (Some(zone), Some(addr)) => {
            let udp = tokio::net::UdpSocket::bind(addr)
                .await
                .map_err(|source| CloudError::Listen { addr, source })?;
            let tcp = TcpListener::bind(addr)
                .await
                .map_err(|source| CloudError::Listen { addr, source })?;
            tracing::info!(
                "DNS for {} on {} (UDP and TCP)",
                cloud.config.remote_zone.as_deref().unwrap_or_default(),
                udp.local_addr().map_or(addr, |a| a)
            );
            Some(
                zone.serve(udp, tcp)
                    .await
                    .map_err(|source| CloudError::Listen { addr, source })?,
            )
        }
        _ => None,
    };
    let router = api::router(cloud.clone());
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    use candor_auth::conn;
    let limits = conn::Limits {
        max_connections: cloud.config.max_connections.max(1),
        max_per_address: cloud.config.max_app_connections_per_address.max(1),
        idle: std::time::Duration::from_secs(cloud.config.idle_timeout_secs.max(1)),
        ..Default::default()
    };
    // Every connection holds a place in `all` (per address: unbounded
    // before TLS, since recorders may share a NAT address); app
    // connections also hold one in `app`, capped per address.
    let all = conn::ConnGate::new(conn::Limits {
        max_per_address: usize::MAX,
        ..limits
    });
    let app = conn::ConnGate::new(conn::Limits {
        max_connections: usize::MAX,
        ..limits
    });
    let router = router.layer(axum::middleware::from_fn(move |req, next| {
        api::read_body_within(limits.body_read, req, next)
    }));
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    // Out of file descriptors under load: back off, don't spin.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return Ok(()),
        };
        let Some(place) = all.admit(peer.ip()) else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, cloud, router, app) =
            (acceptor.clone(), cloud.clone(), router.clone(), app.clone());
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + limits.handshake;
            // Remote access first: a hello for `<label>.<zone>` is passed on,
            // unopened; anything else is replayed into the cloud's own TLS.
            let io = match &cloud.config.remote_zone {
                None => relay::Rewind::new(Vec::new(), tcp),
                Some(zone) => match relay::route(zone, tcp, deadline).await {
                    relay::Routed::Cloud(io) => io,
                    relay::Routed::Remote { label, hello, tcp } => {
                        let Some(app_place) = app.admit(peer.ip()) else {
                            tracing::debug!(%peer, "remote connection refused: too many from this address");
                            return;
                        };
                        let io = conn::Tracked::new(
                            conn::Tracked::new(tcp, conn::Activity::new(), place),
                            conn::Activity::new(),
                            app_place,
                        );
                        relay::open(&cloud, &label, peer, &hello, io);
                        return;
                    }
                    relay::Routed::Dial { token, tcp } => {
                        relay::join(&cloud, &token, peer, tcp, place).await;
                        return;
                    }
                    relay::Routed::Closed => return,
                },
            };
            let tls = match tokio::time::timeout_at(deadline, acceptor.accept(io)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => return,
            };
            let (_, conn) = tls.get_ref();
            if conn.alpn_protocol() == Some(candor_link::ALPN)
                || conn.alpn_protocol() == Some(candor_link::ALPN_DIAL)
            {
                let key = conn
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| candor_link::identity::peer_key(c.as_ref()));
                match key {
                    // The link has its own silence detection (offline_after_secs).
                    Some(key) => link::serve(cloud, tls, key, peer).await,
                    None => tracing::info!(%peer, "link without a recorder key refused"),
                }
                drop(place);
                return;
            }
            let Some(app_place) = app.admit(peer.ip()) else {
                tracing::debug!(%peer, "app connection refused: too many from this address");
                return;
            };
            let io = conn::Tracked::new(tls, conn::Activity::new(), app_place);
            let router = router.layer(axum::Extension(api::PeerIp(peer.ip())));
            let service = hyper_util::service::TowerToHyperService::new(router);
            if let Err(e) = conn::serve_http(io, service, limits).await {
                tracing::debug!(%peer, "HTTP connection ended: {e}");
            }
            drop(place);
        });
    }
}

#[cfg(test)]
mod tests {
    /// The README's cloud.toml example is a valid config, hostnames included.
    #[test]
    fn the_readme_example_is_valid() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("cat > cloud.toml <<'TOML'\n").expect("example") + 26;
        let len = readme[start..].find("\nTOML").expect("end of example");
        let c: super::Config = toml::from_str(&readme[start..start + len]).unwrap();
        assert_eq!(c.hostnames, ["cloud.example.com"]);
    }
}
