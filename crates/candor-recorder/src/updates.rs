//! Online update checks (docs/design/updates.md, "Online"): with
//! `[updates] repository` set, the recorder reads the signed release
//! repository's metadata at start and every `check_every`, through its own
//! HTTP client, and every request is an egress-ledger row of kind `update`
//! written before it is sent. What it finds (a release whose turn has come
//! for this recorder, with its notes, or why there is none) goes to
//! `<data>/updates/available.json`, which the System page shows. It
//! installs nothing by itself. Without `[updates]` (the default) nothing
//! here runs, and the air-gap test holds.

use crate::config::UpdatesConfig;
use candor_media::Time90k;
use candor_storage::Store;
use candor_update::tough;
use http_body_util::{BodyExt, Empty};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tough::{TransportError, TransportErrorKind, TransportStream};

/// Largest answer read: tough bounds each file lower (metadata by its
/// limits, a release by its signed length), this bounds the transport
/// itself.
const MAX_ANSWER: usize = 1024 * 1024 * 1024;
/// Waiting for an answer, or for its next bytes.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The first check, this long after the start (cameras first).
const FIRST_CHECK: Duration = Duration::from_secs(5);
/// A whole check (a few requests, root rotations included) at most.
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);
/// What of an error's text reaches the System page and the log.
const MESSAGE_MAX: usize = 300;

type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Empty<bytes::Bytes>,
>;

/// tough's transport over the recorder's HTTP client, writing the ledger.
#[derive(Clone)]
struct LedgerHttp {
    client: Client,
    store: Arc<Store>,
}

impl std::fmt::Debug for LedgerHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LedgerHttp")
    }
}

#[async_trait::async_trait]
impl tough::Transport for LedgerHttp {
    async fn fetch(&self, url: url::Url) -> Result<TransportStream, TransportError> {
        let fail = |e: String| TransportError::new_with_cause(TransportErrorKind::Other, &url, e);
        if !matches!(url.scheme(), "https" | "http") {
            return Err(TransportError::new(
                TransportErrorKind::UnsupportedUrlScheme,
                &url,
            ));
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        let dest = format!("{host}:{}", url.port_or_known_default().unwrap_or(443));
        let req = hyper::Request::get(url.as_str())
            .header(
                "user-agent",
                format!("Candor/{} (update check)", candor_wire::version()),
            )
            .body(Empty::new())
            .map_err(|e| fail(e.to_string()))?;
        // What leaves: the request line and headers. The row goes in first,
        // so nothing is sent that the ledger doesn't show.
        let sent = (url.as_str().len() + 64) as u64;
        let (store, d, summary) = (
            self.store.clone(),
            dest.clone(),
            format!(
                "GET {} (update {})",
                url.path(),
                if url.path().contains("/targets/") {
                    "download"
                } else {
                    "check"
                }
            ),
        );
        tokio::task::spawn_blocking(move || {
            store.record_egress(Time90k::now(), &d, "update", sent, &summary)
        })
        .await
        .map_err(|e| fail(e.to_string()))?
        .map_err(|e| fail(format!("egress ledger: {e}; not sending")))?;
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(req))
            .await
            .map_err(|_| fail(format!("{dest}: no answer within {REQUEST_TIMEOUT:?}")))?
            .map_err(|e| fail(format!("{dest}: {e}")))?;
        let status = resp.status();
        if status == hyper::StatusCode::NOT_FOUND {
            // tough probes for the next root version and stops at a 404.
            return Err(TransportError::new(TransportErrorKind::FileNotFound, &url));
        }
        if !status.is_success() {
            return Err(fail(format!("{dest}: HTTP {status}")));
        }
        // Streamed, not gathered: a release binary is tens of MB. tough
        // stops reading a file past its signed length (metadata: its own
        // limits), and a server that stalls for a request's time ends it.
        let state = Some((resp.into_body(), 0usize));
        let stream = futures::stream::unfold(state, move |state| {
            let (url, dest) = (url.clone(), dest.clone());
            async move {
                let (mut body, read) = state?;
                let fail =
                    |e: String| TransportError::new_with_cause(TransportErrorKind::Other, &url, e);
                loop {
                    let frame = match tokio::time::timeout(REQUEST_TIMEOUT, body.frame()).await {
                        Err(_) => {
                            let e = format!("{dest}: nothing arrived for {REQUEST_TIMEOUT:?}");
                            return Some((Err(fail(e)), None));
                        }
                        Ok(None) => return None,
                        Ok(Some(Err(e))) => return Some((Err(fail(format!("{dest}: {e}"))), None)),
                        Ok(Some(Ok(f))) => f,
                    };
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers
                    };
                    let read = read + data.len();
                    if read > MAX_ANSWER {
                        let e = format!("{dest}: the answer is over {MAX_ANSWER} bytes");
                        return Some((Err(fail(e)), None));
                    }
                    return Some((Ok(data), Some((body, read))));
                }
            }
        });
        Ok(Box::pin(stream))
    }
}

fn client(cfg: &UpdatesConfig) -> Result<Client, String> {
    let provider = rustls::crypto::ring::default_provider();
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match &cfg.ca {
        Some(ca) => {
            let pem =
                std::fs::read(ca).map_err(|e| format!("[updates] ca {}: {e}", ca.display()))?;
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_pemfile::certs(&mut pem.as_slice()) {
                let c = c.map_err(|e| format!("[updates] ca {}: {e}", ca.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("[updates] ca {}: {e}", ca.display()))?;
            }
            let tls = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            builder.with_tls_config(tls)
        }
        None => builder
            .with_provider_and_webpki_roots(provider)
            .map_err(|e| e.to_string())?,
    };
    let connector = builder.https_or_http().enable_http1().build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector),
    )
}

/// What a check found, as `available.json` keeps it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Found {
    /// RFC 3339.
    pub checked_at: String,
    /// The release this recorder may install now, if any.
    pub available: Option<String>,
    /// Its release notes.
    pub notes: Option<String>,
    /// For people: up to date, waiting for its turn, or what went wrong.
    pub message: String,
}

impl Found {
    /// No release to offer, and why (checked now).
    fn nothing(message: String) -> Found {
        Found {
            checked_at: jiff::Timestamp::now().to_string(),
            available: None,
            notes: None,
            message,
        }
    }
}

/// The environment variable `candor supervise` sets for the recorder it
/// runs: its install prefix. Without it (a recorder started by hand, or by
/// a service manager directly) the recorder installs nothing itself, as
/// nothing would hand over to what it installed.
pub const PREFIX_ENV: &str = "CANDOR_UPDATE_PREFIX";
/// A whole install (metadata, the download, moving it into place) at most.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Audit entries kept while no audit log is attached yet.
const MAX_PENDING_AUDIT: usize = 64;
/// After a failed install, the same version may be asked for again only
/// this much later: each try downloads the release again (a metered link).
const RETRY_AFTER: Duration = Duration::from_secs(5 * 60);
/// A schedule found at start this long overdue is dropped (a recorder back
/// after months off installs nothing it wasn't asked for lately).
const OVERDUE_MAX: Duration = Duration::from_secs(7 * 86_400);
/// How far ahead an install may be scheduled.
pub const SCHEDULE_MAX: Duration = Duration::from_secs(30 * 86_400);

/// `[updates] window`: minutes of the local day, `start..end`, crossing
/// midnight when `end < start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    start: u16,
    end: u16,
}

impl Window {
    pub fn parse(s: &str) -> Result<Window, String> {
        let bad = || format!("[updates] window must be \"HH:MM-HH:MM\" (local time), not {s:?}");
        let minute = |t: &str| -> Option<u16> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60 && t.trim().len() == 5).then_some(h * 60 + m)
        };
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let (start, end) = (minute(a).ok_or_else(bad)?, minute(b).ok_or_else(bad)?);
        if start == end {
            return Err(bad());
        }
        Ok(Window { start, end })
    }

    fn crosses_midnight(&self) -> bool {
        self.end < self.start
    }

    pub fn contains(&self, minute_of_day: u16) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute_of_day)
        } else {
            minute_of_day >= self.start || minute_of_day < self.end
        }
    }
}

/// Writes an audit-log entry: (user, action, detail). The web layer, which
/// owns the audit log, sets it.
pub type AuditFn = Arc<dyn Fn(Option<String>, &'static str, String) + Send + Sync>;

/// Why an install was not started.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error(
        "this recorder is not run by `candor supervise`, which hands over to a new version: install with `candor update`, or run the recorder under `candor supervise` (README, \"Updates\")"
    )]
    NotSupervised,
    #[error("an install is under way")]
    Busy,
    #[error("candor {asked} is not what the last check offers this recorder ({offered})")]
    NotOffered { asked: String, offered: String },
    #[error("{0}")]
    BadTime(String),
    #[error(
        "installing this version failed moments ago; try again in {0} minutes (the page says why it failed)"
    )]
    RetryLater(u64),
}

/// The recorder's update checks and installs (`[updates]`).
#[derive(Clone)]
pub struct Updates {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: UpdatesConfig,
    window: Option<Window>,
    store: Arc<Store>,
    data: PathBuf,
    prefix: Option<PathBuf>,
    transport: Result<LedgerHttp, String>,
    install: std::sync::Mutex<candor_wire::UpdateInstall>,
    /// One user of the metadata datastore at a time: a check, an install.
    tuf: tokio::sync::Mutex<()>,
    /// A schedule changed.
    wake: tokio::sync::Notify,
    audit: std::sync::Mutex<Audit>,
    /// The last version the window tried, and on which day: one attempt a
    /// day, so a failing release is not downloaded again every minute.
    auto_tried: std::sync::Mutex<Option<(String, jiff::civil::Date)>>,
}

/// Where audit entries go: the hook once the web layer set it; until
/// then, a short queue written when it is.
#[derive(Default)]
struct Audit {
    hook: Option<AuditFn>,
    pending: Vec<(Option<String>, &'static str, String)>,
}

/// A release staged and verified, to be moved into place.
struct Staged {
    path: PathBuf,
    version: semver::Version,
    layout: candor_update::Layout,
    /// The version it replaces.
    was: semver::Version,
}

/// A scheduled install, kept across restarts (`<data>/updates/scheduled.json`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Scheduled {
    version: String,
    at: String,
    by: String,
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Updates {
    /// `prefix`: the supervisor's install prefix ([`PREFIX_ENV`]), if any.
    pub fn new(
        cfg: UpdatesConfig,
        store: Arc<Store>,
        data: PathBuf,
        prefix: Option<PathBuf>,
    ) -> Updates {
        let window = cfg.window.as_deref().and_then(|w| Window::parse(w).ok());
        let transport = client(&cfg).map(|client| LedgerHttp {
            client,
            store: store.clone(),
        });
        let mut install = candor_wire::UpdateInstall {
            state: "idle".into(),
            ..Default::default()
        };
        // A kept schedule for a version already installed (its install
        // finished as the supervisor stopped this process) is done.
        let installed = |v: &str| {
            prefix.as_ref().is_some_and(|p| {
                semver::Version::parse(v)
                    .is_ok_and(|v| v <= candor_update::Layout::new(p).floor(candor_wire::version()))
            })
        };
        if let Some(s) = load_schedule(&data).filter(|s| {
            if installed(&s.version) {
                save_schedule(&data, None);
                return false;
            }
            true
        }) {
            install.state = "scheduled".into();
            install.version = Some(s.version);
            install.at = Some(s.at);
            install.by = Some(s.by);
        }
        Updates {
            inner: Arc::new(Inner {
                cfg,
                window,
                store,
                data,
                prefix,
                transport,
                install: std::sync::Mutex::new(install),
                tuf: Default::default(),
                wake: Default::default(),
                audit: Default::default(),
                auto_tried: Default::default(),
            }),
        }
    }

    /// Sets where audit entries go; entries made before (an install that
    /// ran before the web server was up, or one it never started for)
    /// are written then.
    pub fn on_audit(&self, f: AuditFn) {
        // The hook and the queue change under one lock: an entry is either
        // queued before (and written here) or written by the hook.
        let mut a = lock(&self.inner.audit);
        for (user, action, detail) in std::mem::take(&mut a.pending) {
            f(user, action, detail);
        }
        a.hook = Some(f);
    }

    /// Whether installs may run: only with the audit log attached (the web
    /// server is up), so none goes unrecorded.
    fn audited(&self) -> bool {
        lock(&self.inner.audit).hook.is_some()
    }

    async fn audit(&self, user: Option<String>, action: &'static str, detail: String) {
        tracing::info!("{action}: {detail}");
        let hook = {
            let mut a = lock(&self.inner.audit);
            match &a.hook {
                Some(f) => f.clone(),
                None => {
                    if a.pending.len() < MAX_PENDING_AUDIT {
                        a.pending.push((user, action, detail));
                    }
                    return;
                }
            }
        };
        let _ = tokio::task::spawn_blocking(move || hook(user, action, detail)).await;
    }

    /// Wakes the loop (a schedule changed).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// The install's state, for the System page.
    pub fn state(&self) -> candor_wire::UpdateInstall {
        let mut s = lock(&self.inner.install).clone();
        s.supervised = self.inner.prefix.is_some();
        s.window = self.inner.cfg.window.clone();
        s
    }

    fn set(&self, f: impl FnOnce(&mut candor_wire::UpdateInstall)) {
        f(&mut lock(&self.inner.install));
    }

    /// Installs `version` (what the last check offered) now, or schedules
    /// it at `at`. Everything is verified again when it runs.
    pub fn request(
        &self,
        version: &str,
        at: Option<jiff::Timestamp>,
        by: &str,
    ) -> Result<candor_wire::UpdateInstall, Refused> {
        if self.inner.prefix.is_none() {
            return Err(Refused::NotSupervised);
        }
        let offered = load_found(&self.inner.data).and_then(|f| f.available);
        // What the last check found may be installed already (a check
        // from before the handover).
        let installed = self.inner.prefix.as_ref().is_some_and(|p| {
            semver::Version::parse(version)
                .is_ok_and(|v| v <= candor_update::Layout::new(p).floor(candor_wire::version()))
        });
        if offered.as_deref() != Some(version) || installed {
            return Err(Refused::NotOffered {
                asked: version.to_owned(),
                offered: offered.map_or_else(|| "nothing".into(), |v| format!("candor {v}")),
            });
        }
        let now = jiff::Timestamp::now();
        if let Some(at) = at
            && at.duration_since(now).as_secs() > SCHEDULE_MAX.as_secs() as i64
        {
            return Err(Refused::BadTime(format!(
                "an install can be scheduled at most {} days ahead",
                SCHEDULE_MAX.as_secs() / 86_400
            )));
        }
        let mut g = lock(&self.inner.install);
        if g.state == "downloading" {
            return Err(Refused::Busy);
        }
        if g.state == "failed"
            && g.version.as_deref() == Some(version)
            && g.at
                .as_deref()
                .and_then(|a| a.parse::<jiff::Timestamp>().ok())
                .is_some_and(|t| now.duration_since(t).as_secs() < RETRY_AFTER.as_secs() as i64)
        {
            return Err(Refused::RetryLater(RETRY_AFTER.as_secs() / 60));
        }
        let when = at.unwrap_or(now).to_string();
        // The file and the state change together, under the lock: a cancel
        // racing this can't leave one saying scheduled and the other not.
        save_schedule(
            &self.inner.data,
            Some(&Scheduled {
                version: version.to_owned(),
                at: when.clone(),
                by: by.to_owned(),
            }),
        );
        *g = candor_wire::UpdateInstall {
            state: "scheduled".into(),
            version: Some(version.to_owned()),
            at: Some(when),
            by: Some(by.to_owned()),
            ..Default::default()
        };
        drop(g);
        self.inner.wake.notify_one();
        Ok(self.state())
    }

    /// Cancels a scheduled install. `Err(Busy)` while one is under way
    /// (it can't be stopped half-way), `Ok(false)` if none was scheduled.
    pub fn cancel(&self) -> Result<bool, Refused> {
        let mut g = lock(&self.inner.install);
        match g.state.as_str() {
            "downloading" => return Err(Refused::Busy),
            "scheduled" => {}
            _ => return Ok(false),
        }
        save_schedule(&self.inner.data, None);
        g.state = "idle".into();
        drop(g);
        self.inner.wake.notify_one();
        Ok(true)
    }

    /// Cancels a scheduled install `user` asked for (their access ended):
    /// whether there was one.
    pub fn cancel_by(&self, user: &str) -> bool {
        let mut g = lock(&self.inner.install);
        if g.state != "scheduled" || g.by.as_deref() != Some(user) {
            return false;
        }
        save_schedule(&self.inner.data, None);
        g.state = "idle".into();
        true
    }

    /// A scheduled install that is due, taken: the state becomes
    /// `downloading` under the same lock (a cancel can't slip in between).
    /// Otherwise how long until one is due.
    fn take_due(&self) -> (Option<(String, String)>, Option<Duration>) {
        if !self.audited() {
            // Waits for the web server (and its audit log); checked again
            // within a minute.
            return (None, Some(Duration::from_secs(60)));
        }
        let mut g = lock(&self.inner.install);
        if g.state != "scheduled" {
            return (None, None);
        }
        let at =
            g.at.as_deref()
                .and_then(|a| a.parse::<jiff::Timestamp>().ok());
        let wait = at.map_or(0, |a| a.duration_since(jiff::Timestamp::now()).as_millis());
        if wait > 0 {
            return (None, Some(Duration::from_millis(wait as u64)));
        }
        let v = g.version.clone().unwrap_or_default();
        let by = g.by.clone().unwrap_or_default();
        *g = candor_wire::UpdateInstall {
            state: "downloading".into(),
            version: Some(v.clone()),
            by: Some(by.clone()),
            ..Default::default()
        };
        (Some((v, by)), None)
    }

    /// The version the window installs now, if it is open and one is due
    /// (taken: the state becomes `downloading`). Not while an install is
    /// scheduled (an admin's time wins), and once per version per window.
    fn take_window_due(&self) -> Option<String> {
        let w = self.inner.window?;
        if !self.audited() {
            return None;
        }
        self.inner.prefix.as_ref()?;
        let now = jiff::Zoned::now();
        let minute = now.hour() as u16 * 60 + now.minute() as u16;
        if !w.contains(minute) {
            return None;
        }
        // The day the window opened: a window across midnight is one window.
        let opened = if w.crosses_midnight() && minute < w.end {
            now.date().yesterday().ok()?
        } else {
            now.date()
        };
        let v = load_found(&self.inner.data)?.available?;
        let mut g = lock(&self.inner.install);
        if matches!(g.state.as_str(), "scheduled" | "downloading") {
            return None;
        }
        let mut tried = lock(&self.inner.auto_tried);
        if tried.as_ref() == Some(&(v.clone(), opened)) {
            return None;
        }
        *tried = Some((v.clone(), opened));
        *g = candor_wire::UpdateInstall {
            state: "downloading".into(),
            version: Some(v.clone()),
            by: Some("maintenance window".into()),
            ..Default::default()
        };
        Some(v)
    }

    /// Checks at start and every `check_every`, runs scheduled installs
    /// when due and, with a window, installs what the checks found while
    /// it is open; until shutdown.
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        if let Err(e) = &self.inner.transport {
            tracing::error!("update checks: {e}");
            save(
                &self.inner.data,
                &Found::nothing(format!("update checks are off: {}", tidy(e))),
            );
            return;
        }
        let started = tokio::time::Instant::now();
        let mut next_check = started + FIRST_CHECK;
        // Nothing installs in the first seconds (the web server, which
        // keeps the audit log, starts meanwhile).
        tokio::select! {
            _ = tokio::time::sleep_until(next_check) => {}
            _ = shutdown.changed() => return,
        }
        loop {
            let (due, wait) = self.take_due();
            if let Some((version, by)) = due {
                // A slow or hostile server never holds up the recorder's
                // stop (which closes segments and commits the index).
                tokio::select! {
                    _ = self.install(version, Some(by)) => {}
                    _ = shutdown.changed() => return,
                }
                continue;
            }
            let mut until = next_check;
            if let Some(w) = wait {
                until = until.min(tokio::time::Instant::now() + w);
            }
            if self.inner.window.is_some() {
                until = until.min(tokio::time::Instant::now() + Duration::from_secs(60));
            }
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = self.inner.wake.notified() => continue,
                _ = shutdown.changed() => return,
            }
            if tokio::time::Instant::now() >= next_check {
                next_check = tokio::time::Instant::now() + self.inner.cfg.check_every.0;
                tokio::select! {
                    _ = self.check_and_save() => {}
                    _ = shutdown.changed() => return,
                }
            }
            if let Some(version) = self.take_window_due() {
                tokio::select! {
                    _ = self.install(version, None) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }

    async fn check_and_save(&self) {
        let transport = match &self.inner.transport {
            Ok(t) => t.clone(),
            Err(_) => return,
        };
        let found = {
            let _tuf = self.inner.tuf.lock().await;
            let _lock = match candor_update::lock_state(&self.inner.data.join("updates")) {
                Ok(l) => l,
                // `candor update` is at work: the next check will do.
                Err(candor_update::UpdateError::Busy) => return,
                Err(e) => {
                    save(&self.inner.data, &Found::nothing(tidy(&e.to_string())));
                    return;
                }
            };
            // One deadline however many requests a check makes.
            match tokio::time::timeout(
                CHECK_TIMEOUT,
                check(
                    &self.inner.cfg,
                    transport,
                    &self.inner.data,
                    self.inner.prefix.as_deref(),
                ),
            )
            .await
            {
                Ok(found) => found,
                Err(_) => Found::nothing(format!(
                    "the repository did not answer within {CHECK_TIMEOUT:?}"
                )),
            }
        };
        tracing::info!("update check: {}", found.message);
        save(&self.inner.data, &found);
        // Without a cloud link nothing else prunes the ledger.
        let store = self.inner.store.clone();
        let keep_from = Time90k::now()
            - candor_media::Duration90k(crate::cloud::LEDGER_KEEP.as_secs() as i64 * 90_000);
        let _ = tokio::task::spawn_blocking(move || {
            store.prune_egress(keep_from, crate::cloud::LEDGER_MAX_ROWS)
        })
        .await;
    }

    /// Downloads, verifies and installs `version`; the supervisor hands
    /// over to it. `by`: who asked (`None`: the maintenance window).
    async fn install(&self, version: String, by: Option<String>) {
        // The state is `downloading` already (taken by the caller).
        let _tuf = self.inner.tuf.lock().await;
        let _lock = match candor_update::lock_state(&self.inner.data.join("updates")) {
            Ok(l) => Some(l),
            Err(candor_update::UpdateError::Busy) => {
                // `candor update` is at work: the same install, a minute on.
                let at = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60)).to_string();
                let who = by.clone().unwrap_or_else(|| "maintenance window".into());
                let mut g = lock(&self.inner.install);
                save_schedule(
                    &self.inner.data,
                    Some(&Scheduled {
                        version: version.clone(),
                        at: at.clone(),
                        by: who.clone(),
                    }),
                );
                *g = candor_wire::UpdateInstall {
                    state: "scheduled".into(),
                    version: Some(version),
                    at: Some(at),
                    by: Some(who),
                    ..Default::default()
                };
                return;
            }
            Err(e) => {
                let why = e.to_string();
                self.set(|s| {
                    s.state = "failed".into();
                    s.at = Some(jiff::Timestamp::now().to_string());
                    s.message = Some(why.clone());
                });
                save_schedule(&self.inner.data, None);
                self.audit(
                    by,
                    "update_failed",
                    format!("candor {version} not installed: {why}"),
                )
                .await;
                return;
            }
        };
        let host = url::Url::parse(&self.inner.cfg.repository)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        let asked = by.as_deref().map_or_else(
            || "the maintenance window".to_owned(),
            |b| format!("asked by {b}"),
        );
        let result =
            match tokio::time::timeout(INSTALL_TIMEOUT, self.fetch_and_stage(&version)).await {
                Ok(r) => r,
                Err(_) => Err(format!(
                    "not done within {} minutes",
                    INSTALL_TIMEOUT.as_secs() / 60
                )),
            };
        // Once `current` moves, the supervisor stops this process within a
        // quarter second: everything this install owes (the schedule
        // cleared, the audit entry) is done before that. An install a stop
        // interrupted earlier keeps its schedule and runs at the next start.
        let result: Result<(), String> = match result {
            Ok(staged) => {
                save_schedule(&self.inner.data, None);
                self.audit(
                    by.clone(),
                    "update_installed",
                    format!(
                        "candor {version} installed from {host} (signed, verified; was {}); {asked}",
                        staged.was
                    ),
                )
                .await;
                self.set(|s| {
                    s.state = "installed".into();
                    s.at = Some(jiff::Timestamp::now().to_string());
                });
                let Staged {
                    path,
                    version: v,
                    layout,
                    ..
                } = staged;
                match tokio::task::spawn_blocking(move || layout.install(&path, &v)).await {
                    Ok(Ok(_)) => return,
                    Ok(Err(e)) => Err(format!("moving it into place: {e}")),
                    Err(e) => Err(format!("moving it into place: {e}")),
                }
            }
            Err(why) => Err(why),
        };
        let Err(why) = result else { return };
        save_schedule(&self.inner.data, None);
        let why = tidy(&why);
        tracing::warn!("update: installing candor {version}: {why}");
        self.set(|s| {
            s.state = "failed".into();
            s.at = Some(jiff::Timestamp::now().to_string());
            s.message = Some(why.clone());
        });
        self.audit(
            by,
            "update_failed",
            format!("candor {version} from {host} not installed: {why}; {asked}"),
        )
        .await;
    }

    /// Everything up to a verified binary in the staging area (all of it
    /// may be cut short by a stop).
    async fn fetch_and_stage(&self, version: &str) -> Result<Staged, String> {
        let prefix = self
            .inner
            .prefix
            .clone()
            .ok_or_else(|| Refused::NotSupervised.to_string())?;
        let transport = self.inner.transport.clone()?;
        let cfg = &self.inner.cfg;
        let root = candor_update::trusted_root(cfg.root.as_deref()).map_err(|e| e.to_string())?;
        let state = self.inner.data.join("updates");
        let repo = candor_update::load_url(&root, &cfg.repository, transport, &state.join("tuf"))
            .await
            .map_err(|e| match e {
                candor_update::UpdateError::Untrusted(why) => {
                    tracing::warn!("update: {}", tidy(&why));
                    "the repository could not be read, or is not validly signed by the release keys (the recorder's log has the details)".to_owned()
                }
                e => e.to_string(),
            })?;
        let layout = candor_update::Layout::new(&prefix);
        let running = layout.floor(candor_wire::version());
        let seed = candor_update::seed(&state).map_err(|e| e.to_string())?;
        let offered =
            candor_update::newest_in_turn(&repo, &arch(), &running, seed, jiff::Timestamp::now())
                .map_err(|e| e.to_string())?;
        if offered.version.to_string() != version {
            return Err(format!(
                "the repository now offers candor {} to this recorder, not {version}",
                offered.version
            ));
        }
        if let Some(why) = candor_update::rolled_back(&state, &offered.version) {
            return Err(format!(
                "candor {version} was rolled back on this recorder ({why})"
            ));
        }
        self.set(|s| s.total = offered.length);
        let this = self.clone();
        let staged = candor_update::stage_with_progress(
            &repo,
            &offered,
            &state.join("staging"),
            &move |n| this.set(|s| s.bytes = n),
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(Staged {
            path: staged,
            version: offered.version,
            layout,
            was: running,
        })
    }
}

fn arch() -> String {
    format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)
}

fn load_found(data: &Path) -> Option<Found> {
    let text = std::fs::read_to_string(data.join("updates/available.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// A schedule kept across a restart, if it still makes sense: a time
/// that parses, not far overdue, a version that parses.
fn load_schedule(data: &Path) -> Option<Scheduled> {
    let text = std::fs::read_to_string(data.join("updates/scheduled.json")).ok()?;
    let s: Scheduled = serde_json::from_str(&text).ok()?;
    let at = s.at.parse::<jiff::Timestamp>().ok();
    let fresh = at.is_some_and(|at| {
        jiff::Timestamp::now().duration_since(at).as_secs() < OVERDUE_MAX.as_secs() as i64
    });
    if !fresh || semver::Version::parse(&s.version).is_err() || s.by.len() > 64 {
        tracing::warn!("update: dropping the kept schedule (unreadable, or over 7 days overdue)");
        save_schedule(data, None);
        return None;
    }
    Some(s)
}

/// Keeps (or removes, with `None`) the scheduled install, whole or not at all.
fn save_schedule(data: &Path, s: Option<&Scheduled>) {
    let state = data.join("updates");
    let path = state.join("scheduled.json");
    let write = match s {
        None => match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
        Some(s) => std::fs::create_dir_all(&state).and_then(|()| {
            let tmp = state.join(format!(".scheduled.json.{:016x}", rand::random::<u64>()));
            std::fs::write(&tmp, serde_json::to_vec(s).unwrap_or_default())?;
            std::fs::rename(&tmp, &path)
        }),
    };
    if let Err(e) = write {
        tracing::warn!("update: keeping the schedule in {}: {e}", path.display());
    }
}

/// Text from outside (a server's bytes quoted in an error) as it may be
/// shown: no control characters, at most [`MESSAGE_MAX`] characters.
fn tidy(s: &str) -> String {
    let mut t: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MESSAGE_MAX)
        .collect();
    if s.chars().count() > MESSAGE_MAX {
        t.push('…');
    }
    t
}

/// Keeps what a check found for the System page, whole or not at all.
fn save(data: &Path, found: &Found) {
    let state = data.join("updates");
    let write = std::fs::create_dir_all(&state).and_then(|()| {
        let tmp = state.join(".available.json.new");
        std::fs::write(&tmp, serde_json::to_vec(found).unwrap_or_default())?;
        std::fs::rename(&tmp, state.join("available.json"))
    });
    if let Err(e) = write {
        tracing::warn!("update check: writing its result: {e}");
    }
}

async fn check(
    cfg: &UpdatesConfig,
    transport: LedgerHttp,
    data: &Path,
    prefix: Option<&Path>,
) -> Found {
    let checked_at = jiff::Timestamp::now().to_string();
    let none = Found::nothing;
    let root = match candor_update::trusted_root(cfg.root.as_deref()) {
        Ok(r) => r,
        Err(e) => return none(e.to_string()),
    };
    let state = data.join("updates");
    let repo = match candor_update::load_url(&root, &cfg.repository, transport, &state.join("tuf"))
        .await
    {
        Ok(r) => r,
        // tough's words quote the server's bytes: a fixed sentence for the
        // page, the (tidied) details for the log.
        Err(candor_update::UpdateError::Untrusted(why)) => {
            let host = url::Url::parse(&cfg.repository)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default();
            tracing::warn!("update check: {}", tidy(&why));
            return none(format!(
                "the repository at {host} could not be read, or is not validly signed by the release keys (the recorder's log has the details)"
            ));
        }
        Err(e) => return none(tidy(&e.to_string())),
    };
    // Under the supervisor, newer than what is installed too (a version
    // installed but not yet handed over to is not offered again).
    let running = match prefix {
        Some(p) => candor_update::Layout::new(p).floor(candor_wire::version()),
        None => semver::Version::parse(candor_wire::version())
            .unwrap_or_else(|_| semver::Version::new(0, 0, 0)),
    };
    let arch = arch();
    let seed = match candor_update::seed(&state) {
        Ok(s) => s,
        Err(e) => return none(e.to_string()),
    };
    match candor_update::newest_in_turn(&repo, &arch, &running, seed, jiff::Timestamp::now()) {
        Ok(o) if candor_update::rolled_back(&state, &o.version).is_some() => none(format!(
            "candor {} was rolled back on this recorder (the System page says why); it is not offered again",
            o.version
        )),
        Ok(o) => Found {
            checked_at: checked_at.clone(),
            notes: candor_update::notes(&repo, &o),
            message: format!("candor {} is available (running {running})", o.version),
            available: Some(o.version.to_string()),
        },
        Err(candor_update::UpdateError::NotNewer { .. })
        | Err(candor_update::UpdateError::NoRelease { .. }) => {
            none(format!("up to date (candor {running})"))
        }
        Err(e) => none(tidy(&e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn outside_text_is_shown_without_control_characters_and_short() {
        assert_eq!(super::tidy("a\nb\u{1b}[31mc"), "a b [31mc");
        let long = "x".repeat(1000);
        let t = super::tidy(&long);
        assert_eq!(t.chars().count(), super::MESSAGE_MAX + 1);
        assert!(t.ends_with('…'));
    }
}
