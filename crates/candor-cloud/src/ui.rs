//! The cloud's web app: an installable, mobile-first PWA of plain ES modules
//! under `ui/`, embedded at compile time. The DOM helper and the icons are
//! the recorder app's own files, so both apps build markup the same safe way.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

struct Asset {
    path: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $file:literal, $mime:literal) => {
        Asset {
            path: $path,
            mime: $mime,
            body: include_bytes!($file),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("index.html", "../ui/index.html", "text/html; charset=utf-8"),
    asset!("app.css", "../ui/app.css", "text/css; charset=utf-8"),
    asset!("app.js", "../ui/app.js", "text/javascript; charset=utf-8"),
    asset!(
        "installers.js",
        "../ui/installers.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "dom.js",
        "../../candor-web/ui/dom.js",
        "text/javascript; charset=utf-8"
    ),
    asset!("icon.svg", "../../candor-web/ui/icon.svg", "image/svg+xml"),
    asset!(
        "icon-192.png",
        "../../candor-web/ui/icon-192.png",
        "image/png"
    ),
    asset!(
        "icon-512.png",
        "../../candor-web/ui/icon-512.png",
        "image/png"
    ),
    asset!(
        "manifest.webmanifest",
        "../ui/manifest.webmanifest",
        "application/manifest+json"
    ),
    asset!("sw.js", "../ui/sw.js", "text/javascript; charset=utf-8"),
];

fn serve(path: &str) -> Response {
    match ASSETS.iter().find(|a| a.path == path) {
        Some(a) => {
            let mut r = a.body.into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.mime));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        }
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { serve("index.html") }))
        .route("/sw.js", get(|| async { serve("sw.js") }))
        .route(
            "/manifest.webmanifest",
            get(|| async { serve("manifest.webmanifest") }),
        )
        .route(
            "/ui/{file}",
            get(|Path(f): Path<String>| async move { serve(&f) }),
        )
}
