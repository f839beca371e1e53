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
mod error;
pub mod events_api;
pub mod footage;
pub mod fuzzing;
pub mod live;
pub mod motion_api;
pub mod openapi;
mod routes;
pub mod session_api;
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
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| WebError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(id.certs, id.key)
        .map_err(|e| {
            WebError::Tls(format!(
                "{e}: the key in {} must be the private key of the certificate in {} (check [web] cert and key)",
                id.key_path.display(),
                id.cert_path.display()
            ))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsIdentity {
        config: Arc::new(config),
        fingerprint: id.fingerprint,
        cert_path: id.cert_path,
        generated: id.generated,
    })
}

/// Serves `router` over TLS on `listener` until `shutdown` turns true,
/// within `limits` (see [`candor_auth::conn`]: connection caps, handshake,
/// header, body and idle timeouts).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    limits: candor_auth::conn::Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    use candor_auth::conn;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let gate = conn::ConnGate::new(limits);
    let router = router.layer(axum::middleware::from_fn(move |req, next| {
        read_body_within(limits.body_read, req, next)
    }));
    loop {
        let (tcp, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    // Out of descriptors (EMFILE) lands here: back off, keep recording.
                    tracing::warn!("web accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        // Over a cap: closed before any TLS work.
        let Some(place) = gate.admit(peer.ip()) else {
            tracing::debug!(%peer, "connection refused: too many open");
            continue;
        };
        let acceptor = acceptor.clone();
        let router = router.clone().layer(axum::Extension(PeerIp(peer.ip())));
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(limits.handshake, acceptor.accept(tcp)).await {
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
        });
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

/// The largest request body: bodies here are a few hundred bytes (motion
/// zones are the largest).
pub const MAX_BODY: usize = 16 * 1024;

#[cfg(test)]
mod route_tests;
