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
pub mod cameras_api;
pub mod cloud_api;
pub mod events_api;
pub mod footage;
pub mod fuzzing;
pub mod live;
pub mod openapi;
pub mod session_api;
pub mod system;
pub use candor_auth::totp;
pub mod ui;

use accounts::{AccountError, Accounts, Role};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

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

/// An error answer: JSON with a stable `code` for programs and a `message`
/// for people that says what to do.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429, 503).
    pub retry_after: Option<u64>,
}

#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after = Some(secs);
        self
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// Logs the cause; the client learns only that it was on our side.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!("request failed: {cause}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the recorder's log has the details",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code,
            message: &self.message,
        };
        let mut r = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, secs.into());
        }
        r
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> ApiError {
        use AccountError::*;
        let (status, code) = match &e {
            BadName | WeakPassword | BadCameras(_) => (StatusCode::BAD_REQUEST, "invalid"),
            Exists(_) => (StatusCode::CONFLICT, "exists"),
            BadToken => (StatusCode::FORBIDDEN, "bad_token"),
            SetupClosed => (StatusCode::CONFLICT, "setup_closed"),
            NoUser(_) => (StatusCode::NOT_FOUND, "not_found"),
            LastAdmin => (StatusCode::CONFLICT, "last_admin"),
            BadCode => (StatusCode::BAD_REQUEST, "bad_code"),
            NoPendingTotp => (StatusCode::CONFLICT, "no_pending_totp"),
            Db(_) | Io(_) | Hash(_) => return ApiError::internal(e),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> ApiError {
        ApiError::internal(e)
    }
}

pub type ApiResult = Result<Response, ApiError>;

/// The JSON body of a request, or a 400 that says what is wrong with it.
pub(crate) fn body<T>(
    b: Result<Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, ApiError> {
    b.map(|Json(v)| v)
        .map_err(|e| ApiError::bad_request("bad_request", e.body_text()))
}

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    pub accounts: Arc<Accounts>,
    pub limiter: Arc<auth::Limiter>,
    /// Bounds concurrent argon2 work (logins, password changes, new users).
    pub hashing: Arc<candor_auth::HashGate>,
    /// Signs the device cookies of browsers that signed in before.
    pub device_key: Arc<candor_auth::DeviceKey>,
    /// Exports running per user (see [`footage::MAX_EXPORTS_PER_USER`]).
    pub exports: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    pub footage: Option<Arc<footage::Footage>>,
    pub metrics: Arc<live::LiveMetrics>,
    pub started: std::time::Instant,
}

impl AppState {
    /// Appends to the audit log on the blocking pool (each row is an fsync'd
    /// SQLite write). A failed write is logged as an error, never dropped
    /// silently: the audit trail is a promise to the owner.
    pub async fn audit(&self, user: Option<&str>, action: &'static str, detail: String) {
        let accounts = self.accounts.clone();
        let user = user.map(str::to_owned);
        let r =
            tokio::task::spawn_blocking(move || accounts.audit(user.as_deref(), action, &detail))
                .await;
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("audit log: could not record {action}: {e}"),
            Err(e) => tracing::error!("audit log: could not record {action}: {e}"),
        }
    }
}

/// The client's address, attached per connection by [`serve`].
#[derive(Clone, Copy)]
pub struct PeerIp(pub std::net::IpAddr);

/// Who is calling, and what they may do. Built once per request by the
/// router from the route's [`Access`] (see [`gate`]); handlers receive it
/// through [`Caller`] and never authenticate on their own.
#[derive(Clone, Debug)]
pub struct Principal {
    pub username: String,
    pub role: Role,
    /// Cameras this caller may see; `None`: all.
    pub cameras: Option<Vec<String>>,
    pub via: Via,
}

#[derive(Clone, Debug)]
pub enum Via {
    /// A browser session: the cookie's secret id and the session's row.
    Session { id: String, row: i64 },
    /// `Authorization: Bearer` with an API token.
    Token { id: i64 },
}

impl Principal {
    pub fn may_see(&self, camera: &str) -> bool {
        self.cameras
            .as_ref()
            .is_none_or(|c| c.iter().any(|n| n == camera))
    }

    /// The one camera-scope filter: every answer that names cameras keeps
    /// only the items whose camera this caller may see.
    pub fn visible<T>(
        &self,
        items: impl IntoIterator<Item = T>,
        camera: impl Fn(&T) -> &str,
    ) -> Vec<T> {
        items
            .into_iter()
            .filter(|i| self.may_see(camera(i)))
            .collect()
    }

    /// True when the caller sees every camera: only such callers may act on
    /// the whole site (users, tokens, cloud, adding cameras).
    pub fn whole_site(&self) -> bool {
        self.cameras.is_none()
    }

    pub fn session_row(&self) -> Option<i64> {
        match self.via {
            Via::Session { row, .. } => Some(row),
            Via::Token { .. } => None,
        }
    }

    /// The caller as the accounts database sees them now: `None` once the
    /// session or token was revoked or the user deleted. Long-lived streams
    /// (live video, the event feed) ask this every few seconds, so a
    /// revocation or a narrowed camera list ends them.
    pub fn refresh(&self, accounts: &Accounts) -> Option<Principal> {
        let (role, cameras) = match &self.via {
            Via::Session { id, .. } => {
                let s = accounts.session(id).ok()??;
                let cams = if s.role == Role::Admin {
                    None
                } else {
                    s.cameras
                };
                (s.role, cams)
            }
            Via::Token { id } => {
                let t = accounts.token_by_id(*id).ok()??;
                (t.role, t.cameras)
            }
        };
        Some(Principal {
            username: self.username.clone(),
            role,
            cameras,
            via: self.via.clone(),
        })
    }

    /// Whether a stream opened for `camera` (or for every visible camera,
    /// `None`) with at least `min` may go on.
    pub fn still_allowed(&self, accounts: &Accounts, min: Role, camera: Option<&str>) -> bool {
        self.refresh(accounts)
            .is_some_and(|p| p.role.at_least(min) && camera.is_none_or(|c| p.may_see(c)))
    }
}

/// How often open streams re-check their caller (revocation ends them within this).
pub const STREAM_RECHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// The caller of a route, as checked by the router (see [`gate`]).
pub struct Caller(pub Principal);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Caller, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            // Only a public route could get here without one: a table error.
            .ok_or_else(|| ApiError::internal("a public route asked for its caller"))
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Authenticates the caller (an API token, else the session cookie), checks
/// the CSRF header on state changes made with a cookie, then the role and,
/// for whole-site routes, that the caller is not limited to some cameras.
/// Called only by [`gate`], for every non-public route.
fn authorize(
    st: &AppState,
    headers: &HeaderMap,
    method: &Method,
    access: Access,
) -> Result<Principal, ApiError> {
    let (min, site) = match access {
        Access::Public => unreachable!("public routes have no gate"),
        Access::Role(r) => (r, false),
        Access::Site(r) => (r, true),
    };
    let p = if let Some(token) = bearer(headers) {
        match st.accounts.token(token) {
            Ok(Some(t)) => Principal {
                username: t.username,
                role: t.role,
                cameras: t.cameras,
                via: Via::Token { id: t.id },
            },
            Ok(None) => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "bad_token",
                    "the API token is unknown or was revoked",
                ));
            }
            Err(e) => return Err(ApiError::internal(e)),
        }
    } else {
        let Some((id, s)) = auth::current(&st.accounts, headers) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "log in first",
            ));
        };
        // Cookies ride along on cross-site requests; a header that only our
        // own pages can set proves the request came from them.
        if method != Method::GET && method != Method::HEAD {
            let sent = headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !auth::same(sent, &s.csrf) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf",
                    "missing or wrong X-CSRF-Token header; reload the page",
                ));
            }
        }
        Principal {
            cameras: if s.role == Role::Admin {
                None
            } else {
                s.cameras
            },
            username: s.username,
            role: s.role,
            via: Via::Session { id, row: s.row },
        }
    };
    if !p.role.at_least(min) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this needs the {} role", min.as_str()),
        ));
    }
    if site && !p.whole_site() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "scoped",
            "this credential is limited to some cameras; this needs one that sees the whole site",
        ));
    }
    Ok(p)
}

/// The router's check in front of every non-public route: the only place
/// that authenticates. A handler gets the result as [`Caller`].
async fn gate(
    st: AppState,
    access: Access,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match authorize(&st, req.headers(), req.method(), access) {
        Ok(p) => {
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No credentials: the health check, first-run setup (token-guarded),
    /// login, and the web app's static files (which hold no data).
    Public,
    /// A session or API token with at least this role (and, for a session,
    /// the CSRF header on state changes). Callers limited to some cameras
    /// are let in, and see only their cameras (per-camera routes answer 404
    /// for the others, lists are filtered by [`Principal::visible`]).
    Role(Role),
    /// As `Role`, and the caller must see every camera: routes that act on
    /// the whole site (users, tokens, the cloud, adding cameras, the audit
    /// log). A camera-scoped token gets 403 `scoped`, so it can never create
    /// anything broader than itself.
    Site(Role),
}

pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub summary: &'static str,
    pub handler: axum::routing::MethodRouter<AppState>,
}

fn r(
    method: Method,
    path: &'static str,
    access: Access,
    summary: &'static str,
    handler: axum::routing::MethodRouter<AppState>,
) -> Route {
    Route {
        method,
        path,
        access,
        summary,
        handler,
    }
}

/// Every route, in one table: the router and the OpenAPI document are built
/// only from it, so a test that walks it covers every route there is.
pub fn routes() -> Vec<Route> {
    use Access::{Public, Role as R, Site};
    use Role::{Admin, Operator, Viewer};
    use axum::routing::{delete, patch};
    let (g, p) = (Method::GET, Method::POST);
    let health = || async {
        Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
    };
    vec![
        r(
            g.clone(),
            "/api/v1/health",
            Public,
            "Liveness and version",
            get(health),
        ),
        r(
            p.clone(),
            "/api/v1/setup",
            Public,
            "Create the first admin with the one-time setup token",
            post(session_api::setup),
        ),
        r(
            p.clone(),
            "/api/v1/login",
            Public,
            "Log in (password, then TOTP code if enabled); sets the session cookie",
            post(session_api::login),
        ),
        r(
            p.clone(),
            "/api/v1/logout",
            R(Viewer),
            "End this session",
            post(session_api::logout),
        ),
        r(
            g.clone(),
            "/api/v1/me",
            R(Viewer),
            "The caller: name, role, cameras, TOTP state",
            get(session_api::me),
        ),
        r(
            p.clone(),
            "/api/v1/me/totp",
            R(Viewer),
            "Start TOTP enrolment: returns a secret and otpauth URI",
            post(session_api::totp_begin),
        ),
        r(
            p.clone(),
            "/api/v1/me/totp/confirm",
            R(Viewer),
            "Finish TOTP enrolment with a code; returns recovery codes",
            post(session_api::totp_confirm),
        ),
        r(
            p.clone(),
            "/api/v1/me/password",
            R(Viewer),
            "Change your own password (needs the current one); other sessions end",
            post(session_api::change_password),
        ),
        r(
            Method::DELETE,
            "/api/v1/me/totp",
            R(Viewer),
            "Turn TOTP off (needs a current code)",
            delete(session_api::totp_disable),
        ),
        r(
            g.clone(),
            "/api/v1/cameras",
            R(Viewer),
            "Cameras the caller may see, with state, codec, bitrate and fps",
            get(footage::cameras),
        ),
        r(
            p.clone(),
            "/api/v1/cameras",
            Site(Admin),
            "Add a camera: written to the config file and started at once",
            post(cameras_api::add),
        ),
        r(
            g.clone(),
            "/api/v1/cloud",
            Site(Admin),
            "The cloud link: pairing, connection, sharing",
            get(cloud_api::get_state),
        ),
        r(
            p.clone(),
            "/api/v1/cloud/pair",
            Site(Admin),
            "Start pairing: the cloud gives a one-time code",
            post(cloud_api::pair),
        ),
        r(
            p.clone(),
            "/api/v1/cloud/pair/confirm",
            Site(Admin),
            "Confirm pairing after comparing the confirmation code on both screens",
            post(cloud_api::confirm),
        ),
        r(
            p.clone(),
            "/api/v1/cloud/pair/cancel",
            Site(Admin),
            "Cancel pairing",
            post(cloud_api::cancel),
        ),
        r(
            p.clone(),
            "/api/v1/cloud/unpair",
            Site(Admin),
            "Unpair from the cloud (final)",
            post(cloud_api::unpair),
        ),
        r(
            Method::PUT,
            "/api/v1/cloud/sharing",
            Site(Admin),
            "What the site shares with the cloud",
            axum::routing::put(cloud_api::sharing),
        ),
        r(
            g.clone(),
            "/api/v1/egress",
            Site(Admin),
            "The egress ledger: every message and byte sent off-site (JSON or CSV)",
            get(cloud_api::egress),
        ),
        r(
            p.clone(),
            "/api/v1/discover",
            Site(Admin),
            "Find ONVIF cameras on the local network (WS-Discovery)",
            post(cameras_api::discover),
        ),
        r(
            p.clone(),
            "/api/v1/discover/describe",
            Site(Admin),
            "An ONVIF camera's identity, profiles and RTSP stream URIs (main and sub)",
            post(cameras_api::describe),
        ),
        r(
            g.clone(),
            "/api/v1/cameras/{name}/spans",
            R(Viewer),
            "Recorded spans in [from, to) (RFC 3339)",
            get(footage::spans),
        ),
        r(
            g.clone(),
            "/api/v1/cameras/{name}/export.mp4",
            R(Viewer),
            "MP4 of [from, to); supports Range and ETag, so it also serves playback",
            get(footage::export),
        ),
        r(
            g.clone(),
            "/api/v1/cameras/{name}/motion",
            R(Viewer),
            "The camera's motion settings (as in [cameras.motion])",
            get(footage::motion_get),
        ),
        r(
            Method::PUT,
            "/api/v1/cameras/{name}/motion",
            R(Admin),
            "Change the camera's motion settings: written to the config file (comments kept) and applied at once",
            axum::routing::put(footage::motion_put),
        ),
        r(
            g.clone(),
            "/api/v1/cameras/{name}/snapshot.jpg",
            R(Viewer),
            "What the camera sees now: its next key frame as a JPEG (H.264 cameras)",
            get(footage::snapshot),
        ),
        r(
            g.clone(),
            "/api/v1/cameras/{name}/live",
            R(Viewer),
            "Live fMP4 over WebSocket: a JSON init message, then binary init segment and fragments",
            get(live::live),
        ),
        r(
            g.clone(),
            "/api/v1/events",
            R(Viewer),
            "Events (camera, kind, start, end), newest first; camera=, kind=, since=, limit=",
            get(events_api::list),
        ),
        r(
            Method::PUT,
            "/api/v1/events/{id}/pinned",
            R(Operator),
            "Protect an event's footage (pre/post capture included) from retention: {\"pinned\": true|false}",
            axum::routing::put(events_api::pin),
        ),
        r(
            g.clone(),
            "/api/v1/events/{id}/{file}",
            R(Viewer),
            "An event's snapshot.jpg or thumbnail.jpg (JPEG)",
            get(events_api::snapshot),
        ),
        r(
            g.clone(),
            "/api/v1/events/live",
            R(Viewer),
            "Live event feed (Server-Sent Events, one `event` message per change)",
            get(events_api::live),
        ),
        r(
            g.clone(),
            "/api/v1/system",
            R(Operator),
            "Camera states, storage, retention forecast, version, uptime",
            get(system::system),
        ),
        r(
            g.clone(),
            "/api/v1/users",
            Site(Admin),
            "List users",
            get(admin_api::users),
        ),
        r(
            p.clone(),
            "/api/v1/users",
            Site(Admin),
            "Create a user",
            post(admin_api::create_user),
        ),
        r(
            Method::PATCH,
            "/api/v1/users/{name}",
            Site(Admin),
            "Change a user's role, cameras or password",
            patch(admin_api::update_user),
        ),
        r(
            Method::DELETE,
            "/api/v1/users/{name}",
            Site(Admin),
            "Delete a user",
            delete(admin_api::delete_user),
        ),
        r(
            g.clone(),
            "/api/v1/sessions",
            R(Viewer),
            "Sessions (admins: everyone's; others: their own)",
            get(admin_api::sessions),
        ),
        r(
            Method::DELETE,
            "/api/v1/sessions/{id}",
            R(Viewer),
            "Revoke a session",
            delete(admin_api::revoke_session),
        ),
        r(
            g.clone(),
            "/api/v1/tokens",
            R(Viewer),
            "API tokens (admins: everyone's; others: their own)",
            get(admin_api::tokens),
        ),
        r(
            p.clone(),
            "/api/v1/tokens",
            R(Viewer),
            "Create an API token (shown once)",
            post(admin_api::create_token),
        ),
        r(
            Method::DELETE,
            "/api/v1/tokens/{id}",
            R(Viewer),
            "Revoke an API token",
            delete(admin_api::revoke_token),
        ),
        r(
            g.clone(),
            "/api/v1/audit",
            Site(Admin),
            "Audit log, filtered; format=csv for a download",
            get(admin_api::audit),
        ),
        r(
            g.clone(),
            "/api/v1/openapi.json",
            R(Viewer),
            "This API, as OpenAPI 3.1",
            get(openapi::openapi),
        ),
        r(
            g.clone(),
            "/metrics",
            R(Operator),
            "Prometheus metrics (use an API token with the operator role)",
            get(system::metrics),
        ),
        r(g.clone(), "/", Public, "The web app", get(ui::index)),
        r(
            g.clone(),
            "/app/{*file}",
            Public,
            "The web app's static files",
            get(ui::asset),
        ),
        r(
            g.clone(),
            "/manifest.webmanifest",
            Public,
            "Web app manifest",
            get(ui::manifest),
        ),
        r(
            g,
            "/sw.js",
            Public,
            "Service worker",
            get(ui::service_worker),
        ),
    ]
}

/// The handlers' shared state.
pub(crate) fn state(accounts: Arc<Accounts>, footage: Option<footage::Footage>) -> AppState {
    let device_key = match accounts.device_key() {
        Ok(k) => k,
        Err(e) => {
            // Without a stored key, device cookies last until the restart.
            tracing::error!("device cookie key: {e}; using a temporary one");
            candor_auth::DeviceKey::random()
        }
    };
    AppState {
        accounts,
        limiter: Arc::new(auth::Limiter::default()),
        hashing: Arc::new(candor_auth::HashGate::default()),
        device_key: Arc::new(device_key),
        exports: Default::default(),
        footage: footage.map(Arc::new),
        metrics: Arc::new(live::LiveMetrics::default()),
        started: std::time::Instant::now(),
    }
}

/// The routes of [`routes`], with their state.
pub fn router(accounts: Arc<Accounts>, footage: Option<footage::Footage>) -> Router {
    let state = state(accounts, footage);
    let mut by_path: Vec<(&'static str, axum::routing::MethodRouter<AppState>)> = Vec::new();
    for route in routes() {
        let access = route.access;
        let handler = match access {
            Access::Public => route.handler,
            _ => route
                .handler
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    move |State(st): State<AppState>, req, next| gate(st, access, req, next),
                )),
        };
        match by_path.iter_mut().find(|(p, _)| *p == route.path) {
            Some((_, h)) => *h = std::mem::take(h).merge(handler),
            None => by_path.push((route.path, handler)),
        }
    }
    by_path
        .into_iter()
        .fold(Router::new(), |r, (path, handler)| r.route(path, handler))
        .fallback(|| async { ApiError::not_found("no such page or API route") })
        // Bodies here are a few hundred bytes; refuse anything large early.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Headers every answer carries: no framing (clickjacking), no sniffing, a
/// strict content security policy (only our own scripts), HSTS.
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.entry(k)
            .or_insert(axum::http::HeaderValue::from_static(v));
    };
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    set(h, "referrer-policy", "no-referrer");
    set(
        h,
        "content-security-policy",
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    );
    set(h, "strict-transport-security", "max-age=31536000");
    r
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
mod route_tests {
    use super::*;
    use tower::ServiceExt;

    fn request(
        method: &Method,
        uri: &str,
        cookie: Option<&str>,
        csrf: Option<&str>,
        bearer: Option<&str>,
    ) -> axum::http::Request<axum::body::Body> {
        let mut b = axum::http::Request::builder()
            .method(method.clone())
            .uri(uri);
        if let Some(c) = cookie {
            b = b.header("cookie", format!("{}={c}", auth::COOKIE));
        }
        if let Some(c) = csrf {
            b = b.header("x-csrf-token", c);
        }
        if let Some(t) = bearer {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b.header("content-type", "application/json")
            .body(axum::body::Body::from("{}"))
            .unwrap()
    }

    /// Walks every route of the table: a non-public one refuses a request
    /// with no credentials (401) and a garbage token (401); a state change
    /// with a session cookie but no CSRF header is refused (403); a caller
    /// below the route's role is refused (403) whether by session or token;
    /// a caller with the role gets past authorization.
    #[tokio::test]
    async fn every_route_checks_authentication_csrf_and_role() {
        let dir = tempfile::tempdir().unwrap();
        let accounts = Arc::new(Accounts::open(dir.path()).unwrap());
        for (n, r) in [
            ("v", Role::Viewer),
            ("o", Role::Operator),
            ("a", Role::Admin),
        ] {
            accounts.add_user(n, r, "long enough password").unwrap();
        }
        let sess = |n: &str| accounts.create_session(n).unwrap();
        let tokens = [
            accounts
                .create_token("v", "t", Role::Viewer, None)
                .unwrap()
                .1,
            accounts
                .create_token("o", "t", Role::Operator, None)
                .unwrap()
                .1,
            accounts
                .create_token("a", "t", Role::Admin, None)
                .unwrap()
                .1,
        ];
        let app = router(accounts.clone(), None);
        let mut checked = 0;
        for route in routes() {
            // Fresh sessions per route: the logout route ends the one it is sent with.
            let users = [
                (Role::Viewer, sess("v"), &tokens[0]),
                (Role::Operator, sess("o"), &tokens[1]),
                (Role::Admin, sess("a"), &tokens[2]),
            ];
            let uri = route
                .path
                .replace("{name}", "gate")
                .replace("{id}", "999")
                .replace("{*file}", "app.js")
                .replace("{file}", "snapshot.jpg")
                + "?from=2026-01-01T00:00:00Z&to=2026-01-01T00:01:00Z";
            let m = &route.method;
            let send = |req| {
                let app = app.clone();
                async move { app.oneshot(req).await.unwrap() }
            };
            let anon = send(request(m, &uri, None, None, None)).await.status();
            let (Access::Role(min) | Access::Site(min)) = route.access else {
                assert_ne!(
                    anon,
                    StatusCode::UNAUTHORIZED,
                    "{m} {} is public",
                    route.path
                );
                assert_ne!(anon, StatusCode::FORBIDDEN, "{m} {} is public", route.path);
                continue;
            };
            let what = format!("{m} {}", route.path);
            assert_eq!(anon, StatusCode::UNAUTHORIZED, "{what} without credentials");
            let bad = send(request(m, &uri, None, None, Some("cnd_forged")))
                .await
                .status();
            assert_eq!(bad, StatusCode::UNAUTHORIZED, "{what} with a forged token");
            let changes = *m != Method::GET;
            for (role, (sid, s), token) in &users {
                let allowed = role.at_least(min);
                if changes {
                    let no_csrf = send(request(m, &uri, Some(sid), None, None)).await.status();
                    assert_eq!(no_csrf, StatusCode::FORBIDDEN, "{what} without CSRF header");
                }
                for resp in [
                    send(request(m, &uri, Some(sid), Some(&s.csrf), None)).await,
                    send(request(m, &uri, None, None, Some(token.as_str()))).await,
                ] {
                    let status = resp.status();
                    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                        .await
                        .unwrap();
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    if allowed {
                        assert!(
                            status != StatusCode::UNAUTHORIZED
                                && !(status == StatusCode::FORBIDDEN
                                    && matches!(v["code"].as_str(), Some("forbidden" | "csrf"))),
                            "{what} as {}: {status} {v}",
                            role.as_str()
                        );
                    } else {
                        assert_eq!(
                            (status, v["code"].as_str()),
                            (StatusCode::FORBIDDEN, Some("forbidden")),
                            "{what} as {}",
                            role.as_str()
                        );
                    }
                }
            }
            checked += 1;
        }
        assert!(checked >= 20, "only {checked} routes checked");
    }

    type MakeRequest = Box<dyn Fn(&str) -> axum::http::Request<axum::body::Body>>;

    /// Walks every route with a camera in its path: a viewer, an operator
    /// and a token limited to another camera get the same 404 as for a
    /// camera that does not exist; with the camera granted they get past
    /// the scope check.
    #[tokio::test]
    async fn every_camera_route_checks_the_camera_scope() {
        let dir = tempfile::tempdir().unwrap();
        let accounts = Arc::new(Accounts::open(dir.path()).unwrap());
        let yard = ["yard".to_string()];
        accounts
            .add_user_scoped("v", Role::Viewer, "long enough password", Some(&yard))
            .unwrap();
        accounts
            .add_user_scoped("o", Role::Operator, "long enough password", Some(&yard))
            .unwrap();
        accounts
            .add_user("a", Role::Admin, "long enough password")
            .unwrap();
        let (_, narrow_token) = accounts
            .create_token("a", "t", Role::Admin, Some(&yard))
            .unwrap();
        let (store, _) = candor_storage::Store::open(&dir.path().join("store")).unwrap();
        store.ensure_camera("gate").unwrap();
        store.ensure_camera("yard").unwrap();
        let footage = footage::Footage::new(
            store,
            candor_recorder::StatusSource::empty(),
            footage::Policy::default(),
        );
        let app = router(accounts.clone(), Some(footage));
        let mut checked = 0;
        for route in routes()
            .into_iter()
            .filter(|r| r.path.contains("/cameras/{name}"))
        {
            let uri = |cam: &str| {
                route.path.replace("{name}", cam)
                    + "?from=2026-01-01T00:00:00Z&to=2026-01-01T00:01:00Z"
            };
            let send = |req: axum::http::Request<axum::body::Body>| {
                let app = app.clone();
                async move {
                    let resp = app.oneshot(req).await.unwrap();
                    let status = resp.status();
                    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                        .await
                        .unwrap();
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    (status, v["code"].as_str().map(str::to_owned))
                }
            };
            let m = &route.method;
            let need = match route.access {
                Access::Role(r) => r,
                // The scoped token is refused before any camera is looked at.
                Access::Site(_) => continue,
                Access::Public => Role::Viewer,
            };
            let callers: Vec<(String, Role, MakeRequest)> = vec![
                ("viewer session".into(), Role::Viewer, {
                    let (sid, s) = accounts.create_session("v").unwrap();
                    let m = m.clone();
                    Box::new(move |u: &str| request(&m, u, Some(&sid), Some(&s.csrf), None))
                }),
                ("operator session".into(), Role::Operator, {
                    let (sid, s) = accounts.create_session("o").unwrap();
                    let m = m.clone();
                    Box::new(move |u: &str| request(&m, u, Some(&sid), Some(&s.csrf), None))
                }),
                ("admin token limited to yard".into(), Role::Admin, {
                    let (m, t) = (m.clone(), narrow_token.clone());
                    Box::new(move |u: &str| request(&m, u, None, None, Some(&t)))
                }),
            ];
            for (who, role, req) in &callers {
                let hidden = send(req(&uri("gate"))).await;
                let missing = send(req(&uri("nosuch"))).await;
                assert_eq!(hidden, missing, "ungranted must look like missing");
                if !role.at_least(need) {
                    // Below the route's role: refused before any camera is looked at.
                    assert_eq!(
                        hidden,
                        (StatusCode::FORBIDDEN, Some("forbidden".to_string())),
                        "{m} {} as {who}",
                        route.path
                    );
                    continue;
                }
                assert_eq!(
                    hidden,
                    (StatusCode::NOT_FOUND, Some("no_camera".to_string())),
                    "{m} {} as {who} for an ungranted camera",
                    route.path
                );
                let granted = send(req(&uri("yard"))).await;
                assert_ne!(
                    granted.1.as_deref(),
                    Some("no_camera"),
                    "{m} {} as {who} for a granted camera",
                    route.path
                );
            }
            checked += 1;
        }
        assert!(checked >= 3, "only {checked} camera routes");
    }

    /// Walks every route with credentials that were good once: a revoked
    /// API token, an ended session, the session of a deleted user. Each is
    /// refused (401) wherever credentials are needed; and a token limited
    /// to one camera is refused (403 `scoped`) on every whole-site route.
    #[tokio::test]
    async fn every_route_refuses_revoked_credentials_and_site_routes_refuse_scoped_ones() {
        let dir = tempfile::tempdir().unwrap();
        let accounts = Arc::new(Accounts::open(dir.path()).unwrap());
        accounts
            .add_user("a", Role::Admin, "long enough password")
            .unwrap();
        accounts
            .add_user("gone", Role::Admin, "long enough password")
            .unwrap();
        let (tid, revoked) = accounts.create_token("a", "t", Role::Admin, None).unwrap();
        assert!(accounts.revoke_token(tid, None).unwrap());
        let (_, scoped) = accounts
            .create_token("a", "t", Role::Admin, Some(&["yard".to_string()]))
            .unwrap();
        let (ended, ended_s) = accounts.create_session("a").unwrap();
        accounts.end_session(&ended).unwrap();
        let (orphan, orphan_s) = accounts.create_session("gone").unwrap();
        accounts.delete_user("gone").unwrap();
        let app = router(accounts.clone(), None);
        let mut site_routes = 0;
        for route in routes() {
            if route.access == Access::Public {
                continue;
            }
            let uri = route
                .path
                .replace("{name}", "yard")
                .replace("{id}", "999")
                .replace("{file}", "snapshot.jpg");
            let m = &route.method;
            let what = format!("{m} {}", route.path);
            for (who, req) in [
                (
                    "revoked token",
                    request(m, &uri, None, None, Some(&revoked)),
                ),
                (
                    "ended session",
                    request(m, &uri, Some(&ended), Some(&ended_s.csrf), None),
                ),
                (
                    "deleted user's session",
                    request(m, &uri, Some(&orphan), Some(&orphan_s.csrf), None),
                ),
            ] {
                let status = app.clone().oneshot(req).await.unwrap().status();
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} with a {who}");
            }
            if let Access::Site(_) = route.access {
                let resp = app
                    .clone()
                    .oneshot(request(m, &uri, None, None, Some(&scoped)))
                    .await
                    .unwrap();
                let status = resp.status();
                let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                    .await
                    .unwrap();
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                assert_eq!(
                    (status, v["code"].as_str()),
                    (StatusCode::FORBIDDEN, Some("scoped")),
                    "{what}"
                );
                site_routes += 1;
            }
        }
        assert!(site_routes >= 15, "only {site_routes} whole-site routes");
    }

    #[tokio::test]
    async fn errors_are_json_with_a_code() {
        let dir = tempfile::tempdir().unwrap();
        let app = router(Arc::new(Accounts::open(dir.path()).unwrap()), None);
        let resp = app
            .oneshot(request(
                &Method::GET,
                "/api/v1/nothing-here",
                None,
                None,
                None,
            ))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["code"], "not_found");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    #[test]
    fn openapi_lists_every_api_route_with_its_role() {
        let doc = openapi::document();
        for r in routes() {
            if !r.path.starts_with("/api/") {
                continue;
            }
            let op = &doc["paths"][r.path][r.method.as_str().to_ascii_lowercase()];
            assert!(op.is_object(), "{} {} missing", r.method, r.path);
            if let Access::Role(role) | Access::Site(role) = r.access {
                assert_eq!(op["x-candor-min-role"], role.as_str());
            }
            assert_eq!(
                op["x-candor-whole-site"].as_bool().unwrap_or(false),
                matches!(r.access, Access::Site(_)),
                "{} {}",
                r.method,
                r.path
            );
        }
    }
}
