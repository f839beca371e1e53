//! Who is calling, and what they may do: authentication happens once, in
//! [`gate`], which applies a route's [`Access`] and hands the handler a
//! [`Caller`]. Camera scope goes through one filter, [`Principal::visible`].

use crate::accounts::grants::{GrantAccess, Scope};
use crate::accounts::{Accounts, Role};
use crate::{ApiError, AppState, auth};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

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
    /// Came through the cloud's relay.
    pub remote: bool,
    /// The client's address (for a remote caller, as the cloud reports it).
    pub ip: Option<std::net::IpAddr>,
    /// A technician's grant: what they may do, until when. Routes let a
    /// technician in only where the table names a scope the grant has.
    pub grant: Option<GrantAccess>,
}

#[derive(Clone, Debug)]
pub enum Via {
    /// A browser session: the cookie's secret id and the session's row.
    Session { id: String, row: i64 },
    /// `Authorization: Bearer` with an API token.
    Token { id: i64 },
    /// A share link (no account): made only by `shares_api` for its own
    /// routes, a viewer of one camera, valid while the link is.
    Share { id: i64 },
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

    /// [`Self::visible`] for cameras' health (state, bitrate, storage): a
    /// technician with the diagnostics scope sees every camera's, without
    /// its video.
    pub fn health_visible<T>(
        &self,
        items: impl IntoIterator<Item = T>,
        camera: impl Fn(&T) -> &str,
    ) -> Vec<T> {
        if self.grant.as_ref().is_some_and(|g| g.scopes.diagnostics) {
            return items.into_iter().collect();
        }
        self.visible(items, camera)
    }

    /// True when the caller sees every camera: only such callers may act on
    /// the whole site (users, tokens, cloud, adding cameras).
    pub fn whole_site(&self) -> bool {
        self.cameras.is_none()
    }

    /// Whether the caller may change camera `camera`'s settings (a
    /// technician with the config scope may, without seeing its video).
    pub fn may_configure(&self, camera: &str) -> bool {
        self.grant.as_ref().is_some_and(|g| g.scopes.config) || self.may_see(camera)
    }

    /// The caller as the author of a config change.
    pub fn author(&self) -> candor_recorder::config_history::Author {
        use candor_recorder::config_history::{Author, Origin};
        let origin = if self.grant.is_some() {
            Origin::Technician
        } else if self.remote {
            Origin::Remote
        } else {
            Origin::Local
        };
        Author::new(&self.username, origin, self.ip.map(|i| i.to_string()))
    }

    pub fn session_row(&self) -> Option<i64> {
        match self.via {
            Via::Session { row, .. } => Some(row),
            Via::Token { .. } | Via::Share { .. } => None,
        }
    }

    /// The caller as the accounts database sees them now: `None` once the
    /// session or token was revoked or the user deleted. Long-lived streams
    /// (live video, the event feed) ask this every few seconds, so a
    /// revocation or a narrowed camera list ends them.
    pub fn refresh(&self, accounts: &Accounts) -> Option<Principal> {
        let (role, cameras, grant) = match &self.via {
            Via::Session { id, .. } => {
                let s = accounts.session(id).ok()??;
                let cams = if s.role == Role::Admin {
                    None
                } else {
                    s.cameras
                };
                (s.role, cams, s.grant)
            }
            Via::Token { id } => {
                let t = accounts.token_by_id(*id).ok()??;
                (t.role, t.cameras, None)
            }
            Via::Share { id } => {
                if !accounts.share_valid(*id) {
                    return None;
                }
                (self.role, self.cameras.clone(), None)
            }
        };
        Some(Principal {
            username: self.username.clone(),
            role,
            cameras,
            via: self.via.clone(),
            remote: self.remote,
            ip: self.ip,
            grant,
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
///
/// Through the cloud's relay (`remote`), API tokens are refused (they are
/// for integrations on the local network, and carry no second factor), and
/// only sessions made through the relay count: a local session's cookie
/// replayed there, or a remote one's locally, is not signed in.
fn authorize(
    st: &AppState,
    headers: &HeaderMap,
    method: &Method,
    access: Access,
    tech: Option<Scope>,
    remote: bool,
) -> Result<Principal, ApiError> {
    let (min, site) = match access {
        Access::Public => unreachable!("public routes have no gate"),
        Access::Role(r) => (r, false),
        Access::Site(r) => (r, true),
    };
    let p = if let Some(token) = bearer(headers) {
        if remote {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "local_only",
                "API tokens work on the local network only; sign in to use remote access",
            ));
        }
        match st.accounts.token(token) {
            Ok(Some(t)) => Principal {
                username: t.username,
                role: t.role,
                cameras: t.cameras,
                via: Via::Token { id: t.id },
                remote,
                ip: None,
                grant: None,
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
        let Some((id, s)) =
            auth::current(&st.accounts, headers).filter(|(_, s)| s.remote == remote)
        else {
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
            remote,
            ip: None,
            grant: s.grant,
        }
    };
    // A technician: only routes the table opens to technicians, within the
    // grant's scopes; the roles below are for the site's own users.
    if let Some(g) = &p.grant {
        return match tech {
            Some(scope) if g.scopes.allows(scope) => Ok(p),
            _ => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "not_granted",
                format!(
                    "your access grant (until {}) covers {}, not this; ask the owner to widen it",
                    crate::rfc3339(g.expires_at),
                    g.scopes
                ),
            )),
        };
    }
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
pub(crate) async fn gate(
    st: AppState,
    access: Access,
    tech: Option<Scope>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let remote = req.extensions().get::<crate::Remote>().is_some();
    match authorize(&st, req.headers(), req.method(), access, tech, remote) {
        Ok(mut p) => {
            p.ip = req.extensions().get::<crate::PeerIp>().map(|i| i.0);
            // Every change a technician makes is in the owner's audit log
            // (video they watch is audited by the live and playback routes).
            let audit = p.grant.is_some() && req.method() != Method::GET;
            let what = audit.then(|| {
                (
                    format!("{} {}", req.method(), req.uri().path()),
                    p.username.clone(),
                )
            });
            req.extensions_mut().insert(p);
            let r = next.run(req).await;
            if let Some((what, who)) = what {
                st.audit(
                    Some(&who),
                    "technician_action",
                    format!("{what} → {}", r.status().as_u16()),
                )
                .await;
            }
            r
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
