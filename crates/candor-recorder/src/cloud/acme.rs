//! A publicly trusted certificate for the remote name, by ACME (RFC 8555)
//! DNS-01 (docs/design/remote.md, "Certificates").
//!
//! The recorder makes its own key and its own ACME account; the cloud only
//! publishes, on this recorder's request over the link, the challenge
//! answer at `_acme-challenge.<its name>` and a CAA record binding the name
//! to this account. Nothing here can affect recording or local use: a
//! failure leaves the self-signed certificate in place and retries later.
//!
//! Every connection to the CA is an outbound connection: each request is
//! one egress-ledger row (kind `acme`) with the bytes that left.

use super::net::Counting;
use super::{Cmd, LinkState};
use crate::config::{CloudAddress, CloudConfig};
use bytes::Bytes;
use candor_media::Time90k;
use candor_storage::Store;
use http_body_util::{BodyExt, Full, Limited};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType,
    HttpClient, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rcgen::PublicKeyData;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

/// A certificate the CA issued for the remote name, with its key.
pub struct Issued {
    pub host: String,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub not_before: i64,
    pub not_after: i64,
}

/// The remote certificate as the Cloud page shows it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CertView {
    /// `self_signed` until the CA issued one, then `acme`.
    pub source: &'static str,
    /// `off` (no ACME directory), `waiting` (for the cloud's name, from a
    /// cloud that serves its DNS),
    /// `obtaining`, `valid`, or `retrying` after a failure.
    pub state: &'static str,
    /// The ACME directory in use.
    pub directory: Option<String>,
    pub not_after: Option<String>,
    /// The last failure, in words.
    pub error: Option<String>,
    pub next_attempt: Option<String>,
}

/// Limits: a response from the CA larger than this is refused (a chain is
/// a few KB), and each request has this long.
const MAX_RESPONSE: usize = 1 << 20;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Retry after a failure: from a minute, doubling, up to six hours (the CA's
/// rate limits are per week; a retry a minute would spend them).
const FIRST_RETRY: Duration = Duration::from_secs(60);
const MAX_RETRY: Duration = Duration::from_secs(6 * 3600);
/// How long the CA may take to validate and to issue.
const VALIDATION: Duration = Duration::from_secs(120);

#[derive(Serialize, Deserialize)]
struct SavedAccount {
    directory: String,
    credentials: AccountCredentials,
}

pub(super) struct Acme {
    pub config: CloudConfig,
    /// `<storage>/tls/remote/acme` (0700): account.json, cert.pem, key.pem.
    pub dir: PathBuf,
    pub state: Arc<watch::Sender<LinkState>>,
    pub cmd: mpsc::Sender<Cmd>,
    pub store: Arc<Store>,
    pub issued: watch::Sender<Option<Arc<Issued>>>,
    pub shutdown: watch::Receiver<bool>,
}

impl Acme {
    pub(super) async fn run(mut self) {
        let Some(directory) = self.config.acme_directory.0.clone() else {
            self.view(|v| v.state = "off");
            return;
        };
        self.view(|v| {
            v.directory = Some(directory.clone());
            v.source = "self_signed";
            v.state = "waiting";
        });
        let mut states = self.state.subscribe();
        let mut backoff = FIRST_RETRY;
        loop {
            // A name from the cloud, on a link that is up.
            let host = loop {
                let s = states.borrow_and_update().clone();
                if let (Some(h), true, true) =
                    (s.remote.host.clone(), s.connected, s.remote.acme_dns)
                {
                    break h;
                }
                tokio::select! {
                    r = states.changed() => if r.is_err() { return },
                    _ = self.shutdown.changed() => return,
                }
            };
            let current = self.load(&host);
            let renew_at = match &current {
                Some(c) => {
                    let life = c.not_after - c.not_before;
                    // Renewed with a third of its life left (30 days of
                    // Let's Encrypt's 90).
                    c.not_after - life / 3
                }
                None => 0,
            };
            if let Some(c) = current {
                self.view(|v| {
                    v.source = "acme";
                    v.not_after = Some(ts(c.not_after));
                });
                if self
                    .issued
                    .borrow()
                    .as_ref()
                    .is_none_or(|i| i.not_after != c.not_after || i.host != host)
                {
                    let _ = self.issued.send(Some(Arc::new(c)));
                }
            }
            let now = candor_media::time::unix_secs();
            if now < renew_at {
                self.view(|v| {
                    v.state = "valid";
                    v.error = None;
                    v.next_attempt = Some(ts(renew_at));
                });
                // Wake for the renewal, or sooner when the name or the link
                // changes (not for every other change of the link's state).
                let wait = Duration::from_secs((renew_at - now).clamp(1, 86_400) as u64);
                let deadline = tokio::time::Instant::now() + wait;
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep_until(deadline) => break,
                        r = states.changed() => if r.is_err() { return },
                        _ = self.shutdown.changed() => return,
                    }
                    let s = states.borrow_and_update();
                    if s.remote.host.as_deref() != Some(host.as_str()) || !s.connected {
                        break;
                    }
                }
                continue;
            }
            self.view(|v| v.state = "obtaining");
            info!("remote access: asking {directory} for a certificate for {host}");
            match self.obtain(&directory, &host).await {
                Ok(c) => {
                    info!(
                        "remote access: certificate for {host} issued, valid until {}",
                        ts(c.not_after)
                    );
                    self.view(|v| v.error = None);
                    let due = c.not_after - (c.not_after - c.not_before) / 3
                        <= candor_media::time::unix_secs();
                    let _ = self.issued.send(Some(Arc::new(c)));
                    if due {
                        // Already due for renewal (a short-lived certificate,
                        // or this clock runs ahead): ordering again at once
                        // would spend the CA's weekly limits in minutes.
                        warn!(
                            "remote access: the new certificate is already due for renewal; next order in {backoff:?}"
                        );
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = self.shutdown.changed() => return,
                        }
                        backoff = (backoff * 2).min(MAX_RETRY);
                    } else {
                        backoff = FIRST_RETRY;
                    }
                }
                Err(e) => {
                    warn!("remote access certificate for {host}: {e}; retrying in {backoff:?}");
                    let at = candor_media::time::unix_secs() + backoff.as_secs() as i64;
                    self.view(|v| {
                        v.state = "retrying";
                        v.error = Some(e.clone());
                        v.next_attempt = Some(ts(at));
                    });
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.shutdown.changed() => return,
                    }
                    backoff = (backoff * 2).min(MAX_RETRY);
                }
            }
        }
    }

    fn view(&self, f: impl FnOnce(&mut CertView)) {
        self.state.send_modify(|s| f(&mut s.remote.certificate));
    }

    /// The stored certificate, if it is for `host` and parses.
    fn load(&self, host: &str) -> Option<Issued> {
        let pem = std::fs::read(self.dir.join("cert.pem")).ok()?;
        let key = std::fs::read(self.dir.join("key.pem")).ok()?;
        let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &pem[..])
            .collect::<Result<_, _>>()
            .ok()?;
        let pair = rcgen::KeyPair::from_pem(std::str::from_utf8(&key).ok()?).ok()?;
        let key = rustls_pemfile::private_key(&mut &key[..]).ok()??;
        let (not_before, not_after) =
            validity(chain.first()?, host, &pair.subject_public_key_info()).ok()?;
        Some(Issued {
            host: host.to_owned(),
            chain,
            key,
            not_before,
            not_after,
        })
    }

    async fn obtain(&self, directory: &str, host: &str) -> Result<Issued, String> {
        let http = Http::new(&self.config, self.store.clone())?;
        let account = self.account(directory, http).await?;
        let ids = [Identifier::Dns(host.to_owned())];
        let mut order = account
            .new_order(&NewOrder::new(&ids))
            .await
            .map_err(|e| format!("new order: {e}"))?;
        let caa = self.config.caa_issuer().map(|issuer| candor_link::Caa {
            issuer,
            account: account.id().to_owned(),
        });
        let mut published = false;
        let mut authorizations = order.authorizations();
        while let Some(a) = authorizations.next().await {
            let mut a = a.map_err(|e| format!("authorization: {e}"))?;
            match a.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => return Err(format!("the CA's authorization is {other:?}")),
            }
            let mut challenge = a
                .challenge(ChallengeType::Dns01)
                .ok_or("the CA offers no DNS-01 challenge")?;
            let answer = challenge.key_authorization().dns_value();
            self.publish(vec![answer], caa.clone()).await?;
            published = true;
            challenge
                .set_ready()
                .await
                .map_err(|e| format!("challenge: {e}"))?;
        }
        let status = order
            .poll_ready(&RetryPolicy::new().timeout(VALIDATION))
            .await
            .map_err(|e| format!("waiting for validation: {e}"));
        if published {
            // The answer is spent either way; the CAA record stays.
            let _ = self.publish(Vec::new(), None).await;
        }
        let status = status?;
        if status != OrderStatus::Ready {
            let why = order
                .state()
                .error
                .as_ref()
                .and_then(|p| p.detail.clone())
                .unwrap_or_else(|| "the DNS answer was not seen".into());
            return Err(format!(
                "the CA did not validate the name ({status:?}): {why}"
            ));
        }
        let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let csr = rcgen::CertificateParams::new(vec![host.to_owned()])
            .and_then(|p| p.serialize_request(&key))
            .map_err(|e| format!("certificate request: {e}"))?;
        order
            .finalize_csr(csr.der())
            .await
            .map_err(|e| format!("finalize: {e}"))?;
        let pem = order
            .poll_certificate(&RetryPolicy::new().timeout(VALIDATION))
            .await
            .map_err(|e| format!("certificate: {e}"))?;
        let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("the CA's certificate: {e}"))?;
        let leaf = chain.first().ok_or("the CA sent no certificate")?;
        let (not_before, not_after) = validity(leaf, host, &key.subject_public_key_info())?;
        // Key first: a certificate is never on disk without its key.
        super::files::write_private(
            &self.dir.join("key.pem.tmp"),
            key.serialize_pem().as_bytes(),
        )?;
        super::files::write_private(&self.dir.join("cert.pem.tmp"), pem.as_bytes())?;
        for f in ["key.pem", "cert.pem"] {
            std::fs::rename(self.dir.join(format!("{f}.tmp")), self.dir.join(f))
                .map_err(|e| format!("saving {f}: {e}"))?;
        }
        Ok(Issued {
            host: host.to_owned(),
            chain,
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            not_before,
            not_after,
        })
    }

    /// This recorder's ACME account at `directory`, made once and kept.
    async fn account(&self, directory: &str, http: Http) -> Result<Account, String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700));
        }
        let path = self.dir.join("account.json");
        if let Ok(b) = std::fs::read(&path)
            && let Ok(saved) = serde_json::from_slice::<SavedAccount>(&b)
            && saved.directory == directory
        {
            return Account::builder_with_http(Box::new(http))
                .from_credentials(saved.credentials)
                .await
                .map_err(|e| format!("ACME account: {e}"));
        }
        let (account, credentials) = Account::builder_with_http(Box::new(http))
            .create(
                &NewAccount {
                    contact: &[],
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                directory.to_owned(),
                None,
            )
            .await
            .map_err(|e| format!("creating an ACME account at {directory}: {e}"))?;
        let saved = SavedAccount {
            directory: directory.to_owned(),
            credentials,
        };
        let j = serde_json::to_vec(&saved).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("tmp");
        super::files::write_private(&tmp, &j)?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("saving {}: {e}", path.display()))?;
        info!(
            "remote access: ACME account {} at {directory}",
            account.id()
        );
        Ok(account)
    }

    /// Asks the cloud, over the link, to publish the answer (and CAA).
    async fn publish(&self, txt: Vec<String>, caa: Option<candor_link::Caa>) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.cmd
            .send(Cmd::AcmeDns { txt, caa, reply })
            .await
            .map_err(|_| "the cloud link stopped".to_string())?;
        tokio::time::timeout(REQUEST_TIMEOUT, answer)
            .await
            .map_err(|_| "the cloud did not answer the DNS request".to_string())?
            .map_err(|_| "the cloud link closed before the DNS answer was published".to_string())?
            .map_err(|e| format!("the cloud did not publish the DNS answer: {e}"))
    }
}

/// The leaf's validity (Unix seconds), checked to be for `host`, for the
/// key whose SubjectPublicKeyInfo is `spki`, and valid now.
fn validity(leaf: &CertificateDer<'_>, host: &str, spki: &[u8]) -> Result<(i64, i64), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| format!("the CA's certificate does not parse: {e}"))?;
    if cert.public_key().raw != spki {
        return Err("the certificate is not for this recorder's key".into());
    }
    if !cert.validity().is_valid() {
        return Err("the certificate is not valid now (or this recorder's clock is wrong)".into());
    }
    let names: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => {
                        Some(d.to_ascii_lowercase())
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if !names.iter().any(|n| n == host) {
        return Err(format!(
            "the certificate is not for {host} (it names {names:?})"
        ));
    }
    let v = cert.validity();
    Ok((v.not_before.timestamp(), v.not_after.timestamp()))
}

fn ts(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// instant-acme's HTTP: one TLS connection per request (a few a quarter),
/// through the cloud's proxy if one is set, counted into the ledger.
#[derive(Clone)]
struct Http {
    tls: Arc<rustls::ClientConfig>,
    proxy: Option<CloudAddress>,
    store: Arc<Store>,
}

impl Http {
    fn new(config: &CloudConfig, store: Arc<Store>) -> Result<Http, String> {
        let roots = super::net::trust_roots(config.acme_ca.as_deref(), "[cloud] acme_ca")?;
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Http {
            tls: Arc::new(tls),
            proxy: config.proxy.clone(),
            store,
        })
    }

    async fn send(&self, req: http::Request<BodyWrapper<Bytes>>) -> Result<BytesResponse, String> {
        let uri = req.uri().clone();
        if uri.scheme_str() != Some("https") {
            return Err(format!("{uri}: the CA must be reached over https"));
        }
        let host = uri.host().ok_or("no host")?.to_owned();
        let target = CloudAddress {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: uri.port_u16().unwrap_or(443),
        };
        let dest = target.to_string();
        let path = uri.path().to_owned();
        let method = req.method().clone();
        // The row first, so nothing leaves that the ledger doesn't show;
        // its bytes are filled in once known.
        let store = self.store.clone();
        let (d, first) = (
            dest.clone(),
            format!("{method} {path} (ACME, the remote-access certificate)"),
        );
        let row = tokio::task::spawn_blocking(move || {
            store.record_egress(Time90k::now(), &d, "acme", 0, &first)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("egress ledger: {e}; not sending"))?;
        let written = Arc::new(AtomicU64::new(0));
        let r = tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(req, &target, &written)).await;
        let n = written.load(Ordering::Relaxed);
        let (summary, result) = match r {
            Ok(Ok((status, resp))) => (
                format!(
                    "{method} {path} (ACME, the remote-access certificate): HTTP {status}, {n} bytes sent"
                ),
                Ok(resp),
            ),
            Ok(Err(e)) => (
                format!("{method} {path} (ACME) failed after {n} bytes: {e}"),
                Err(e),
            ),
            Err(_) => (
                format!("{method} {path} (ACME) timed out after {n} bytes"),
                Err(format!("{dest}: no answer within {REQUEST_TIMEOUT:?}")),
            ),
        };
        let store = self.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.add_to_egress(row, n, &summary)).await;
        result
    }

    async fn exchange(
        &self,
        mut req: http::Request<BodyWrapper<Bytes>>,
        target: &CloudAddress,
        written: &Arc<AtomicU64>,
    ) -> Result<(http::StatusCode, BytesResponse), String> {
        let tcp = super::net::tcp_to(self.proxy.as_ref(), target, written).await?;
        let _ = tcp.set_nodelay(true);
        let name = rustls::pki_types::ServerName::try_from(target.host.clone())
            .map_err(|e| format!("{}: {e}", target.host))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, Counting::new(tcp, written.clone()))
            .await
            .map_err(|e| format!("TLS with the CA {target}: {e}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        // HTTP/1.1 wants the path in the request line and the host apart.
        let host = if target.port == 443 {
            target.host.clone()
        } else {
            target.to_string()
        };
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        *req.uri_mut() = path.parse().map_err(|e| format!("{path}: {e}"))?;
        req.headers_mut().insert(
            http::header::HOST,
            host.parse().map_err(|e| format!("{host}: {e}"))?,
        );
        req.headers_mut().insert(
            http::header::USER_AGENT,
            http::HeaderValue::try_from(format!("Candor/{}", candor_wire::version()))
                .unwrap_or(http::HeaderValue::from_static("Candor")),
        );
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| format!("the CA's answer: {e}"))?
            .to_bytes();
        let status = parts.status;
        Ok((
            status,
            BytesResponse::from(http::Response::from_parts(parts, Full::new(body))),
        ))
    }
}

impl HttpClient for Http {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let this = self.clone();
        Box::pin(async move {
            this.send(req)
                .await
                .map_err(|e| instant_acme::Error::Other(e.into()))
        })
    }
}
