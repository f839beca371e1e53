//! `candor`: the site recorder's command-line entry point. Thin: parsing
//! arguments, printing, exit codes. The work lives in the library crates.

use anyhow::{Context, Result};
use candor_camsim::{CamSim, Source};
use candor_media::{Duration90k, Time90k};
use candor_recorder::{CameraState, Config, ConfigError, Recorder};
use candor_storage::{Export, ExportError, Store};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The clip the demo and `camsim` loop by default: 10 s of a real static
/// surveillance camera (OpenCV's vtest, re-encoded like an IP camera).
static DEMO_CLIP: &[u8] = include_bytes!("../../../assets/clips/vtest-h264-10s.mp4");

#[derive(Parser)]
#[command(
    name = "candor",
    version,
    about = "Candor: a video recorder for your cameras that works offline and tells you what it does."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Record the cameras of a config file until SIGINT/SIGTERM.
    Run {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Start the camera simulator with 4 cameras and record them; nothing to set up.
    Demo {
        /// Where to keep the demo's recordings.
        #[arg(long, default_value = "candor-demo-data")]
        data: PathBuf,
        #[arg(long, default_value_t = 4)]
        cameras: usize,
        /// RTSP port for the simulator (falls back to a free port if taken).
        #[arg(long, default_value_t = 8554)]
        port: u16,
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        seconds: Option<u64>,
    },
    /// List recorded spans (and the gaps between them) of a camera.
    Spans {
        #[arg(short, long)]
        config: PathBuf,
        #[arg(long)]
        camera: String,
        /// RFC 3339; default: everything.
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Export a time range of a camera as an MP4 file (no transcoding).
    Export {
        #[arg(short, long)]
        config: PathBuf,
        #[arg(long)]
        camera: String,
        /// Start, RFC 3339 (e.g. 2026-11-27T10:00:00Z).
        #[arg(long)]
        from: String,
        /// End, RFC 3339.
        #[arg(long)]
        to: String,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Serve simulated RTSP cameras looping an MP4 clip: rtsp://LISTEN/cam0 … camN-1.
    Camsim {
        #[arg(long, default_value = "127.0.0.1:8554")]
        listen: SocketAddr,
        #[arg(long, default_value_t = 4)]
        cameras: usize,
        /// H.264 or H.265 MP4 clip (default: the built-in 768x576 H.264 clip).
        #[arg(long)]
        source: Option<PathBuf>,
        /// Also serve ONVIF device/media services over HTTP here.
        #[arg(long)]
        onvif: Option<SocketAddr>,
        /// And answer WS-Discovery probes on this UDP address.
        #[arg(long, default_value = "127.0.0.1:3702")]
        discovery: SocketAddr,
        /// ONVIF user (its password is read from standard input).
        #[arg(long, default_value = "admin")]
        onvif_user: String,
        /// Seconds the simulated cameras' clocks are off (clients must correct for it).
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        onvif_clock_offset: i64,
    },
    /// List events (id, camera, kind, start, end, score), newest first.
    Events {
        #[arg(short, long)]
        config: PathBuf,
        #[arg(long)]
        camera: Option<String>,
        /// RFC 3339: events still going on at or after this instant.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Run the optional cloud: owner accounts, pairing, the recorders'
    /// link, status and alarms (SQLite by default, PostgreSQL if configured).
    Cloud {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// The egress ledger: every message and byte sent off-site, oldest first.
    Egress {
        #[arg(short, long)]
        config: PathBuf,
        /// RFC 3339: entries at or after this instant.
        #[arg(long)]
        since: Option<String>,
        /// Only this kind (status, alarm, …).
        #[arg(long)]
        kind: Option<String>,
        /// CSV (time, destination, kind, bytes, summary) for spreadsheets.
        #[arg(long)]
        csv: bool,
    },
    /// Find ONVIF cameras (WS-Discovery) and, with credentials, their
    /// profiles and RTSP stream URIs, printed as [[cameras]] entries.
    Discover {
        /// Where to send the probe: the ONVIF multicast group, or a unicast address.
        #[arg(long, default_value = candor_onvif::discovery::MULTICAST)]
        probe: SocketAddr,
        /// How long to collect answers, seconds.
        #[arg(long, default_value_t = 3)]
        wait: u64,
        /// Camera user name; the password is read from standard input.
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Manage user accounts (headless and air-gapped installs).
    User {
        #[command(subcommand)]
        cmd: UserCmd,
    },
    /// Check that the index and the segment files agree (read-only).
    Check {
        #[arg(short, long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add a user. The password is read from standard input (hidden on a terminal).
    Add {
        name: String,
        #[arg(long, value_parser = ["admin", "operator", "viewer"])]
        role: String,
        /// Cameras a viewer or operator may see: names separated by commas,
        /// or `all`. Default: none (grant them later in the web app).
        #[arg(long)]
        cameras: Option<String>,
        #[arg(short, long)]
        config: PathBuf,
    },
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,retina=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<ConfigError>().is_some() {
                2
            } else {
                1
            }
        }
    };
    std::process::exit(code);
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// For the long-running servers: everything they create (footage, index,
/// snapshots, keys, config) is owner-only, and their descriptors are not
/// capped at the usual soft limit of 1,024 (connections must never take
/// the ones that recording needs).
fn private_server() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    match candor_auth::conn::raise_nofile_limit() {
        Ok(n) => tracing::debug!("open file limit: {n}"),
        Err(e) => tracing::warn!("could not raise the open file limit: {e}"),
    }
}

/// Secrets in a config readable by others: say so at start (not fatal: an
/// owner may have reasons, but rarely good ones).
fn warn_if_readable(config: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(config)
        && m.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            "{} is readable by other users (mode {:o}) and may hold camera passwords; run `chmod 600 {}`",
            config.display(),
            m.permissions().mode() & 0o777,
            config.display()
        );
    }
}

/// Footage and the index are private to the recorder's user.
fn private_dir(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
        tracing::warn!("could not make {} private (0700): {e}", dir.display());
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Run { config } => {
            private_server();
            warn_if_readable(&config);
            let cfg = Config::load(&config)?;
            runtime()?.block_on(record(cfg, config, None))
        }
        Cmd::Demo {
            data,
            cameras,
            port,
            seconds,
        } => {
            private_server();
            runtime()?.block_on(demo(data, cameras, port, seconds))
        }
        Cmd::Spans {
            config,
            camera,
            from,
            to,
            json,
        } => spans(&config, &camera, from, to, json),
        Cmd::Export {
            config,
            camera,
            from,
            to,
            output,
        } => export(&config, &camera, &from, &to, &output),
        Cmd::Camsim {
            listen,
            cameras,
            source,
            onvif,
            discovery,
            onvif_user,
            onvif_clock_offset,
        } => {
            let onvif = match onvif {
                Some(http) => Some((
                    http,
                    discovery,
                    onvif_user,
                    read_password()?,
                    onvif_clock_offset,
                )),
                None => None,
            };
            runtime()?.block_on(camsim(listen, cameras, source, onvif))
        }
        Cmd::Events {
            config,
            camera,
            since,
            json,
        } => events(&config, camera.as_deref(), since.as_deref(), json),
        Cmd::Cloud { config } => {
            private_server();
            warn_if_readable(&config);
            let cfg = candor_cloud::Config::load(&config)?;
            runtime()?.block_on(async move {
                let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
                tokio::spawn(async move {
                    shutdown_signal().await;
                    let _ = stop_tx.send(true);
                });
                candor_cloud::run(cfg, stop_rx).await
            })?;
            Ok(())
        }
        Cmd::Egress {
            config,
            since,
            kind,
            csv,
        } => egress(&config, since.as_deref(), kind, csv),
        Cmd::Discover {
            probe,
            wait,
            user,
            json,
        } => {
            let creds = match user {
                Some(u) => Some((u, read_password()?)),
                None => None,
            };
            runtime()?.block_on(discover(probe, Duration::from_secs(wait), creds, json))
        }
        Cmd::User {
            cmd:
                UserCmd::Add {
                    name,
                    role,
                    cameras,
                    config,
                },
        } => {
            rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
            let cfg = Config::load(&config)?;
            let password = read_password()?;
            let accounts = candor_web::accounts::Accounts::open(&cfg.storage.path)?;
            let role = candor_web::accounts::Role::parse(&role).expect("clap checked the role");
            // Least privilege: no camera unless named (admins see all).
            let cams: Option<Vec<String>> = match cameras.as_deref() {
                _ if role == candor_web::accounts::Role::Admin => None,
                Some("all") => None,
                Some(list) => Some(
                    list.split(',')
                        .map(|c| c.trim().to_owned())
                        .filter(|c| !c.is_empty())
                        .collect(),
                ),
                None => Some(Vec::new()),
            };
            accounts.add_user_scoped(&name, role, &password, cams.as_deref())?;
            eprintln!("added {} user {name:?}", role.as_str());
            Ok(())
        }
        Cmd::Check { config } => {
            let cfg = Config::load(&config)?;
            let store = Store::open_read_only(&cfg.storage.path)?;
            let problems = store.check()?;
            for p in &problems {
                println!("{p}");
            }
            anyhow::ensure!(problems.is_empty(), "{} problem(s) found", problems.len());
            println!("index and segment files agree");
            Ok(())
        }
    }
}

/// The password for `user add`: prompted without echo on a terminal, else the
/// first line of standard input (for scripts).
fn read_password() -> Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let p = rpassword::prompt_password("Password: ")?;
        anyhow::ensure!(
            p == rpassword::prompt_password("Again: ")?,
            "the passwords differ"
        );
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn record(cfg: Config, config_path: PathBuf, stop_after: Option<Duration>) -> Result<()> {
    std::fs::create_dir_all(&cfg.storage.path)
        .with_context(|| format!("creating {}", cfg.storage.path.display()))?;
    private_dir(&cfg.storage.path);
    let rec = Recorder::start(&cfg)
        .await
        .context("starting the recorder")?;
    let r = &rec.recovery;
    if r.segments_recovered + r.rows_removed + r.orphans_removed > 0 {
        tracing::info!(
            "recovered after an unclean stop: {} segment(s) closed, {} bytes of torn tail cut, {} stale row(s) and {} orphan file(s) removed",
            r.segments_recovered,
            r.bytes_truncated,
            r.rows_removed,
            r.orphans_removed
        );
    }
    tracing::info!(cameras = cfg.cameras.len(), data = %cfg.storage.path.display(), "recording");
    let (web_stop, web_stop_rx) = tokio::sync::watch::channel(false);
    // Recording matters more than the web app: if the web server can't start
    // (port taken, bad certificate), say so loudly and keep recording.
    let policy = candor_web::footage::Policy {
        max_bytes: cfg.storage.max_bytes.map(|b| b.0),
        cameras: cfg
            .cameras
            .iter()
            .map(|c| {
                let name = c.name.get_ref().0.clone();
                (
                    name,
                    (c.max_age.map(|d| d.0.as_secs()), c.max_bytes.map(|b| b.0)),
                )
            })
            .collect(),
    };
    let footage = Store::open_read_only(&cfg.storage.path).map(|store| {
        candor_web::footage::Footage::new(store, rec.status_source(), policy)
            .with_writable(rec.store().clone())
            .with_config_path(config_path.clone())
            .with_cloud(rec.cloud())
    });
    let web = match start_web(&cfg, web_stop_rx, footage.ok()).await {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::error!("web server not started: {e:#}; recording continues");
            None
        }
    };
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    let deadline = stop_after.map(|d| tokio::time::Instant::now() + d);
    // One listener for the whole run: a listener created per loop turn would
    // miss a signal that arrives while the status is being printed.
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            _ = &mut signal => break,
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => break,
            _ = tick.tick() => print_status(&rec),
        }
    }
    tracing::info!("stopping: closing segments and flushing the index");
    let _ = web_stop.send(true);
    if let Some(web) = web {
        let _ = web.await;
    }
    rec.shutdown().await;
    Ok(())
}

/// How long the first-run setup token is valid.
const SETUP_TOKEN_SECS: i64 = 30 * 60;

/// Binds the HTTPS server and prints where it is and its certificate fingerprint.
async fn start_web(
    cfg: &Config,
    stop: tokio::sync::watch::Receiver<bool>,
    footage: Option<candor_web::footage::Footage>,
) -> Result<tokio::task::JoinHandle<()>> {
    let w = &cfg.web;
    let tls = candor_web::tls_identity(&cfg.storage.path, w.cert.as_deref(), w.key.as_deref())?;
    let accounts = Arc::new(candor_web::accounts::Accounts::open(&cfg.storage.path)?);
    let listener = tokio::net::TcpListener::bind(w.listen)
        .await
        .with_context(|| {
            format!(
                "web: can't listen on {} (set [web] listen to a free address)",
                w.listen
            )
        })?;
    let addr = listener.local_addr()?;
    let shown = if addr.ip().is_unspecified() {
        std::net::SocketAddr::new([127, 0, 0, 1].into(), addr.port())
    } else {
        addr
    };
    tracing::info!(
        "web: https://{shown}/ — TLS certificate {} {}, SHA-256 fingerprint {}",
        tls.cert_path.display(),
        if tls.generated { "(generated now)" } else { "" },
        tls.fingerprint
    );
    // No default password: until an admin exists, a one-time token printed
    // here (and only here) lets whoever runs the recorder create one.
    if let Some(token) = accounts.new_setup_token(SETUP_TOKEN_SECS)? {
        // The token rides in the URL's fragment, which browsers never send
        // to a server, so it stays out of any proxy or access log.
        tracing::warn!(
            "no users yet. Within {} minutes, open https://{shown}/#setup={token} to create the first admin \
             (check the certificate fingerprint above), or run `candor user add NAME --role admin -c CONFIG`",
            SETUP_TOKEN_SECS / 60,
        );
    }
    let router = candor_web::router(accounts, footage);
    let limits = candor_auth::conn::Limits {
        max_connections: w.max_connections.max(1),
        max_per_address: w.max_connections_per_address.max(1),
        idle: w.idle_timeout.0.max(std::time::Duration::from_secs(1)),
        ..Default::default()
    };
    Ok(tokio::spawn(candor_web::serve(
        listener, tls.config, router, limits, stop,
    )))
}

fn print_status(rec: &Recorder) {
    for s in rec.status() {
        let state = match &s.camera.state {
            CameraState::Connecting => "connecting".to_string(),
            CameraState::Streaming { since } => format!("streaming since {since}"),
            CameraState::Backoff { last_error, .. } => format!("reconnecting ({last_error})"),
            CameraState::Stopped => "stopped".to_string(),
        };
        eprintln!(
            "  {:<12} {:<40} {:>8} frames {:>10.1} MB written",
            s.camera.name,
            state,
            s.storage.frames,
            s.storage.bytes as f64 / 1e6
        );
    }
}

async fn demo(data: PathBuf, cameras: usize, port: u16, seconds: Option<u64>) -> Result<()> {
    let source = Arc::new(Source::from_mp4(DEMO_CLIP).context("loading the built-in clip")?);
    let sim = match CamSim::start(
        SocketAddr::from(([127, 0, 0, 1], port)),
        cameras,
        source.clone(),
    )
    .await
    {
        Ok(s) => s,
        Err(_) => {
            CamSim::start(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                cameras,
                source.clone(),
            )
            .await?
        }
    };
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let data = std::fs::canonicalize(&data)?;
    let config_path = data.join("candor.toml");
    let web_port = if std::net::TcpListener::bind(("127.0.0.1", 8443)).is_ok() {
        8443
    } else {
        0
    };
    let mut toml = format!(
        "# Written by `candor demo`. Use it with `candor spans`/`export -c {}`.\n[storage]\npath = \".\"\nmax_bytes = \"2GB\"\n\n[web]\nlisten = \"127.0.0.1:{web_port}\"\n",
        config_path.display()
    );
    for i in 0..cameras {
        toml += &format!(
            "\n[[cameras]]\nname = \"cam{i}\"\nurl = \"{}\"\nmax_age = \"1d\"\n[cameras.motion]\nenabled = true\n",
            sim.url(i)
        );
    }
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt;
        // It will hold secrets once cameras with passwords are added.
        let _ = std::fs::remove_file(&config_path);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&config_path)?
            .write_all(toml.as_bytes())?;
    }
    let cfg = Config::load(&config_path)?;
    let exe = std::env::args().next().unwrap_or_else(|| "candor".into());
    let start = Time90k::now();
    eprintln!("Candor demo");
    eprintln!(
        "  camera simulator: {} … cam{} ({:.0} kbit/s H.264 each, looping a {:.0} s clip)",
        sim.url(0),
        cameras.saturating_sub(1),
        source.bitrate() as f64 / 1e3,
        source.duration_secs()
    );
    eprintln!("  recording into:   {}", data.display());
    eprintln!("  config:           {}", config_path.display());
    eprintln!(
        "  web app:          https://127.0.0.1:{web_port}/ (first time: open the #setup= link logged below)"
    );
    eprintln!("  after a minute, list what was recorded and export 30 s of it:");
    eprintln!("    {exe} spans -c {} --camera cam0", config_path.display());
    eprintln!(
        "    {exe} export -c {} --camera cam0 --from {} --to {} -o cam0.mp4",
        config_path.display(),
        start + Duration90k(5 * 90_000),
        start + Duration90k(35 * 90_000)
    );
    eprintln!("  Ctrl-C stops (footage is kept).");
    record(cfg, config_path, seconds.map(Duration::from_secs)).await?;
    drop(sim);
    Ok(())
}

/// `candor egress`: the egress ledger, from the index (read-only).
fn egress(config: &Path, since: Option<&str>, kind: Option<String>, csv: bool) -> Result<()> {
    let cfg = Config::load(config)?;
    let store = Store::open_read_only(&cfg.storage.path)?;
    let since = since
        .map(|s| {
            Time90k::parse_rfc3339(s)
                .map_err(|_| anyhow::anyhow!("--since must be RFC 3339, e.g. 2026-11-27T10:00:00Z"))
        })
        .transpose()?;
    let list = store.egress(&candor_storage::egress::EgressFilter {
        since,
        kind,
        ..Default::default()
    })?;
    if csv {
        print!("{}", candor_web::cloud_api::egress_csv(&list));
        return Ok(());
    }
    if list.is_empty() {
        eprintln!(
            "nothing has been sent to a Candor cloud. Connections you configured yourself (cameras, MQTT, webhooks) are not in this ledger."
        );
    }
    for e in &list {
        println!(
            "{}  {:<24} {:<10} {:>8} B  {}",
            e.at, e.destination, e.kind, e.bytes, e.summary
        );
    }
    let total: u64 = list.iter().map(|e| e.bytes).sum();
    eprintln!("{} message(s), {total} bytes", list.len());
    Ok(())
}

fn events(config: &Path, camera: Option<&str>, since: Option<&str>, json: bool) -> Result<()> {
    let cfg = Config::load(config)?;
    let store = Store::open_read_only(&cfg.storage.path)?;
    let camera_id = match camera {
        Some(c) => Some(
            store
                .camera_id(c)?
                .with_context(|| format!("no camera named {c:?} in the index"))?,
        ),
        None => None,
    };
    let since = since
        .map(|s| {
            Time90k::parse_rfc3339(s)
                .map_err(|_| anyhow::anyhow!("--since must be RFC 3339, e.g. 2026-11-27T10:00:00Z"))
        })
        .transpose()?;
    let list = store.events(&candor_storage::events::EventFilter {
        camera_id,
        since,
        ..Default::default()
    })?;
    if json {
        let v: Vec<_> = list
            .iter()
            .map(|e| {
                serde_json::json!({
                    "id": e.id, "camera": e.camera, "kind": e.kind, "source": e.source,
                    "start": e.start.to_string(), "end": e.end.map(|t| t.to_string()),
                    "score": e.score, "zone": e.zone, "detail": e.detail,
                    "acked_by": e.acked.as_ref().map(|a| a.0.clone()),
                    "acked_at": e.acked.as_ref().map(|a| a.1.to_string()),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if list.is_empty() {
        eprintln!("no events");
    }
    for e in &list {
        println!(
            "{:>6}  {:<12} {:<7} {}  {}  {}",
            e.id,
            e.camera,
            e.kind,
            e.start,
            e.end.map_or("ongoing".to_string(), |t| t.to_string()),
            e.score.map_or(String::new(), |s| format!("score {s:.2}"))
        );
    }
    Ok(())
}

/// `candor discover`: probe, then describe each camera found.
async fn discover(
    probe: SocketAddr,
    wait: Duration,
    creds: Option<(String, String)>,
    json: bool,
) -> Result<()> {
    use candor_recorder::onvif;
    let found = onvif::probe(probe, wait)
        .await
        .with_context(|| format!("probing {probe}"))?;
    if found.is_empty() {
        eprintln!(
            "no ONVIF camera answered within {wait:?} (is ONVIF enabled on the cameras, and are they on this network segment?)"
        );
    }
    let mut out = Vec::new();
    for f in &found {
        let Some(xaddr) = f.xaddrs.first() else {
            continue;
        };
        let described = match &creds {
            Some((u, p)) => Some(onvif::describe(xaddr, u, p).await),
            None => None,
        };
        let mut v = serde_json::json!({
            "endpoint": f.endpoint, "xaddrs": f.xaddrs, "name": f.name, "hardware": f.hardware,
        });
        match described {
            Some(Ok(d)) => {
                if let (Some(o), serde_json::Value::Object(d)) = (v.as_object_mut(), d.to_json()) {
                    o.extend(d);
                }
            }
            Some(Err(e)) => {
                v["error"] = if e.is_not_authorized() {
                    "the camera refused the user name or password".into()
                } else {
                    e.to_string().into()
                };
            }
            None => {}
        }
        out.push(v);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    // Everything below comes from the cameras: comments lose their control
    // characters (a newline would start a TOML line of the camera's
    // choosing), and values are written by the TOML serializer.
    let c = |v: &serde_json::Value| -> String {
        v.as_str()
            .unwrap_or("")
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    };
    for v in &out {
        let name = v["name"].as_str().unwrap_or("camera");
        println!("# {} ({})", c(&v["name"]), c(&v["xaddrs"][0]));
        if v["error"].is_string() {
            println!("#   {}", c(&v["error"]));
            continue;
        }
        if v["manufacturer"].is_string() {
            println!(
                "#   {} {} serial {}, clock off by {} s",
                c(&v["manufacturer"]),
                c(&v["model"]),
                c(&v["serial"]),
                v["clock_offset_secs"].as_i64().unwrap_or(0)
            );
        }
        if let Some(main) = v["main"].as_str() {
            // The password stays out of the output: put it in yourself.
            let url = match (&creds, main.strip_prefix("rtsp://")) {
                (Some((u, _)), Some(rest)) => format!("rtsp://{u}:PASSWORD@{rest}"),
                _ => main.to_owned(),
            };
            println!("{}", candor_recorder::config_edit::camera_entry(name, &url));
        } else if creds.is_none() {
            println!("#   run with --user to look up its streams\n");
        }
    }
    Ok(())
}

async fn camsim(
    listen: SocketAddr,
    cameras: usize,
    source: Option<PathBuf>,
    onvif: Option<(SocketAddr, SocketAddr, String, String, i64)>,
) -> Result<()> {
    let bytes = match &source {
        Some(p) => std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        None => DEMO_CLIP.to_vec(),
    };
    let src = Arc::new(Source::from_mp4(&bytes).context("preparing the clip")?);
    let sim = CamSim::start(listen, cameras, src.clone())
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let _onvif = match onvif {
        Some((http, discovery, username, password, clock_offset_secs)) => {
            let cfg = candor_camsim::onvif::OnvifConfig {
                username,
                password,
                clock_offset_secs,
                cameras,
                rtsp_base: format!("rtsp://{}", sim.local_addr()),
            };
            let o = candor_camsim::onvif::OnvifSim::start(http, discovery, cfg, src.clone())
                .await
                .with_context(|| format!("serving ONVIF on {http} / {discovery}"))?;
            eprintln!(
                "camsim: ONVIF devices at http://{}/onvif/camN/device_service; WS-Discovery on udp://{}",
                o.http, o.discovery
            );
            Some(o)
        }
        None => None,
    };
    eprintln!(
        "camsim: serving {} camera(s) at {} … {} ({} {:.0} kbit/s, {} frames looping every {:.1} s); Ctrl-C stops",
        cameras,
        sim.url(0),
        sim.url(cameras.saturating_sub(1)),
        src.codec().as_str(),
        src.bitrate() as f64 / 1e3,
        src.frame_count(),
        src.duration_secs()
    );
    shutdown_signal().await;
    Ok(())
}

fn parse_time(s: &str, what: &str) -> Result<Time90k> {
    Time90k::parse_rfc3339(s).map_err(|e| {
        anyhow::anyhow!("--{what} {s:?} is not an RFC 3339 time like 2026-11-27T10:00:00Z: {e}")
    })
}

fn open_camera(config: &Path, camera: &str) -> Result<(Store, i64)> {
    let cfg = Config::load(config)?;
    let store = Store::open_read_only(&cfg.storage.path)?;
    let id = store.camera_id(camera)?.ok_or_else(|| {
        let known: Vec<String> = store
            .cameras()
            .map(|c| c.into_iter().map(|(_, n)| n).collect())
            .unwrap_or_default();
        anyhow::anyhow!(
            "no recordings for camera {camera:?}; cameras with recordings: {}",
            known.join(", ")
        )
    })?;
    Ok((store, id))
}

#[derive(serde::Serialize)]
struct SpanOut {
    start: String,
    end: String,
    seconds: f64,
}

fn spans(
    config: &Path,
    camera: &str,
    from: Option<String>,
    to: Option<String>,
    json: bool,
) -> Result<()> {
    let (store, id) = open_camera(config, camera)?;
    let from = from
        .map(|s| parse_time(&s, "from"))
        .transpose()?
        .unwrap_or(Time90k(i64::MIN / 2));
    let to = to
        .map(|s| parse_time(&s, "to"))
        .transpose()?
        .unwrap_or(Time90k(i64::MAX / 2));
    let spans = candor_storage::export::spans(&store, id, from, to)?;
    let out = |a: Time90k, b: Time90k| SpanOut {
        start: a.to_string(),
        end: b.to_string(),
        seconds: (b - a).as_secs_f64(),
    };
    let recorded: Vec<SpanOut> = spans.iter().map(|s| out(s.start, s.end)).collect();
    let gaps: Vec<SpanOut> = spans
        .windows(2)
        .map(|w| out(w[0].end, w[1].start))
        .collect();
    if json {
        println!(
            "{}",
            serde_json::json!({ "camera": camera, "spans": recorded, "gaps": gaps })
        );
        return Ok(());
    }
    if spans.is_empty() {
        println!("no footage recorded for {camera} in that range");
        return Ok(());
    }
    for (i, s) in recorded.iter().enumerate() {
        println!("recorded  {}  {}  ({:.1} s)", s.start, s.end, s.seconds);
        if let Some(g) = gaps.get(i) {
            println!("gap       {}  {}  ({:.1} s)", g.start, g.end, g.seconds);
        }
    }
    Ok(())
}

fn export(config: &Path, camera: &str, from: &str, to: &str, output: &Path) -> Result<()> {
    let (store, id) = open_camera(config, camera)?;
    let (from, to) = (parse_time(from, "from")?, parse_time(to, "to")?);
    let export = match Export::plan(&store, id, from, to) {
        Ok(e) => e,
        Err(e @ (ExportError::NoFootage { .. } | ExportError::BadRange { .. })) => {
            anyhow::bail!("{e}")
        }
        Err(e) => return Err(e).context("planning the export"),
    };
    let total = export.total_len();
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template"),
    );
    let mut partial = output.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let r = export.write_to(&mut w, |n| bar.set_position(n));
    bar.finish_and_clear();
    if let Err(e) = r {
        let _ = std::fs::remove_file(&partial);
        return Err(e).context("exporting");
    }
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    std::fs::rename(&partial, output)?;
    eprintln!(
        "exported {} {} … {} ({:.3} s, {} frames, {}, {:.1} MB) to {}",
        camera,
        export.from,
        export.to,
        (export.to - export.from).as_secs_f64(),
        export.frames(),
        export.codec,
        total as f64 / 1e6,
        output.display()
    );
    if export.from > from || export.to < to {
        eprintln!(
            "note: footage covers only part of the requested range; the file holds what exists"
        );
    }
    for g in &export.gaps {
        eprintln!(
            "note: gap in footage {} … {} (the last frame before it is held)",
            g.start, g.end
        );
    }
    Ok(())
}
