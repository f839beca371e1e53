//! The recorder attacked as an outsider or a thief would, against the real
//! `candor run`: parallel password guessing, a camera-scoped token walking
//! every route, revoked credentials, idle and slow connections while
//! recording, streams that outlive revocation, a stolen session, oversized
//! exports, cameras that point inside the recorder's host, and files others
//! can read. Each test performs the attack and asserts it fails.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Target {
    dir: tempfile::TempDir,
    _sim: Sim,
    cfg: PathBuf,
    rec: RecorderProc,
    base: String,
    cert: PathBuf,
}

/// A recorder with `cams`, an admin `root`, and `web_extra` under `[web]`.
fn target(cams: &[&str], web_extra: &str) -> Target {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(H264_CLIP, cams.len());
    let list: Vec<_> = cams
        .iter()
        .enumerate()
        .map(|(i, c)| (*c, sim.url(i), ""))
        .collect();
    let cfg = write_config(dir.path(), "", &list);
    if !web_extra.is_empty() {
        let text = std::fs::read_to_string(&cfg).unwrap().replace(
            "[web]\nlisten = \"127.0.0.1:0\"\n",
            &format!("[web]\nlisten = \"127.0.0.1:0\"\n{web_extra}\n"),
        );
        std::fs::write(&cfg, text).unwrap();
    }
    assert!(
        user_add(&cfg, "root", "admin", "root password 1")
            .status
            .success()
    );
    let rec = start_recorder(&cfg);
    let base = web_url(&rec);
    let cert = dir.path().join("data/tls/cert.pem");
    Target {
        dir,
        _sim: sim,
        cfg,
        rec,
        base,
        cert,
    }
}

impl Target {
    fn login(&self, user: &str, password: &str) -> Web {
        Web::login(&self.rec, self.dir.path(), user, password)
    }
    fn port(&self) -> u16 {
        self.base
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }
    /// curl with a bearer token (or none), a time limit, from `from`.
    fn raw(
        &self,
        method: &str,
        path: &str,
        auth: &[&str],
        body: Option<&str>,
        from: Option<&str>,
    ) -> (u16, String) {
        let mut c = Command::new("curl");
        c.args([
            "-sS",
            "-m",
            "4",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-X",
            method,
        ])
        .arg("--cacert")
        .arg(&self.cert);
        if let Some(ip) = from {
            c.args(["--interface", ip]);
        }
        if let Some(b) = body {
            c.args(["-H", "Content-Type: application/json", "-d", b]);
        }
        for h in auth {
            c.args(["-H", h]);
        }
        let o = c
            .arg(format!("{}{}", self.base, path.trim_start_matches('/')))
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let (body, code) = out.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }
    fn system(&self, admin: &Web) -> serde_json::Value {
        let (code, _, v) = admin.api("GET", "system", None);
        assert_eq!(code, 200, "{v}");
        v
    }
}

fn code_of(body: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned))
}

/// 60 wrong passwords for `root`, 30 at a time from one address, reach the
/// password check at most 5 times (the rest: 429 or 503 without hashing).
/// The user is then locked for strangers, even with the right password from
/// another address, but a browser that signed in before still gets in; and
/// the whole flood leaves a bounded number of audit lines.
#[test]
fn parallel_guessing_is_capped_and_a_known_browser_still_gets_in() {
    let t = target(&["gate"], "");
    let known = t.login("root", "root password 1");
    let url = format!("{}api/v1/login", t.base);
    let statuses = Arc::new(std::sync::Mutex::new(Vec::new()));
    std::thread::scope(|s| {
        for _ in 0..30 {
            let (url, cert, statuses) = (&url, &t.cert, statuses.clone());
            s.spawn(move || {
                for _ in 0..2 {
                    let o = Command::new("curl")
                        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
                        .arg(cert)
                        .args(["-H", "Content-Type: application/json", "-d"])
                        .arg(r#"{"username":"root","password":"wrong password!"}"#)
                        .arg(url)
                        .output()
                        .unwrap();
                    let code: u16 = String::from_utf8_lossy(&o.stdout)
                        .trim()
                        .parse()
                        .unwrap_or(0);
                    statuses.lock().unwrap().push(code);
                }
            });
        }
    });
    let statuses = statuses.lock().unwrap().clone();
    let checked = statuses.iter().filter(|&&c| c == 401).count();
    let refused = statuses.iter().filter(|&&c| c == 429 || c == 503).count();
    eprintln!("60 parallel wrong logins: {checked} reached the password check, {refused} refused");
    assert_eq!(statuses.len(), 60);
    assert!(
        checked <= 5,
        "{checked} guesses reached the password check: {statuses:?}"
    );
    assert_eq!(checked + refused, 60, "{statuses:?}");
    // A stranger elsewhere, with the right password: the name is locked.
    let right = r#"{"username":"root","password":"root password 1"}"#;
    let (code, body) = t.raw("POST", "api/v1/login", &[], Some(right), Some("127.0.0.2"));
    assert_eq!(
        (code, code_of(&body).as_deref()),
        (429, Some("locked_out")),
        "{body}"
    );
    // The browser that signed in before (device cookie in its jar) gets in.
    let (code, _, v) = curl(&t.cert, &known.jar, "POST", &url, Some(right), &[]);
    assert_eq!(code, 200, "a known browser is locked out by strangers: {v}");
    // Audit: the failures that were checked, one line for the lockout, not
    // one per refused attempt.
    let admin = Web {
        csrf: v["csrf_token"].as_str().unwrap().to_owned(),
        ..known
    };
    let (_, _, a) = admin.api("GET", "audit?action=login_locked", None);
    let locked = a["entries"].as_array().unwrap().len();
    assert!(
        (1..=2).contains(&locked),
        "{locked} login_locked lines: {a}"
    );
    let (_, _, a) = admin.api("GET", "audit?action=login_failed", None);
    assert!(a["entries"].as_array().unwrap().len() <= 5, "{a}");
}

/// Every API route, walked with: no credentials, a revoked token, an ended
/// session (all 401 where credentials are needed); a viewer limited to one
/// camera (403 below its role); and an admin API token limited to the same
/// camera, which gets 403 `scoped` on whole-site routes and, everywhere
/// else, answers that never name the other camera. The routes come from the
/// running recorder's own OpenAPI document.
#[test]
fn every_route_holds_against_scoped_and_revoked_credentials() {
    let dir = tempfile::tempdir().unwrap();
    // Events first: the other camera's are the newest, so a limit applied
    // before the scope filter would show the scoped caller nothing.
    {
        let (store, _) = candor_storage::Store::open(&dir.path().join("data")).unwrap();
        let yard = store.ensure_camera("yard").unwrap();
        let hidden = store.ensure_camera("hidden7").unwrap();
        let base = candor_media::Time90k::now().0 + 3600 * 90_000;
        for (cam, off) in [(yard, 0), (hidden, 1000)] {
            for i in 0..10 {
                let at = candor_media::Time90k(base + (off + i) * 90_000);
                let id = store.start_event(cam, "motion", "test", at, None).unwrap();
                store
                    .end_event(id, candor_media::Time90k(at.0 + 90_000))
                    .unwrap();
            }
        }
    }
    let sim = Sim::start(H264_CLIP, 2);
    let cfg = write_config(
        dir.path(),
        "",
        &[("yard", sim.url(0), ""), ("hidden7", sim.url(1), "")],
    );
    assert!(
        user_add(&cfg, "root", "admin", "root password 1")
            .status
            .success()
    );
    let rec = start_recorder(&cfg);
    let t = Target {
        base: web_url(&rec),
        cert: dir.path().join("data/tls/cert.pem"),
        dir,
        _sim: sim,
        cfg,
        rec,
    };
    let admin = t.login("root", "root password 1");
    let (code, _, v) = admin.api(
        "POST",
        "users",
        Some(r#"{"name":"vy","password":"viewer password","role":"viewer","cameras":["yard"]}"#),
    );
    assert_eq!(code, 201, "{v}");
    let viewer = t.login("vy", "viewer password");
    let viewer_cookie = format!("Cookie: __Host-candor_session={}", jar_session(&viewer.jar));
    let (_, _, v) = admin.api(
        "POST",
        "tokens",
        Some(r#"{"name":"yard only","role":"admin","cameras":["yard"]}"#),
    );
    let scoped = v["token"].as_str().unwrap().to_owned();
    let (_, _, v) = admin.api("POST", "tokens", Some(r#"{"name":"gone"}"#));
    let revoked = v["token"].as_str().unwrap().to_owned();
    let (code, _, _) = admin.api("DELETE", &format!("tokens/{}", v["id"]), None);
    assert_eq!(code, 204);
    let ended = t.login("vy", "viewer password");
    assert_eq!(ended.api("POST", "logout", Some("{}")).0, 204);
    let ended_cookie = format!("Cookie: __Host-candor_session={}", jar_session(&ended.jar));
    // The scoped token's own camera must be there to be seen.
    wait_for("recording", Duration::from_secs(20), || {
        t.system(&admin)["cameras"].as_array().unwrap().len() == 2
    });
    let (_, _, doc) = admin.api("GET", "openapi.json", None);
    let bearer = format!("Authorization: Bearer {scoped}");
    let bad_bearer = format!("Authorization: Bearer {revoked}");
    let viewer_csrf = format!("X-CSRF-Token: {}", viewer.csrf);
    let mut walked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let method = method.to_uppercase();
            if path.contains("logout") || method == "DELETE" && path.contains("/me/") {
                continue; // would end the sessions the walk uses
            }
            let Some(min) = op["x-candor-min-role"].as_str() else {
                continue; // public
            };
            let site = op["x-candor-whole-site"].as_bool().unwrap_or(false);
            // Event 1 is the yard's; other ids must not exist (a token
            // revoking itself, or the admin's session, would end the walk).
            let id = if path.starts_with("/api/v1/events") {
                "1"
            } else {
                "999"
            };
            let p = path
                .replace("{name}", "yard")
                .replace("{id}", id)
                .replace("{file}", "thumbnail.jpg")
                + if path.contains("export") || path.contains("spans") {
                    "?from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:10Z"
                } else {
                    ""
                };
            let what = format!("{method} {path}");
            let body = (method != "GET").then_some("{}");
            let url = format!("api/v1/{}", p.trim_start_matches("/api/v1/"));
            let url = if path == "/metrics" {
                "metrics".to_owned()
            } else {
                url
            };
            for (who, auth) in [
                ("no credentials", vec![]),
                ("a revoked token", vec![bad_bearer.as_str()]),
                (
                    "an ended session",
                    vec![ended_cookie.as_str(), viewer_csrf.as_str()],
                ),
            ] {
                let (code, b) = t.raw(&method, &url, &auth, body, None);
                assert_eq!(code, 401, "{what} with {who}: {b}");
            }
            let (code, b) = t.raw(&method, &url, &[&bearer], body, None);
            if site {
                assert_eq!(
                    (code, code_of(&b).as_deref()),
                    (403, Some("scoped")),
                    "{what}: {b}"
                );
            } else {
                assert!(!b.contains("hidden7"), "{what} with the yard token: {b}");
                assert_ne!(code, 500, "{what}: {b}");
                if path.contains("{name}") {
                    let other = url.replace("yard", "hidden7");
                    let (code, b) = t.raw(&method, &other, &[&bearer], body, None);
                    assert_eq!(
                        (code, code_of(&b).as_deref()),
                        (404, Some("no_camera")),
                        "{what}: {b}"
                    );
                }
            }
            let (code, b) = t.raw(&method, &url, &[&viewer_cookie, &viewer_csrf], body, None);
            if min != "viewer" {
                assert_eq!(
                    (code, code_of(&b).as_deref()),
                    (403, Some("forbidden")),
                    "{what} as viewer: {b}"
                );
            } else {
                assert!(!b.contains("hidden7"), "{what} as the yard viewer: {b}");
            }
            walked += 1;
        }
    }
    eprintln!("walked {walked} routes with every kind of credential");
    assert!(walked >= 35, "walked only {walked} routes");
    // The limit applies after the scope: five of the yard's, not none.
    let (code, b) = t.raw("GET", "api/v1/events?limit=5", &[&bearer], None, None);
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(code, 200);
    let ev = v["events"].as_array().unwrap();
    assert_eq!(ev.len(), 5, "{v}");
    assert!(ev.iter().all(|e| e["camera"] == "yard"), "{v}");
    // And it cannot make anything broader than itself.
    let (code, b) = t.raw(
        "POST",
        "api/v1/users",
        &[&bearer],
        Some(r#"{"name":"evil","password":"evil password","role":"admin"}"#),
        None,
    );
    assert_eq!((code, code_of(&b).as_deref()), (403, Some("scoped")), "{b}");
    let (code, b) = t.raw(
        "POST",
        "api/v1/tokens",
        &[&bearer],
        Some(r#"{"name":"wider"}"#),
        None,
    );
    assert_eq!(code, 403, "{b}");
}

/// The session id curl stored for the recorder.
fn jar_session(jar: &Path) -> String {
    std::fs::read_to_string(jar)
        .unwrap()
        .lines()
        .find(|l| l.contains("__Host-candor_session"))
        .and_then(|l| l.split('\t').nth(6))
        .unwrap_or_default()
        .to_owned()
}

fn tls_client(cert: &Path) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert).unwrap(),
    )) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// The connection attack, against a server on `port` with a 3 s idle
/// timeout: 40 TLS connections from 127.0.0.1 (how many stay open, and how
/// many of those the idle timeout then closes), then a slowloris client
/// from 127.0.0.3 sending a header byte every 500 ms (when it was closed).
async fn connection_attack(
    tls: &tokio_rustls::TlsConnector,
    port: u16,
    path: &str,
) -> (usize, usize, Option<Duration>) {
    use tokio::io::AsyncWriteExt;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut streams = Vec::new();
    for _ in 0..40 {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_secs(2), tls.connect(name.clone(), tcp)).await
        {
            streams.push(s);
        }
    }
    let open = still_open(streams, Duration::from_millis(300)).await;
    let held = open.len();
    let idle_closed = held - still_open(open, Duration::from_secs(6)).await.len();
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.bind("127.0.0.3:0".parse().unwrap()).unwrap();
    let tcp = tcp.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    let mut s = tls.connect(name, tcp).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n").as_bytes())
        .await
        .unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if s.write_all(b"X").await.is_err()
            || closed_within(&mut s, Duration::from_millis(500)).await
        {
            return (held, idle_closed, Some(start.elapsed()));
        }
    }
    (held, idle_closed, None)
}

/// The streams the server has not closed within `wait`, checked all at once
/// (one after the other would let the idle timeout close the first ones).
async fn still_open<S: tokio::io::AsyncRead + Unpin>(streams: Vec<S>, wait: Duration) -> Vec<S> {
    let checks = streams.into_iter().map(|mut s| async move {
        let closed = closed_within(&mut s, wait).await;
        (!closed).then_some(s)
    });
    futures::future::join_all(checks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Whether the server closed `s` (EOF or error) within `wait`.
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(s: &mut S, wait: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut b = [0u8; 256];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut b)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// While two cameras record: connections past the per-address cap are
/// closed at once; TLS connections that say nothing are closed after the
/// idle timeout; a slowloris client that trickles header bytes is closed
/// after the header timeout though bytes keep coming. Recording loses
/// nothing: no camera reconnects and frames keep arriving.
#[test]
fn idle_slow_and_excess_connections_are_closed_while_recording() {
    let t = target(
        &["gate", "yard"],
        "idle_timeout = \"3s\"\nmax_connections_per_address = 16",
    );
    let admin = t.login("root", "root password 1");
    wait_for("streaming", Duration::from_secs(20), || {
        t.system(&admin)["cameras"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["state"] == "streaming")
    });
    let cameras = || admin.api("GET", "cameras", None).2;
    let before = cameras();
    let frames = |v: &serde_json::Value| -> Vec<u64> {
        v["cameras"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["frames_written"].as_u64().unwrap_or(0))
            .collect()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let port = t.port();
    let tls = tls_client(&t.cert);
    let (held, idle_closed, slow) = rt.block_on(connection_attack(&tls, port, "/api/v1/health"));
    let (slow_closed, slow_secs) = (slow.is_some(), slow.map_or(99.0, |d| d.as_secs_f64()));
    eprintln!(
        "held {held} of 40; idle closed {idle_closed}; slowloris closed after {slow_secs:.1} s"
    );
    assert!(
        (10..=16).contains(&held),
        "held {held} connections from one address"
    );
    assert_eq!(idle_closed, held, "idle connections left open");
    assert!(
        slow_closed && slow_secs < 15.0,
        "slowloris held {slow_secs:.1} s"
    );
    let after = cameras();
    for (c, (a, b)) in after["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .zip(frames(&before).iter().zip(frames(&after)))
    {
        assert_eq!(c["reconnects"], 0, "{c}");
        assert!(b > *a + 100, "frames stalled: {a} -> {b}");
    }
    // The cap counts open connections only: a fresh client is served.
    let (code, _) = t.raw("GET", "api/v1/health", &[], None, None);
    assert_eq!(code, 200);
    let _ = &t.cfg;
}

/// A viewer's live WebSocket and event feed end within 5 s of the viewer
/// being deleted; a message bigger than the limit ends the socket at once.
#[test]
fn streams_end_when_access_is_revoked() {
    let t = target(&["gate"], "");
    let admin = t.login("root", "root password 1");
    let (code, _, v) = admin.api(
        "POST",
        "users",
        Some(r#"{"name":"v","password":"viewer password","role":"viewer","cameras":["gate"]}"#),
    );
    assert_eq!(code, 201, "{v}");
    let viewer = t.login("v", "viewer password");
    let cookie = jar_session(&viewer.jar);
    let port = t.port();
    let tls = tls_client(&t.cert);
    // The event feed, held open by curl for up to 30 s.
    let sse_start = Instant::now();
    let mut sse = Command::new("curl")
        .args(["-sS", "-N", "-m", "30", "-o", "/dev/null", "--cacert"])
        .arg(&t.cert)
        .args(["-H", &format!("Cookie: __Host-candor_session={cookie}")])
        .arg(format!("{}api/v1/events/live", t.base))
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (frames_before, ended_after, deleted_at) = rt.block_on(async {
        use futures::{SinkExt, StreamExt};
        let connect = || async {
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let s = tls.connect(name, tcp).await.unwrap();
            let req = tokio_tungstenite::tungstenite::http::Request::builder()
                .uri(format!("wss://localhost:{port}/api/v1/cameras/gate/live"))
                .header("Host", format!("localhost:{port}"))
                .header("Cookie", format!("__Host-candor_session={cookie}"))
                .header("Connection", "Upgrade")
                .header("Upgrade", "websocket")
                .header("Sec-WebSocket-Version", "13")
                .header(
                    "Sec-WebSocket-Key",
                    tokio_tungstenite::tungstenite::handshake::client::generate_key(),
                )
                .body(())
                .unwrap();
            tokio_tungstenite::client_async(req, s).await.unwrap().0
        };
        // An oversized message ends the socket.
        let mut ws = connect().await;
        let _ = ws
            .send(tokio_tungstenite::tungstenite::Message::text(
                "x".repeat(64 * 1024),
            ))
            .await;
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(m)) = ws.next().await {
                if m.is_close() {
                    break;
                }
            }
        })
        .await;
        assert!(
            ended.is_ok(),
            "a 64 KiB message did not end the live socket"
        );
        let mut ws = connect().await;
        let mut frames = 0;
        while frames < 20 {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(m))) if m.is_binary() => frames += 1,
                Ok(Some(Ok(_))) => {}
                other => panic!("live view ended early: {other:?}"),
            }
        }
        let (code, _, v) = admin.api("DELETE", "users/v", None);
        assert_eq!(code, 204, "{v}");
        let deleted = Instant::now();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(m))) if !m.is_close() => continue,
                _ => break,
            }
        }
        (frames, deleted.elapsed(), deleted)
    });
    eprintln!(
        "live view ended {ended_after:?} after the viewer was deleted ({frames_before} frames before)"
    );
    assert!(
        ended_after < Duration::from_secs(5),
        "live view went on for {ended_after:?}"
    );
    let _ = sse.wait();
    let sse_after = deleted_at.elapsed();
    eprintln!("event feed ended {sse_after:?} after the viewer was deleted");
    assert!(
        sse_start.elapsed() < Duration::from_secs(29),
        "the event feed ran until curl's limit"
    );
    assert!(
        sse_after < Duration::from_secs(6),
        "event feed went on for {sse_after:?}"
    );
}

/// A stolen session cannot replace the second factor without a current
/// code, nor change its own password without the current one.
#[test]
fn a_stolen_session_cannot_take_the_account_over() {
    let t = target(&["gate"], "");
    let admin = t.login("root", "root password 1");
    let (code, _, v) = admin.api("POST", "me/totp", None);
    assert_eq!(code, 200, "{v}");
    let secret = v["secret"].as_str().unwrap().replace(' ', "");
    let code_now = oathtool(&secret);
    let (code, _, v) = admin.api(
        "POST",
        "me/totp/confirm",
        Some(&format!(r#"{{"code":"{code_now}"}}"#)),
    );
    assert_eq!(code, 200, "{v}");
    // The thief (this same session) tries to move 2FA to their phone.
    let (code, _, v) = admin.api("POST", "me/totp", None);
    assert_eq!(
        (code, v["code"].as_str()),
        (403, Some("code_required")),
        "{v}"
    );
    let (code, _, v) = admin.api("POST", "me/totp", Some(r#"{"code":"000000"}"#));
    assert_eq!((code, v["code"].as_str()), (400, Some("bad_code")), "{v}");
    let (code, _, v) = admin.api("DELETE", "me/totp", Some(r#"{"code":"000000"}"#));
    assert_eq!((code, v["code"].as_str()), (400, Some("bad_code")), "{v}");
    // ... or to change the password without knowing it, by either route.
    let (code, _, v) = admin.api(
        "PATCH",
        "users/root",
        Some(r#"{"password":"thief password 1"}"#),
    );
    assert_eq!(
        (code, v["code"].as_str()),
        (403, Some("current_password_required")),
        "{v}"
    );
    let (code, _, v) = admin.api(
        "POST",
        "me/password",
        Some(r#"{"current":"not the password","new":"thief password 1"}"#),
    );
    assert_eq!(
        (code, v["code"].as_str()),
        (403, Some("bad_credentials")),
        "{v}"
    );
    // The owner's password still works (and asks for the code).
    let (code, _) = t.raw(
        "POST",
        "api/v1/login",
        &[],
        Some(r#"{"username":"root","password":"root password 1"}"#),
        Some("127.0.0.4"),
    );
    assert_eq!(code, 401, "totp_required expected");
}

fn oathtool(secret: &str) -> String {
    let o = Command::new("oathtool")
        .args(["--totp", "-b", secret])
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_owned()
}

/// Exports: a range beyond a day and spans beyond 31 days are refused with
/// a reason (the per-user cap on concurrent exports is a unit test in
/// `candor-web::footage`: on loopback a whole test export fits in the
/// socket buffers, so no client can hold one open long enough here).
#[test]
fn export_ranges_and_concurrency_are_bounded() {
    let t = target(&["gate"], "");
    let admin = t.login("root", "root password 1");
    wait_for("footage", Duration::from_secs(30), || {
        recorded_secs(&t.cfg, "gate") > 4.0
    });
    let (code, _, v) = admin.api(
        "GET",
        "cameras/gate/export.mp4?from=1970-01-01T00:00:00Z&to=2100-01-01T00:00:00Z",
        None,
    );
    assert_eq!(
        (code, v["code"].as_str()),
        (400, Some("range_too_long")),
        "{v}"
    );
    let (code, _, v) = admin.api(
        "GET",
        "cameras/gate/spans?from=1970-01-01T00:00:00Z&to=2100-01-01T00:00:00Z",
        None,
    );
    assert_eq!(
        (code, v["code"].as_str()),
        (400, Some("range_too_long")),
        "{v}"
    );
    // Within the limits, the same footage is served.
    let sp = spans(&t.cfg, "gate");
    let (from, to) = (
        sp[0].start.to_string(),
        (sp[0].start + secs(2.0)).to_string(),
    );
    let (code, _, _) = admin.api(
        "GET",
        &format!("cameras/gate/export.mp4?from={from}&to={to}"),
        None,
    );
    assert_eq!(code, 200);
}

/// Adding a camera cannot aim the recorder at itself, at a cloud metadata
/// service, at a host name that resolves there, or send the camera's
/// password to a host other than the camera's.
#[test]
fn cameras_must_be_on_the_local_network_and_on_the_device_host() {
    let t = target(&["gate"], "");
    let admin = t.login("root", "root password 1");
    for (url, onvif, want) in [
        ("rtsp://169.254.169.254/latest", None, "not_local"),
        ("rtsp://127.0.0.1:6379/", None, "not_local"),
        ("rtsp://localhost:5432/", None, "not_local"),
        ("rtsp://8.8.8.8/stream", None, "not_local"),
        (
            "rtsp://10.9.9.9/stream",
            Some("http://10.9.9.8/onvif/device_service"),
            "other_host",
        ),
    ] {
        let body = serde_json::json!({
            "name": "new", "url": url, "username": "admin", "password": "secret", "onvif": onvif,
        });
        let (code, _, v) = admin.api("POST", "cameras", Some(&body.to_string()));
        assert_eq!((code, v["code"].as_str()), (400, Some(want)), "{url}: {v}");
    }
    let (code, _, v) = admin.api(
        "POST",
        "discover/describe",
        Some(r#"{"xaddr":"http://169.254.169.254/onvif/device_service","username":"a","password":"b"}"#),
    );
    assert_eq!((code, v["code"].as_str()), (400, Some("not_local")), "{v}");
    // Nothing was written.
    let saved = candor_recorder::Config::load(&t.cfg).unwrap();
    assert_eq!(saved.cameras.len(), 1);
}

/// What holds secrets or footage is private: candor.toml (0600 as the demo
/// writes it and after a web edit), the index, the accounts, segments and
/// the TLS key (0600), their directories (0700). A config others can read
/// is reported at start.
#[test]
fn secrets_and_footage_are_private_on_disk() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let o = Command::new(bin())
        .args([
            "demo",
            "--port",
            "0",
            "--cameras",
            "1",
            "--seconds",
            "6",
            "--data",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "data directory");
    for f in ["candor.toml", "index.db", "accounts.db", "tls/key.pem"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    let segs = data.join("segments");
    assert_eq!(mode(&segs), 0o700);
    let mut files = 0;
    for cam in std::fs::read_dir(&segs).unwrap() {
        let cam = cam.unwrap().path();
        assert_eq!(mode(&cam), 0o700, "{}", cam.display());
        for f in std::fs::read_dir(&cam).unwrap() {
            assert_eq!(mode(&f.unwrap().path()), 0o600);
            files += 1;
        }
    }
    assert!(files > 0, "no segment written");
    // A config readable by others is named at start.
    let cfg = data.join("candor.toml");
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (mut child, log) = spawn_candor("run", &cfg, "info");
    wait_for("the warning", Duration::from_secs(10), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("readable by other users"))
    });
    let _ = child.kill();
    let _ = child.wait();
}

/// Least privilege: users made by the CLI or the API without a camera list
/// see no camera (the README's promise), until an admin grants some.
#[test]
fn new_users_see_no_camera_until_granted() {
    let t = target(&["gate"], "");
    let o = {
        use std::io::Write;
        let mut c = Command::new(bin())
            .args(["user", "add", "cli", "--role", "viewer", "-c"])
            .arg(&t.cfg)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin
            .take()
            .unwrap()
            .write_all(b"cli password 1\n")
            .unwrap();
        c.wait().unwrap()
    };
    assert!(o.success());
    let admin = t.login("root", "root password 1");
    let (code, _, v) = admin.api(
        "POST",
        "users",
        Some(r#"{"name":"api","password":"api password 1","role":"operator"}"#),
    );
    assert_eq!(code, 201, "{v}");
    for user in ["cli", "api"] {
        let w = t.login(user, &format!("{user} password 1"));
        let (_, _, v) = w.api("GET", "cameras", None);
        assert_eq!(v["cameras"], serde_json::json!([]), "{user}: {v}");
        let (code, _, _) = w.api("GET", "cameras/gate/spans", None);
        assert_eq!(code, 404, "{user}");
    }
    let (code, _, _) = admin.api("PATCH", "users/cli", Some(r#"{"cameras":["gate"]}"#));
    assert_eq!(code, 204);
    let w = t.login("cli", "cli password 1");
    let (_, _, v) = w.api("GET", "cameras", None);
    assert_eq!(v["cameras"][0]["name"], "gate", "{v}");
}

/// The cloud holds the same line for its app connections: past the
/// per-address cap they are closed at once, idle ones after the idle
/// timeout, a slowloris client after the header timeout.
#[test]
fn the_cloud_closes_idle_slow_and_excess_app_connections() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = cloud::CloudProc::start(
        dir.path(),
        None,
        "idle_timeout_secs = 3\nmax_app_connections_per_address = 16",
    );
    let port: u16 = cloud
        .base
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let tls = tls_client(&cloud.cert);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (held, idle_closed, slow) = rt.block_on(connection_attack(&tls, port, "/api/health"));
    eprintln!(
        "cloud: held {held} of 40; idle closed {idle_closed}; slowloris closed after {slow:?}"
    );
    assert!(held <= 16, "held {held} app connections from one address");
    assert_eq!(idle_closed, held);
    assert!(
        slow.is_some_and(|d| d < Duration::from_secs(15)),
        "slowloris: {slow:?}"
    );
}
