//! The web layer's fuzz entry point: arbitrary requests (method, path,
//! query, headers, body) through the real router, past authentication with
//! an admin token, into every handler's input parsing. Used by
//! `fuzz/fuzz_targets/http_request.rs` and by the seeded mutations that run
//! in every `cargo test`. A panic in a handler is a bug; any status is fine.

use crate::accounts::{Accounts, Role};
use crate::footage::{Footage, Policy};
use axum::Router;
use std::sync::Arc;
use tower::ServiceExt;

pub struct Harness {
    rt: tokio::runtime::Runtime,
    router: Router,
    token: String,
    _dir: tempfile::TempDir,
}

impl Harness {
    pub fn new() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let accounts = Arc::new(Accounts::open(dir.path()).expect("accounts"));
        accounts
            .add_user("fuzz", Role::Admin, "fuzz password 1")
            .expect("user");
        let (_, token) = accounts
            .create_token("fuzz", "fuzz", Role::Admin, None)
            .expect("token");
        let (store, _) = candor_storage::Store::open(&dir.path().join("store")).expect("store");
        store.ensure_camera("gate").expect("camera");
        let footage = Footage::new(
            store,
            candor_recorder::StatusSource::empty(),
            Policy::default(),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Harness {
            rt,
            router: crate::router(accounts, Some(footage)),
            token,
            _dir: dir,
        }
    }

    /// Interprets `data` as a request: first byte picks the method, then a
    /// NUL-separated path-and-query, header value (sent as `Range`) and body.
    pub fn request(&self, data: &[u8]) -> Option<u16> {
        let (&m, rest) = data.split_first()?;
        let method = ["GET", "POST", "PATCH", "DELETE", "HEAD"][usize::from(m) % 5];
        let mut parts = rest.splitn(3, |&b| b == 0);
        let uri = parts.next().unwrap_or_default();
        let range = parts.next().unwrap_or_default();
        let body = parts.next().unwrap_or_default().to_vec();
        let uri = std::str::from_utf8(uri).ok()?;
        // Requests hyper would refuse never reach a handler.
        let uri: axum::http::Uri = uri.parse().ok()?;
        let mut b = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json");
        if let Ok(v) = axum::http::HeaderValue::from_bytes(range) {
            b = b.header("range", v);
        }
        let req = b.body(axum::body::Body::from(body)).ok()?;
        let router = self.router.clone();
        self.rt.block_on(async move {
            let resp = router.oneshot(req).await.ok()?;
            let status = resp.status().as_u16();
            // Drain the body: streamed answers run their producer to the end.
            // Live feeds never end; two seconds of one is plenty.
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                axum::body::to_bytes(resp.into_body(), 64 << 20),
            )
            .await;
            Some(status)
        })
    }
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}
