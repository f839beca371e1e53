//! The web app: plain HTML, CSS and JavaScript modules under `ui/`, embedded
//! in the binary at compile time. No Node.js, no build step: `cargo build`
//! alone produces a recorder that serves its own app.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

struct Asset {
    path: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $mime:literal) => {
        Asset {
            path: $path,
            mime: $mime,
            body: include_bytes!(concat!("../ui/", $path)),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("dom.js", "text/javascript; charset=utf-8"),
    asset!("live.js", "text/javascript; charset=utf-8"),
    asset!("timeline.js", "text/javascript; charset=utf-8"),
    asset!("common.js", "text/javascript; charset=utf-8"),
    asset!("pages/auth.js", "text/javascript; charset=utf-8"),
    asset!("pages/live.js", "text/javascript; charset=utf-8"),
    asset!("pages/playback.js", "text/javascript; charset=utf-8"),
    asset!("pages/events.js", "text/javascript; charset=utf-8"),
    asset!("pages/system.js", "text/javascript; charset=utf-8"),
    asset!("pages/add-camera.js", "text/javascript; charset=utf-8"),
    asset!("pages/config.js", "text/javascript; charset=utf-8"),
    asset!("pages/access.js", "text/javascript; charset=utf-8"),
    asset!("pages/motion.js", "text/javascript; charset=utf-8"),
    asset!("pages/users.js", "text/javascript; charset=utf-8"),
    asset!("pages/account.js", "text/javascript; charset=utf-8"),
    asset!("pages/audit.js", "text/javascript; charset=utf-8"),
    asset!("pages/cloud.js", "text/javascript; charset=utf-8"),
    asset!("pages/share.js", "text/javascript; charset=utf-8"),
    asset!("pages/sharing.js", "text/javascript; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("icon-192.png", "image/png"),
    asset!("icon-512.png", "image/png"),
    asset!("manifest.webmanifest", "application/manifest+json"),
    asset!("sw.js", "text/javascript; charset=utf-8"),
];

fn serve(path: &str) -> Response {
    match ASSETS.iter().find(|a| a.path == path) {
        Some(a) => {
            let mut r = a.body.into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.mime));
            // Assets change with the binary; revalidate rather than guess.
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        }
        None => {
            crate::ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such file").into_response()
        }
    }
}

pub async fn index() -> Response {
    serve("index.html")
}

pub async fn asset(Path(file): Path<String>) -> Response {
    serve(&file)
}

pub async fn manifest() -> Response {
    serve("manifest.webmanifest")
}

pub async fn service_worker() -> Response {
    serve("sw.js")
}
