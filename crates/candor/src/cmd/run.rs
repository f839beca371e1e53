//! `candor run`: record a config's cameras and serve the web app until
//! SIGINT/SIGTERM.

use super::{private_server, runtime, shutdown_signal, warn_if_readable};
use anyhow::{Context, Result};
use candor_recorder::{CameraState, Config, Recorder};
use candor_storage::Store;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use super::ConfigArg as Args;

pub fn run(a: Args) -> Result<()> {
    private_server();
    warn_if_readable(&a.config);
    // A change that was to be confirmed and wasn't (it may be what cut
    // access off, and made someone restart) is undone before the config is
    // read; a hand edit since the last version is recorded as one.
    match candor_recorder::config_edit::revert_if_due(
        &a.config,
        candor_recorder::config_history::now(),
    ) {
        Ok(Some(e)) => tracing::warn!(
            "config: an unconfirmed change was reverted ([web] and [cloud] as before); now version {}",
            e.version
        ),
        Ok(None) => {}
        Err(e) => tracing::warn!("config history: {e}"),
    }
    if let Err(e) = candor_recorder::config_edit::notice(&a.config) {
        tracing::warn!("config history: {e}; changes are still saved, but not recorded");
    }
    let cfg = Config::load(&a.config)?;
    if let Err(e) = cfg.check_cloud_ca() {
        tracing::error!("{e}; the cloud link can't connect until this is fixed; recording goes on");
    }
    runtime()?.block_on(record(cfg, a.config, None))
}

/// Footage and the index are private to the recorder's user.
fn private_dir(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
        tracing::warn!("could not make {} private (0700): {e}", dir.display());
    }
}

/// Records until a signal (or `stop_after`), with the web app beside it.
pub async fn record(cfg: Config, config_path: PathBuf, stop_after: Option<Duration>) -> Result<()> {
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
    let policy = candor_web::footage::Policy::from_config(&cfg);
    let (swap_tx, swap_rx) = tokio::sync::mpsc::channel(1);
    let footage = Store::open_read_only(&cfg.storage.path).map(|store| {
        candor_web::footage::Footage::new(store, rec.status_source(), policy)
            .with_writable(rec.store().clone())
            .with_config_path(config_path.clone())
            .with_cloud(rec.cloud())
            .with_updates(rec.updates())
            .with_listener_swap(swap_tx)
    });
    let web = match start_web(&cfg, web_stop_rx, footage.ok(), rec.cloud(), swap_rx).await {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::error!("web server not started: {e:#}; recording continues");
            None
        }
    };
    crate::keep_frame_memory(rec.status().len());
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    let mut ticks = 0u64;
    // Once every camera streams, say so for `candor supervise`: that is what
    // makes a new version the good one (docs/design/updates.md).
    let mut health = tokio::time::interval(Duration::from_secs(2));
    let mut healthy = false;
    let deadline = stop_after.map(|d| tokio::time::Instant::now() + d);
    // One listener for the whole run: a listener created per loop turn would
    // miss a signal that arrives while the status is being printed.
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            _ = &mut signal => break,
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => break,
            _ = tick.tick() => {
                print_status(&rec);
                ticks += 1;
                if ticks.is_multiple_of(6) {
                    crate::keep_frame_memory(rec.status().len());
                    crate::return_free_memory();
                }
            }
            _ = health.tick(), if !healthy => healthy = report_health(&rec, &cfg.storage.path),
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

/// Writes `<data>/updates/health.json` (this process, its version, when)
/// once every camera is streaming with no write error. Returns whether it
/// did.
fn report_health(rec: &Recorder, data: &Path) -> bool {
    let all = rec.status().iter().all(|s| {
        matches!(
            s.camera.state,
            candor_recorder::ingest::CameraState::Streaming { .. }
        ) && s.storage.write_errors == 0
    });
    if !all {
        return false;
    }
    let dir = data.join("updates");
    let body = serde_json::json!({
        "pid": std::process::id(),
        // From `candor supervise`, for this start only.
        "token": std::env::var(super::supervise::HEALTH_TOKEN_ENV).ok(),
        "version": candor_wire::version(),
        "recording_all_cameras_at": jiff::Timestamp::now().to_string(),
    });
    match std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("health.json"), body.to_string()))
    {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("writing {}: {e}", dir.join("health.json").display());
            false
        }
    }
}

/// How long the first-run setup token is valid.
const SETUP_TOKEN_SECS: i64 = 30 * 60;

/// Binds the HTTPS server and prints where it is and its certificate fingerprint.
async fn start_web(
    cfg: &Config,
    stop: tokio::sync::watch::Receiver<bool>,
    footage: Option<candor_web::footage::Footage>,
    cloud: Option<candor_recorder::cloud::CloudHandle>,
    swap: tokio::sync::mpsc::Receiver<tokio::net::TcpListener>,
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
    let remote = cloud.as_ref().and_then(|c| c.take_remote_conns());
    if let Some(c) = cloud {
        tokio::spawn(remote_certificate(
            c.watch(),
            c.issued(),
            cfg.storage.path.join("tls/remote"),
            tls.certs.clone(),
        ));
    }
    Ok(tokio::spawn(candor_web::serve(
        listener,
        tls.config,
        router,
        limits,
        remote,
        Some(swap),
        stop,
    )))
}

/// The certificate for the name the cloud gives this recorder for remote
/// access: the one the CA issued by ACME once there is one (the recorder's
/// own key either way: docs/design/remote.md), self-signed until then and
/// kept in `dir` (0600).
async fn remote_certificate(
    mut state: tokio::sync::watch::Receiver<candor_recorder::cloud::LinkState>,
    mut issued: tokio::sync::watch::Receiver<Option<Arc<candor_recorder::cloud::Issued>>>,
    dir: PathBuf,
    certs: Arc<candor_web::Certs>,
) {
    // What is installed: the host, and the issued certificate's expiry (0 for self-signed).
    let mut current: Option<(String, i64)> = None;
    let mut acme_on = true;
    loop {
        let host = state.borrow_and_update().remote.host.clone();
        let acme = issued.borrow_and_update().clone();
        if let Some(h) = host {
            match acme.filter(|c| c.host == h) {
                Some(c) if current.as_ref() != Some(&(h.clone(), c.not_after)) => {
                    match certs.set_remote(&h, c.chain.clone(), c.key.clone_key()) {
                        Ok(()) => {
                            tracing::info!("remote access: the CA's certificate for {h} is in use");
                            current = Some((h, c.not_after));
                        }
                        Err(e) => tracing::warn!("remote access certificate: {e}"),
                    }
                }
                Some(_) => {}
                None if current.as_ref().is_none_or(|(c, _)| *c != h) => {
                    let d = dir.clone();
                    let name = h.clone();
                    let loaded = tokio::task::spawn_blocking(move || {
                        candor_auth::tls::load_or_generate_for(&d, None, None, "[cloud]", &[name])
                    })
                    .await;
                    match loaded {
                        Ok(Ok(l)) => match certs.set_remote(&h, l.certs, l.key) {
                            Ok(()) => {
                                tracing::info!(
                                    "remote access: certificate for {h} {} (self-signed until the CA issues one), SHA-256 fingerprint {}",
                                    l.cert_path.display(),
                                    l.fingerprint
                                );
                                current = Some((h, 0));
                            }
                            Err(e) => tracing::warn!("remote access certificate: {e}"),
                        },
                        Ok(Err(e)) => tracing::warn!("remote access certificate: {e}"),
                        Err(e) => tracing::warn!("remote access certificate: {e}"),
                    }
                }
                None => {}
            }
        }
        // The ACME task ends when ACME is off: the name alone then matters.
        tokio::select! {
            r = state.changed() => if r.is_err() { return },
            r = issued.changed(), if acme_on => acme_on = r.is_ok(),
        }
    }
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
