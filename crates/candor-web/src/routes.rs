//! The route table: every route with who may call it and what it answers.
//! The router and the OpenAPI document are built only from it.

use crate::accounts::grants::Scope;
use crate::accounts::{Accounts, Role};
use crate::{
    Access, ApiError, AppState, MAX_BODY, admin_api, authz::gate, cameras_api, cloud_api,
    config_api, diagnostics, events_api, footage, grants_api, live, motion_api, openapi,
    outputs_api, session_api, shares_api, state, system, ui,
};
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;

pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub summary: &'static str,
    pub handler: axum::routing::MethodRouter<AppState>,
    /// The success status and the schema of its JSON body, for the OpenAPI
    /// document (from the same [`candor_wire`] type the handler sends).
    pub reply: Option<(u16, candor_wire::schema::Of)>,
    /// The grant scope that lets a technician call it; `None`: technicians
    /// may not (see [`technician_scope`]).
    pub tech: Option<Scope>,
}

impl Route {
    fn reply(mut self, status: u16, schema: candor_wire::schema::Of) -> Route {
        self.reply = Some((status, schema));
        self
    }
}

fn r(
    method: Method,
    path: &'static str,
    access: Access,
    summary: &'static str,
    handler: axum::routing::MethodRouter<AppState>,
) -> Route {
    let tech = technician_scope(&method, path);
    Route {
        method,
        path,
        access,
        summary,
        handler,
        reply: None,
        tech,
    }
}

/// What a technician's grant must include to call a route. Routes not
/// named here are closed to technicians: users, tokens, sessions, the
/// audit log, the cloud and its ledger, share links, outputs, and their
/// own second factor and password (set at enrolment).
pub fn technician_scope(method: &Method, path: &str) -> Option<Scope> {
    let get = *method == Method::GET;
    Some(match path {
        "/api/v1/logout" | "/api/v1/me" | "/api/v1/openapi.json" => Scope::Any,
        // The list is filtered to the grant's video cameras.
        "/api/v1/cameras" if get => Scope::Any,
        "/api/v1/cameras"
        | "/api/v1/cameras/{name}"
        | "/api/v1/cameras/{name}/config"
        | "/api/v1/cameras/{name}/motion"
        | "/api/v1/cameras/{name}/objects"
        | "/api/v1/discover"
        | "/api/v1/discover/describe" => Scope::Config,
        // Confirming a held change is the owner's: technicians can't make
        // one (their whole-file changes are limited to cameras) anyway.
        "/api/v1/config/confirm" => return None,
        p if p.starts_with("/api/v1/config/") => Scope::Config,
        "/api/v1/system/update" => Scope::Maintenance,
        "/api/v1/system" | "/metrics" => Scope::Diagnostics,
        p if p.starts_with("/api/v1/diagnostics") => Scope::Diagnostics,
        "/api/v1/cameras/{name}/live" | "/api/v1/cameras/{name}/snapshot.jpg" => Scope::Live,
        "/api/v1/cameras/{name}/spans"
        | "/api/v1/cameras/{name}/export.mp4"
        | "/api/v1/alarms/{id}"
        | "/api/v1/events/live"
        | "/api/v1/events/{id}/{file}" => Scope::Playback,
        "/api/v1/events" if get => Scope::Playback,
        _ => return None,
    })
}

/// Every route, in one table: the router and the OpenAPI document are built
/// only from it, so a test that walks it covers every route there is.
pub fn routes() -> Vec<Route> {
    use Access::{Public, Role as R, Site};
    use Role::{Admin, Operator, Viewer};
    use axum::routing::{delete, patch};
    use candor_wire::schema::of;
    let (g, p) = (Method::GET, Method::POST);
    let health = || async {
        Json(candor_wire::Health {
            status: "ok".into(),
            version: candor_wire::version().into(),
        })
    };
    vec![
        r(
            g.clone(),
            "/api/v1/health",
            Public,
            "Liveness and version",
            get(health),
        )
        .reply(200, of::<candor_wire::Health>),
        r(
            p.clone(),
            "/api/v1/setup",
            Public,
            "Create the first admin with the one-time setup token",
            post(session_api::setup),
        )
        .reply(201, of::<candor_wire::SignedIn>),
        r(
            p.clone(),
            "/api/v1/login",
            Public,
            "Log in (password, then TOTP code if enabled); sets the session cookie",
            post(session_api::login),
        )
        .reply(200, of::<candor_wire::SignedIn>),
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
        )
        .reply(200, of::<candor_wire::Me>),
        r(
            p.clone(),
            "/api/v1/me/totp",
            R(Viewer),
            "Start TOTP enrolment: returns a secret and otpauth URI",
            post(session_api::totp_begin),
        )
        .reply(200, of::<candor_wire::TotpSecret>),
        r(
            p.clone(),
            "/api/v1/me/totp/confirm",
            R(Viewer),
            "Finish TOTP enrolment with a code; returns recovery codes",
            post(session_api::totp_confirm),
        )
        .reply(200, of::<candor_wire::RecoveryCodes>),
        r(
            p.clone(),
            "/api/v1/me/password",
            R(Viewer),
            "Change your own password (needs the current one); other sessions end",
            post(session_api::change_password),
        )
        .reply(200, of::<candor_wire::Csrf>),
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
        )
        .reply(200, of::<candor_wire::CameraList>),
        r(
            p.clone(),
            "/api/v1/cameras",
            Site(Admin),
            "Add a camera: written to the config file and started at once",
            post(cameras_api::add),
        )
        .reply(201, of::<candor_wire::CameraAdded>),
        r(
            g.clone(),
            "/api/v1/cameras/{name}/config",
            Site(Admin),
            "A camera's addresses and user name as saved (never its password), for changing them",
            get(config_api::camera_get),
        )
        .reply(200, of::<candor_wire::CameraSettings>),
        r(
            Method::PUT,
            "/api/v1/cameras/{name}",
            Site(Admin),
            "Change a camera's addresses and credentials (a password left out is kept); it restarts with them",
            axum::routing::put(config_api::camera_put),
        )
        .reply(200, of::<candor_wire::ConfigChanged>),
        r(
            Method::DELETE,
            "/api/v1/cameras/{name}",
            Site(Admin),
            "Remove a camera: recording stops, its footage stays until retention removes it",
            delete(config_api::camera_delete),
        )
        .reply(200, of::<candor_wire::ConfigChanged>),
        r(
            g.clone(),
            "/api/v1/diagnostics",
            Site(Admin),
            "Diagnostics: cameras with their recent reconnect reasons, storage, the cloud link",
            get(diagnostics::get),
        ),
        r(
            g.clone(),
            "/api/v1/diagnostics/logs",
            Site(Admin),
            "The recorder's last log lines (at most 2,000), secrets redacted",
            get(diagnostics::logs),
        ),
        r(
            p.clone(),
            "/api/v1/diagnostics/cameras/{name}/test",
            Site(Admin),
            "Test a configured camera's connectivity: TCP, RTSP DESCRIBE, ONVIF time",
            post(diagnostics::camera_test),
        ),
        r(
            g.clone(),
            "/api/v1/diagnostics/bundle",
            Site(Admin),
            "A support bundle (JSON): versions, the config with secrets redacted, its recent history, health, recent logs",
            get(diagnostics::bundle),
        ),
        r(
            g.clone(),
            "/api/v1/grants",
            Site(Admin),
            "Technicians' access: grants (active, and ended in the last 30 days) and requests",
            get(grants_api::list),
        ),
        r(
            p.clone(),
            "/api/v1/grants",
            Site(Admin),
            "Grant a technician access for 1-24 h and a scope; answers with a one-time enrolment code when they have none here",
            post(grants_api::create),
        ),
        r(
            p.clone(),
            "/api/v1/grants/{id}/revoke",
            Site(Admin),
            "End a grant now: the technician's sessions end with it",
            post(grants_api::revoke),
        ),
        r(
            p.clone(),
            "/api/v1/access-requests",
            Site(Admin),
            "Record a request for access (grants nothing until approved)",
            post(grants_api::request),
        ),
        r(
            p.clone(),
            "/api/v1/access-requests/{id}/approve",
            Site(Admin),
            "Approve a request, as asked or narrowed",
            post(grants_api::approve),
        ),
        r(
            p.clone(),
            "/api/v1/access-requests/{id}/refuse",
            Site(Admin),
            "Refuse a request",
            post(grants_api::refuse),
        ),
        r(
            p.clone(),
            "/api/v1/enroll",
            Public,
            "A technician's enrolment, step 1 (the one-time code from the owner): a new TOTP secret",
            post(grants_api::enroll),
        ),
        r(
            p.clone(),
            "/api/v1/enroll/finish",
            Public,
            "A technician's enrolment, step 2: their password and a TOTP code; uses the code up",
            post(grants_api::enroll_finish),
        ),
        r(
            g.clone(),
            "/api/v1/config/versions",
            Site(Admin),
            "Versions of the config file, newest first: who, when, from where, what",
            get(config_api::versions),
        )
        .reply(200, of::<candor_wire::ConfigVersions>),
        r(
            g.clone(),
            "/api/v1/config/diff",
            Site(Admin),
            "A unified diff between two config versions (from, to), secrets redacted",
            get(config_api::diff),
        )
        .reply(200, of::<candor_wire::ConfigDiff>),
        r(
            g.clone(),
            "/api/v1/config/text",
            Site(Admin),
            "The config file as it is, secrets redacted",
            get(config_api::text),
        )
        .reply(200, of::<candor_wire::ConfigText>),
        r(
            Method::PUT,
            "/api/v1/config/text",
            Site(Admin),
            "Replace the config file (validated; secrets kept where left redacted); applied at once where possible; a [web] change reverts unless confirmed",
            axum::routing::put(config_api::put_text),
        )
        .reply(200, of::<candor_wire::ConfigChanged>),
        r(
            p.clone(),
            "/api/v1/config/rollback",
            Site(Admin),
            "Make an earlier version the config again, applied at once where possible",
            post(config_api::rollback),
        )
        .reply(200, of::<candor_wire::ConfigChanged>),
        r(
            p.clone(),
            "/api/v1/config/confirm",
            Site(Admin),
            "Keep the change waiting for confirmation",
            post(config_api::confirm),
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
            Method::PUT,
            "/api/v1/cloud/remote",
            Site(Admin),
            "Remote access through the cloud, end-to-end encrypted: on or off",
            axum::routing::put(cloud_api::remote),
        ),
        r(
            g.clone(),
            "/api/v1/egress",
            Site(Admin),
            "The egress ledger: every message and byte sent off-site (JSON or CSV)",
            get(cloud_api::egress),
        )
        .reply(200, of::<candor_wire::EgressList>),
        r(
            p.clone(),
            "/api/v1/discover",
            Site(Admin),
            "Find ONVIF cameras on the local network (WS-Discovery)",
            post(cameras_api::discover),
        )
        .reply(200, of::<candor_wire::DiscoveredList>),
        r(
            p.clone(),
            "/api/v1/discover/describe",
            Site(Admin),
            "An ONVIF camera's identity, profiles and RTSP stream URIs (main and sub)",
            post(cameras_api::describe),
        )
        .reply(200, of::<candor_wire::Description>),
        r(
            g.clone(),
            "/api/v1/cameras/{name}/spans",
            R(Viewer),
            "Recorded spans in [from, to) (RFC 3339)",
            get(footage::spans),
        )
        .reply(200, of::<candor_wire::SpanList>),
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
            get(motion_api::motion_get),
        )
        .reply(200, of::<candor_wire::MotionSettings>),
        r(
            Method::PUT,
            "/api/v1/cameras/{name}/motion",
            R(Admin),
            "Change the camera's motion settings: written to the config file (comments kept) and applied at once",
            axum::routing::put(motion_api::motion_put),
        )
        .reply(200, of::<candor_wire::MotionSettings>),
        r(
            g.clone(),
            "/api/v1/cameras/{name}/objects",
            R(Viewer),
            "The camera's object detection settings (as in [cameras.objects])",
            get(motion_api::objects_get),
        )
        .reply(200, of::<candor_wire::ObjectSettings>),
        r(
            Method::PUT,
            "/api/v1/cameras/{name}/objects",
            R(Admin),
            "Change the camera's object detection settings: validated with the whole config (objects need motion on), written to the config file (comments kept) and applied at once",
            axum::routing::put(motion_api::objects_put),
        )
        .reply(200, of::<candor_wire::ObjectSettings>),
        r(
            Method::POST,
            "/api/v1/shares",
            R(Operator),
            "Share a clip (camera, from, to; at most 15 min) or a camera's live view with someone without an account, until expires_in_secs (default a day, at most 7 days); the answer's link (#share=…) is shown once",
            axum::routing::post(shares_api::create),
        )
        .reply(201, of::<candor_wire::ShareLink>),
        r(
            g.clone(),
            "/api/v1/shares",
            R(Operator),
            "Share links of the cameras the caller may see (valid ones and those ended in the last 30 days)",
            get(shares_api::list),
        )
        .reply(200, of::<candor_wire::ShareList>),
        r(
            Method::DELETE,
            "/api/v1/shares/{id}",
            R(Operator),
            "Revoke a share link at once",
            axum::routing::delete(shares_api::revoke),
        )
        .reply(200, of::<candor_wire::ShareLink>),
        r(
            g.clone(),
            "/api/v1/share",
            Public,
            "What a share link shows (token in X-Candor-Share); 404 once expired or revoked; audited",
            get(shares_api::open),
        )
        .reply(200, of::<candor_wire::ShareLink>),
        r(
            g.clone(),
            "/api/v1/share/clip.mp4",
            Public,
            "A shared clip as MP4 (token in X-Candor-Share); camera=, from=, to= within the share only, else 404",
            get(shares_api::clip),
        ),
        r(
            g.clone(),
            "/api/v1/share/live",
            Public,
            "A shared live view over WebSocket (subprotocols candor-share and the token); ends when the link does",
            get(shares_api::live),
        ),
        r(
            g.clone(),
            "/api/v1/cameras/{name}/outputs",
            R(Operator),
            "The camera's relay outputs (siren, gate, light) over ONVIF GetRelayOutputs",
            get(outputs_api::list),
        )
        .reply(200, of::<candor_wire::RelayOutputs>),
        r(
            Method::POST,
            "/api/v1/cameras/{name}/outputs",
            R(Operator),
            "Switch a relay output: {\"token\": \"siren\", \"active\": true} (ONVIF SetRelayOutputState); audited",
            axum::routing::post(outputs_api::switch),
        )
        .reply(200, of::<candor_wire::RelaySwitched>),
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
            "Events (camera, kind, label, start, end), newest first; camera=, kind=, label= (person, bicycle, car, motorcycle, bus, truck), since=, limit=",
            get(events_api::list),
        )
        .reply(200, of::<candor_wire::EventList>),
        r(
            Method::PUT,
            "/api/v1/events/{id}/pinned",
            R(Operator),
            "Protect an event's footage (pre/post capture included) from retention: {\"pinned\": true|false}",
            axum::routing::put(events_api::pin),
        )
        .reply(200, of::<candor_wire::Pinned>),
        r(
            g.clone(),
            "/api/v1/events/{id}/{file}",
            R(Viewer),
            "An event's snapshot.jpg (an object event's with its box drawn), thumbnail.jpg or, for object events, clean.jpg (JPEG)",
            get(events_api::snapshot),
        ),
        r(
            g.clone(),
            "/api/v1/alarms/{id}",
            R(Viewer),
            "The event behind a cloud alarm (the id its push notification carries)",
            get(events_api::by_alarm),
        )
        .reply(200, of::<candor_wire::Event>),
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
        )
        .reply(200, of::<candor_wire::System>),
        r(
            g.clone(),
            "/api/v1/system/update",
            Site(Admin),
            "The running version, what the last update check found, and any install",
            get(system::update_status),
        )
        .reply(200, of::<candor_wire::UpdateStatus>),
        r(
            p.clone(),
            "/api/v1/system/update",
            Site(Admin),
            "Install the signed release the last update check offered, now or at a time (the recorder verifies it again)",
            axum::routing::post(system::update),
        )
        .reply(202, of::<candor_wire::UpdateInstall>),
        r(
            Method::DELETE,
            "/api/v1/system/update",
            Site(Admin),
            "Cancel a scheduled install",
            delete(system::cancel_update),
        )
        .reply(200, of::<candor_wire::UpdateInstall>),
        r(
            g.clone(),
            "/api/v1/users",
            Site(Admin),
            "List users",
            get(admin_api::users),
        )
        .reply(200, of::<candor_wire::UserList>),
        r(
            p.clone(),
            "/api/v1/users",
            Site(Admin),
            "Create a user",
            post(admin_api::create_user),
        )
        .reply(201, of::<candor_wire::Created>),
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
        )
        .reply(200, of::<candor_wire::SessionList>),
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
        )
        .reply(200, of::<candor_wire::TokenList>),
        r(
            p.clone(),
            "/api/v1/tokens",
            R(Viewer),
            "Create an API token (shown once)",
            post(admin_api::create_token),
        )
        .reply(201, of::<candor_wire::NewToken>),
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
        )
        .reply(200, of::<candor_wire::AuditList>),
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

/// The routes of [`routes`], with their state.
pub fn router(accounts: Arc<Accounts>, footage: Option<footage::Footage>) -> Router {
    let state = state(accounts, footage);
    // Installs run in the recorder (now, scheduled, or in the window); what
    // they did goes to the owner's audit log.
    if let Some(u) = state.footage.as_ref().and_then(|f| f.updates.as_ref()) {
        let accounts = state.accounts.clone();
        u.on_audit(Arc::new(move |user, action, detail| {
            if let Err(e) = accounts.audit(user.as_deref(), action, &detail) {
                tracing::error!("audit log: could not record {action}: {e}");
            }
        }));
    }
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::spawn(config_api::confirm_timer(state.clone()));
        tokio::spawn(grants_api::watch_ends(state.clone()));
        if let Some(rx) = state
            .footage
            .as_ref()
            .and_then(|f| f.cloud.as_ref())
            .and_then(|c| c.take_access_requests())
        {
            tokio::spawn(grants_api::store_cloud_requests(state.clone(), rx));
        }
        if let Some(rx) = state
            .footage
            .as_ref()
            .and_then(|f| f.cloud.as_ref())
            .and_then(|c| c.take_grant_claims())
        {
            tokio::spawn(grants_api::check_cloud_claims(state.clone(), rx));
        }
        let st = state.clone();
        tokio::spawn(async move { grants_api::report_grants(&st).await });
    }
    let mut by_path: Vec<(&'static str, axum::routing::MethodRouter<AppState>)> = Vec::new();
    for route in routes() {
        let (access, tech) = (route.access, route.tech);
        let handler = match access {
            Access::Public => route.handler,
            _ => route
                .handler
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    move |State(st): State<AppState>, req, next| gate(st, access, tech, req, next),
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
