//! The recorder's HTTPS server.
//!
//! TLS is always on: with no certificate configured, one is generated at first
//! start (ECDSA P-256, valid for localhost and the loopback addresses) and kept
//! in the data directory; its SHA-256 fingerprint is printed so the user can
//! check what the browser shows. Only `/api/v1/health` exists so far; the web
//! app and authenticated API come with issue 3.

pub mod accounts;
pub mod auth;
pub mod footage;

use accounts::{AccountError, Accounts};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("TLS certificate: {0}")]
    Tls(String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> WebError {
    let context = context.into();
    move |source| WebError::Io { context, source }
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
    let (cert_path, key_path, generated) = match (cert, key) {
        (Some(c), Some(k)) => (c.to_owned(), k.to_owned(), false),
        (None, None) => {
            let dir = data_dir.join("tls");
            let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
            let generated = !(c.exists() && k.exists());
            if generated {
                generate(&dir, &c, &k)?;
            }
            (c, k, generated)
        }
        _ => {
            return Err(WebError::Tls(
                "web.cert and web.key must be given together".into(),
            ));
        }
    };
    let certs: Vec<_> = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(&cert_path).map_err(io(format!("opening {}", cert_path.display())))?,
    ))
    .collect::<Result<_, _>>()
    .map_err(io(format!("reading {}", cert_path.display())))?;
    let leaf = certs
        .first()
        .ok_or_else(|| WebError::Tls(format!("no certificate in {}", cert_path.display())))?;
    let fingerprint = Sha256::digest(leaf.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(&key_path).map_err(io(format!("opening {}", key_path.display())))?,
    ))
    .map_err(io(format!("reading {}", key_path.display())))?
    .ok_or_else(|| WebError::Tls(format!("no private key in {}", key_path.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| WebError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| WebError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsIdentity {
        config: Arc::new(config),
        fingerprint,
        cert_path,
        generated,
    })
}

fn generate(dir: &Path, cert_path: &Path, key_path: &Path) -> Result<(), WebError> {
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let certified =
        rcgen::generate_simple_self_signed(names).map_err(|e| WebError::Tls(e.to_string()))?;
    write_private(key_path, certified.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(cert_path, certified.cert.pem())
        .map_err(io(format!("writing {}", cert_path.display())))?;
    Ok(())
}

/// Writes a secret readable by the owner only (created 0600, never world-readable).
fn write_private(path: &Path, data: &[u8]) -> Result<(), WebError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(format!("creating {}", path.display())))?;
    f.write_all(data)
        .map_err(io(format!("writing {}", path.display())))
}

#[derive(serde::Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
}

/// Errors are JSON with a stable code and a human message.
#[derive(serde::Serialize)]
struct ApiError {
    code: &'static str,
    message: String,
}

pub(crate) fn api_error(status: StatusCode, code: &'static str, message: String) -> Response {
    (status, Json(ApiError { code, message })).into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SetupRequest {
    token: String,
    username: String,
    password: String,
}

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    pub accounts: Arc<Accounts>,
    pub limiter: Arc<auth::Limiter>,
    pub footage: Option<Arc<footage::Footage>>,
}

/// The client's address, attached per connection by [`serve`].
#[derive(Clone, Copy)]
pub struct PeerIp(pub std::net::IpAddr);

async fn setup(
    State(AppState { accounts, .. }): State<AppState>,
    body: Result<Json<SetupRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, "bad_request", e.body_text()),
    };
    // argon2 takes tens of milliseconds: keep it off the async workers.
    let r = tokio::task::spawn_blocking(move || {
        accounts
            .complete_setup(&req.token, &req.username, &req.password)
            .map(|_| req.username)
    })
    .await;
    match r {
        Ok(Ok(username)) => {
            tracing::info!(user = %username, "first admin created through the setup token");
            let body = serde_json::json!({ "username": username, "role": "admin" });
            (StatusCode::CREATED, Json(body)).into_response()
        }
        Ok(Err(e @ (AccountError::BadName | AccountError::WeakPassword))) => {
            api_error(StatusCode::BAD_REQUEST, "invalid", e.to_string())
        }
        Ok(Err(e @ AccountError::BadToken)) => {
            api_error(StatusCode::FORBIDDEN, "bad_token", e.to_string())
        }
        Ok(Err(e @ AccountError::SetupClosed)) => {
            api_error(StatusCode::CONFLICT, "setup_closed", e.to_string())
        }
        Ok(Err(e)) => {
            tracing::error!("setup failed: {e}");
            api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; see the recorder's log".into(),
            )
        }
        Err(_) => api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error".into(),
        ),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    username: String,
    password: String,
}

async fn login(
    State(st): State<AppState>,
    peer: Option<axum::Extension<PeerIp>>,
    body: Result<Json<LoginRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, "bad_request", e.body_text()),
    };
    let ip = peer
        .map(|p| p.0.0)
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    if let Some(secs) = st.limiter.locked(&req.username, ip) {
        let _ = st
            .accounts
            .audit(Some(&req.username), "login_locked", &format!("from {ip}"));
        let mut r = api_error(
            StatusCode::TOO_MANY_REQUESTS,
            "locked_out",
            format!("too many failed logins; try again in {secs} s"),
        );
        r.headers_mut()
            .insert(axum::http::header::RETRY_AFTER, secs.into());
        return r;
    }
    let accounts = st.accounts.clone();
    let (user, password) = (req.username.clone(), req.password);
    let verified = tokio::task::spawn_blocking(move || accounts.verify(&user, &password)).await;
    match verified {
        Ok(Ok(Some(_))) => match st.accounts.create_session(&req.username) {
            Ok((id, session)) => {
                st.limiter.succeeded(&req.username);
                let _ = st
                    .accounts
                    .audit(Some(&req.username), "login", &format!("from {ip}"));
                let body = serde_json::json!({
                    "username": session.username, "role": session.role.as_str(), "csrf_token": session.csrf,
                });
                let cookie = auth::set_cookie(&id, accounts::SESSION_SECS);
                (
                    StatusCode::OK,
                    [(axum::http::header::SET_COOKIE, cookie)],
                    Json(body),
                )
                    .into_response()
            }
            Err(e) => {
                tracing::error!("creating session: {e}");
                api_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error".into(),
                )
            }
        },
        Ok(Ok(None)) => {
            st.limiter.failed(&req.username, ip);
            let _ = st
                .accounts
                .audit(Some(&req.username), "login_failed", &format!("from {ip}"));
            tracing::warn!(user = %req.username, %ip, "failed login");
            api_error(
                StatusCode::UNAUTHORIZED,
                "bad_credentials",
                "wrong user name or password".into(),
            )
        }
        _ => api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error".into(),
        ),
    }
}

/// The caller's session; for anything but GET/HEAD also the CSRF header.
#[allow(clippy::result_large_err)]
pub(crate) fn require(
    st: &AppState,
    headers: &axum::http::HeaderMap,
    method: &axum::http::Method,
) -> Result<(String, accounts::Session), Response> {
    let Some((id, s)) = auth::current(&st.accounts, headers) else {
        return Err(api_error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "log in first".into(),
        ));
    };
    if method != axum::http::Method::GET && method != axum::http::Method::HEAD {
        let sent = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !auth::same(sent, &s.csrf) {
            return Err(api_error(
                StatusCode::FORBIDDEN,
                "csrf",
                "missing or wrong X-CSRF-Token header".into(),
            ));
        }
    }
    Ok((id, s))
}

async fn me(
    State(st): State<AppState>,
    method: axum::http::Method,
    headers: axum::http::HeaderMap,
) -> Response {
    match require(&st, &headers, &method) {
        Ok((_, s)) => Json(serde_json::json!({ "username": s.username, "role": s.role.as_str() }))
            .into_response(),
        Err(r) => r,
    }
}

async fn logout(
    State(st): State<AppState>,
    method: axum::http::Method,
    headers: axum::http::HeaderMap,
) -> Response {
    match require(&st, &headers, &method) {
        Ok((id, s)) => {
            let _ = st.accounts.end_session(&id);
            let _ = st.accounts.audit(Some(&s.username), "logout", "");
            (
                StatusCode::NO_CONTENT,
                [(axum::http::header::SET_COOKIE, auth::set_cookie("", 0))],
            )
                .into_response()
        }
        Err(r) => r,
    }
}

/// The routes. Everything but health, first-run setup and login requires a
/// session (and, for state changes, the CSRF header).
/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No session: the health check, first-run setup (token-guarded) and login.
    Public,
    /// A session (and the CSRF header for state changes).
    Session,
}

/// Every route, in one table: the router is built only from it, so a test
/// that walks it covers every route there is.
pub fn routes() -> Vec<(
    axum::http::Method,
    &'static str,
    Access,
    axum::routing::MethodRouter<AppState>,
)> {
    use axum::http::Method;
    let health = || async {
        Json(Health {
            status: "ok",
            version: env!("CARGO_PKG_VERSION"),
        })
    };
    vec![
        (Method::GET, "/api/v1/health", Access::Public, get(health)),
        (Method::POST, "/api/v1/setup", Access::Public, post(setup)),
        (Method::POST, "/api/v1/login", Access::Public, post(login)),
        (
            Method::POST,
            "/api/v1/logout",
            Access::Session,
            post(logout),
        ),
        (Method::GET, "/api/v1/me", Access::Session, get(me)),
        (
            Method::GET,
            "/api/v1/cameras",
            Access::Session,
            get(footage::cameras),
        ),
        (
            Method::GET,
            "/api/v1/cameras/{name}/spans",
            Access::Session,
            get(footage::spans),
        ),
        (
            Method::GET,
            "/api/v1/cameras/{name}/export.mp4",
            Access::Session,
            get(footage::export),
        ),
    ]
}

/// The routes of [`routes`], with their state.
pub fn router(accounts: Arc<Accounts>, footage: Option<footage::Footage>) -> Router {
    let state = AppState {
        accounts,
        limiter: Arc::new(auth::Limiter::default()),
        footage: footage.map(Arc::new),
    };
    routes()
        .into_iter()
        .fold(Router::new(), |r, (_, path, _, handler)| {
            r.route(path, handler)
        })
        // Bodies here are a few hundred bytes; refuse anything large early.
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .with_state(state)
}

/// Serves `router` over TLS on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!("web accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let acceptor = acceptor.clone();
        let router = router.clone().layer(axum::Extension(PeerIp(peer.ip())));
        tokio::spawn(async move {
            // A client that never finishes its handshake must not hold a task forever.
            let tls = match tokio::time::timeout(
                std::time::Duration::from_secs(10),
                acceptor.accept(tcp),
            )
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => return,
            };
            let service = hyper_util::service::TowerToHyperService::new(router);
            let builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, "HTTP connection ended: {e}");
            }
        });
    }
}

#[cfg(test)]
mod route_tests {
    use super::*;
    use tower::ServiceExt;

    /// Every route not marked public refuses a request without a session, and
    /// a state-changing one also refuses a session without the CSRF header.
    #[tokio::test]
    async fn every_non_public_route_requires_a_session() {
        let dir = tempfile::tempdir().unwrap();
        let accounts = Arc::new(Accounts::open(dir.path()).unwrap());
        accounts
            .add_user("v", accounts::Role::Viewer, "viewer password")
            .unwrap();
        let (sid, _) = accounts.create_session("v").unwrap();
        let app = router(accounts, None);
        let mut checked = 0;
        for (method, path, access, _) in routes() {
            let uri = path.replace("{name}", "gate")
                + "?from=2026-01-01T00:00:00Z&to=2026-01-01T00:01:00Z";
            let req = |cookie: Option<&str>| {
                let mut b = axum::http::Request::builder()
                    .method(method.clone())
                    .uri(&uri);
                if let Some(c) = cookie {
                    b = b.header("cookie", format!("{}={c}", auth::COOKIE));
                }
                b.header("content-type", "application/json")
                    .body(axum::body::Body::from("{}"))
                    .unwrap()
            };
            let status = app.clone().oneshot(req(None)).await.unwrap().status();
            match access {
                Access::Public => assert_ne!(status, StatusCode::UNAUTHORIZED, "{method} {path}"),
                Access::Session => {
                    assert_eq!(
                        status,
                        StatusCode::UNAUTHORIZED,
                        "{method} {path} without a session"
                    );
                    let with = app.clone().oneshot(req(Some(&sid))).await.unwrap().status();
                    if method != axum::http::Method::GET {
                        assert_eq!(
                            with,
                            StatusCode::FORBIDDEN,
                            "{method} {path} without CSRF header"
                        );
                    } else {
                        assert_ne!(
                            with,
                            StatusCode::UNAUTHORIZED,
                            "{method} {path} with a session"
                        );
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked >= 5);
    }
}
