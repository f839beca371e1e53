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
use http_body_util::{BodyExt, Empty, Limited};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tough::{TransportError, TransportErrorKind, TransportStream};

/// Largest answer read: tough bounds each metadata file lower (10 MiB for
/// targets), this bounds the transport itself.
const MAX_ANSWER: usize = 16 * 1024 * 1024;
/// One request's whole time.
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
            format!("GET {} (update check)", url.path()),
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
        let body = tokio::time::timeout(
            REQUEST_TIMEOUT,
            Limited::new(resp.into_body(), MAX_ANSWER).collect(),
        )
        .await
        .map_err(|_| fail(format!("{dest}: the answer took over {REQUEST_TIMEOUT:?}")))?
        .map_err(|e| fail(format!("{dest}: {e}")))?
        .to_bytes();
        Ok(Box::pin(futures::stream::once(async move { Ok(body) })))
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

/// Checks now and every `check_every` until shutdown.
pub async fn run(
    cfg: UpdatesConfig,
    store: Arc<Store>,
    data: PathBuf,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let transport = match client(&cfg) {
        Ok(client) => LedgerHttp {
            client,
            store: store.clone(),
        },
        Err(e) => {
            tracing::error!("update checks: {e}");
            save(
                &data,
                &Found {
                    checked_at: jiff::Timestamp::now().to_string(),
                    available: None,
                    notes: None,
                    message: format!("update checks are off: {}", tidy(&e)),
                },
            );
            return;
        }
    };
    let mut wait = FIRST_CHECK;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        wait = cfg.check_every.0;
        // A slow or hostile server never holds up the recorder's stop
        // (which closes segments and commits the index), and a check has
        // one deadline however many requests it makes.
        let found = tokio::select! {
            r = tokio::time::timeout(CHECK_TIMEOUT, check(&cfg, transport.clone(), &data)) => match r {
                Ok(found) => found,
                Err(_) => Found {
                    checked_at: jiff::Timestamp::now().to_string(),
                    available: None,
                    notes: None,
                    message: format!("the repository did not answer within {CHECK_TIMEOUT:?}"),
                },
            },
            _ = shutdown.changed() => return,
        };
        tracing::info!("update check: {}", found.message);
        save(&data, &found);
        // Without a cloud link nothing else prunes the ledger.
        let store = store.clone();
        let keep_from = Time90k::now()
            - candor_media::Duration90k(crate::cloud::LEDGER_KEEP.as_secs() as i64 * 90_000);
        let _ = tokio::task::spawn_blocking(move || {
            store.prune_egress(keep_from, crate::cloud::LEDGER_MAX_ROWS)
        })
        .await;
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

async fn check(cfg: &UpdatesConfig, transport: LedgerHttp, data: &Path) -> Found {
    let checked_at = jiff::Timestamp::now().to_string();
    let none = |message: String| Found {
        checked_at: checked_at.clone(),
        available: None,
        notes: None,
        message,
    };
    let root = match std::fs::read(&cfg.root) {
        Ok(r) => r,
        Err(e) => return none(format!("[updates] root {}: {e}", cfg.root.display())),
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
    let running = semver::Version::parse(candor_wire::version())
        .unwrap_or_else(|_| semver::Version::new(0, 0, 0));
    let arch = format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS);
    let seed = match candor_update::seed(&state) {
        Ok(s) => s,
        Err(e) => return none(e.to_string()),
    };
    match candor_update::newest_in_turn(&repo, &arch, &running, seed, jiff::Timestamp::now()) {
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
