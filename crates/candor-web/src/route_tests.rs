//! The route table against the real router: every route, every role.
use crate::accounts::{Accounts, Role};
use crate::*;
use axum::http::{Method, StatusCode};
use std::sync::Arc;
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
            route.path.replace("{name}", cam) + "?from=2026-01-01T00:00:00Z&to=2026-01-01T00:01:00Z"
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
