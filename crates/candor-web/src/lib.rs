//! The recorder's HTTPS server.
//!
//! TLS is always on: with no certificate configured, one is generated at first
//! start (ECDSA P-256, valid for localhost and the loopback addresses) and kept
//! in the data directory; its SHA-256 fingerprint is printed so the user can
//! check what the browser shows. [`routes`] lists every route with who may
//! call it; the web app's files are embedded in the binary ([`ui`]).

pub mod accounts;
pub mod admin_api;
pub mod auth;
mod authz;
pub mod cameras_api;
pub mod cloud_api;
pub mod config_api;
pub mod diagnostics;
mod error;
pub mod events_api;
pub mod footage;
pub mod fuzzing;
pub mod grants_api;
pub mod live;
pub mod motion_api;
pub mod openapi;
pub mod outputs_api;
mod routes;
pub mod session_api;
pub mod shares_api;
mod state;
pub mod system;
pub use candor_auth::totp;
pub mod ui;

pub use authz::{Access, Caller, Principal, STREAM_RECHECK, Via};
pub(crate) use error::body;
pub use error::{ApiError, ApiResult};
pub use routes::{Route, router, routes};
pub(crate) use state::state;
pub use state::{AppState, PeerIp};

use axum::Router;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("TLS certificate: {0}")]
    Tls(String),
}

pub struct TlsIdentity {
    pub config: Arc<rustls::ServerConfig>,
    /// Sets the certificate served for the remote-access name.
    pub certs: Arc<Certs>,
    /// SHA-256 of the leaf certificate (DER), as `AB:CD:…`, the form browsers show.
    pub fingerprint: String,
    pub cert_path: PathBuf,
    /// True when this start generated the certificate.
    pub generated: bool,
}

/// Loads the configured certificate and key (PEM), or the generated pair in
/// `data_dir/tls/`, generating it on first start.
pub fn tls_identity(
    data_dir: &Path,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<TlsIdentity, WebError> {
    let id = candor_auth::tls::load_or_generate(&data_dir.join("tls"), cert, key, "[web]")
        .map_err(WebError::Tls)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let default = rustls::sign::CertifiedKey::from_der(id.certs, id.key, &provider).map_err(|e| {
        WebError::Tls(format!(
            "{e}: the key in {} must be the private key of the certificate in {} (check [web] cert and key)",
            id.key_path.display(),
            id.cert_path.display()
        ))
    })?;
    let certs = Arc::new(Certs {
        default: Arc::new(default),
        remote: Default::default(),
        provider: provider.clone(),
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| WebError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(certs.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsIdentity {
        config: Arc::new(config),
        certs,
        fingerprint: id.fingerprint,
        cert_path: id.cert_path,
        generated: id.generated,
    })
}

/// The web server's certificates: its own (the configured or generated
/// one) for every name, and the remote-access name's, chosen by the name
/// the browser asks for (SNI).
#[derive(Debug)]
pub struct Certs {
    default: Arc<rustls::sign::CertifiedKey>,
    remote: std::sync::RwLock<Option<(String, Arc<rustls::sign::CertifiedKey>)>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl Certs {
    /// Serves `certs`/`key` (PEM-decoded) for `host` from now on.
    pub fn set_remote(
        &self,
        host: &str,
        certs: Vec<rustls::pki_types::CertificateDer<'static>>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Result<(), WebError> {
        let k = rustls::sign::CertifiedKey::from_der(certs, key, &self.provider)
            .map_err(|e| WebError::Tls(e.to_string()))?;
        *self.remote.write().unwrap_or_else(|e| e.into_inner()) =
            Some((host.to_ascii_lowercase(), Arc::new(k)));
        Ok(())
    }
}

impl rustls::server::ResolvesServerCert for Certs {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        if let Some(name) = hello.server_name()
            && let Some((host, key)) = &*self.remote.read().unwrap_or_else(|e| e.into_inner())
            && name.eq_ignore_ascii_case(host)
        {
            return Some(key.clone());
        }
        Some(self.default.clone())
    }
}

pub use candor_recorder::cloud::RemoteConn;

/// Marks requests that came through the relay (sessions made on them are
/// remote sessions).
#[derive(Clone, Copy, Debug)]
pub struct Remote;

/// Serves `router` over TLS on `listener` (replaced by any listener that
/// arrives on `swap`: `[web] listen` changed; connections open on the old
/// one go on), and on the connections remote access hands over, until
/// `shutdown` turns true, within `limits` (see
/// [`candor_auth::conn`]: connection caps, handshake, header, body and idle
/// timeouts; remote connections count against the same caps, by the
/// browser's address).
pub async fn serve(
    mut listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    limits: candor_auth::conn::Limits,
    mut remote: Option<tokio::sync::mpsc::Receiver<RemoteConn>>,
    mut swap: Option<tokio::sync::mpsc::Receiver<TcpListener>>,
    mut shutdown: watch::Receiver<bool>,
) {
    use candor_auth::conn;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let gate = conn::ConnGate::new(limits);
    // Remote connections count by the address the cloud reports, in a gate
    // of their own: a cloud that claims a LAN address cannot use up that
    // machine's places. (So LAN and remote connections together may reach
    // twice `max_connections`; remote ones are also capped by the cloud
    // link, 32: streams by the mux, data connections by `cloud::dial`.)
    let remote_gate = conn::ConnGate::new(limits);
    let router = router.layer(axum::middleware::from_fn(move |req, next| {
        read_body_within(limits.body_read, req, next)
    }));
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, peer)) => {
                    // Over a cap: closed before any TLS work.
                    let Some(place) = gate.admit(peer.ip()) else {
                        tracing::debug!(%peer, "connection refused: too many open");
                        continue;
                    };
                    let router = router.clone().layer(axum::Extension(PeerIp(peer.ip())));
                    tokio::spawn(serve_conn(tcp, peer, acceptor.clone(), router, limits, place));
                }
                Err(e) => {
                    // Out of descriptors (EMFILE) lands here: back off, keep recording.
                    tracing::warn!("web accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            c = async { match &mut remote { Some(r) => r.recv().await, None => std::future::pending().await } } => {
                let Some(c) = c else {
                    remote = None;
                    continue;
                };
                let Some(place) = remote_gate.admit(c.client) else {
                    tracing::debug!(client = %c.client, "remote connection refused: too many open");
                    continue;
                };
                let router = router
                    .clone()
                    .layer(axum::Extension(Remote))
                    .layer(axum::Extension(PeerIp(c.client)));
                let peer = SocketAddr::new(c.client, 0);
                tokio::spawn(serve_conn(c.io, peer, acceptor.clone(), router, limits, place));
            }
            l = async { match &mut swap { Some(s) => s.recv().await, None => std::future::pending().await } } => {
                match l {
                    Some(l) => {
                        if let Ok(a) = l.local_addr() {
                            tracing::info!("web: now listening on {a}");
                        }
                        listener = l;
                    }
                    None => swap = None,
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

async fn serve_conn<S>(
    io: S,
    peer: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    router: Router,
    limits: candor_auth::conn::Limits,
    place: candor_auth::conn::Admitted,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use candor_auth::conn;
    let tls = match tokio::time::timeout(limits.handshake, acceptor.accept(io)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => return,
    };
    let io = conn::Tracked::new(tls, conn::Activity::new(), place);
    let service = hyper_util::service::TowerToHyperService::new(router);
    if let Err(e) = conn::serve_http(io, service, limits).await {
        tracing::debug!(%peer, "HTTP connection ended: {e}");
    }
}

/// Reads a request's body within `limit` (and at most [`MAX_BODY`] bytes)
/// before any handler sees it, so a client that trickles a body cannot hold
/// a connection and a task open for long.
async fn read_body_within(
    limit: std::time::Duration,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    match candor_auth::conn::read_body(body, MAX_BODY, limit).await {
        Ok(bytes) => {
            next.run(axum::extract::Request::from_parts(
                parts,
                axum::body::Body::from(bytes),
            ))
            .await
        }
        Err(candor_auth::conn::BodyError::TooLarge) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("request bodies are at most {MAX_BODY} bytes"),
        )
        .into_response(),
        Err(candor_auth::conn::BodyError::Slow) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "slow_body",
            format!("the request body must arrive within {} s", limit.as_secs()),
        )
        .into_response(),
    }
}

/// Unix seconds as RFC 3339, as the API shows times (empty if out of range).
pub(crate) fn rfc3339(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The largest request body: bodies here are a few hundred bytes (motion
/// zones are the largest).
pub const MAX_BODY: usize = 16 * 1024;

#[cfg(test)]
mod route_tests;
