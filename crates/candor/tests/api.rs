//! The HTTP API against a running recorder, with independent clients: curl
//! for HTTP, oathtool (an independent RFC 6238 implementation) as the
//! user's authenticator app, ffprobe for the bytes of partial downloads.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

struct Api {
    base: String,
    cert: std::path::PathBuf,
}

impl Api {
    fn url(&self, p: &str) -> String {
        format!("{}api/v1/{p}", self.base)
    }
    fn call(
        &self,
        jar: &Path,
        method: &str,
        p: &str,
        body: Option<&str>,
        extra: &[&str],
    ) -> (u16, String, serde_json::Value) {
        curl(&self.cert, jar, method, &self.url(p), body, extra)
    }
    /// Logs in; returns the CSRF header to send on state changes.
    fn login(
        &self,
        jar: &Path,
        user: &str,
        pw: &str,
        totp: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let body = match totp {
            Some(c) => format!(r#"{{"username":"{user}","password":"{pw}","totp":"{c}"}}"#),
            None => format!(r#"{{"username":"{user}","password":"{pw}"}}"#),
        };
        let (code, _, v) = self.call(jar, "POST", "login", Some(&body), &[]);
        (code, v)
    }
}

fn setup(
    cams: &[&str],
) -> (
    tempfile::TempDir,
    Sim,
    std::path::PathBuf,
    RecorderProc,
    Api,
) {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(H264_CLIP, cams.len().max(1));
    let list: Vec<_> = cams
        .iter()
        .enumerate()
        .map(|(i, c)| (*c, sim.url(i), ""))
        .collect();
    let cfg = write_config(dir.path(), "", &list);
    assert!(
        user_add(&cfg, "root", "admin", "root password 1")
            .status
            .success()
    );
    let rec = start_recorder(&cfg);
    let api = Api {
        base: web_url(&rec),
        cert: dir.path().join("data/tls/cert.pem"),
    };
    (dir, sim, cfg, rec, api)
}

fn oathtool(secret: &str) -> String {
    let o = Command::new("oathtool")
        .args(["--totp", "-b", secret])
        .output()
        .expect("oathtool is needed: apt-get install oathtool");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn totp_second_factor_works_with_an_independent_authenticator() {
    let (dir, _sim, _cfg, rec, api) = setup(&[]);
    let jar = dir.path().join("jar");
    let (code, v) = api.login(&jar, "root", "root password 1", None);
    assert_eq!(code, 200);
    let csrf = format!("X-CSRF-Token: {}", v["csrf_token"].as_str().unwrap());
    let (code, _, v) = api.call(&jar, "POST", "me/totp", Some("{}"), &[&csrf]);
    assert_eq!(code, 200, "{v}");
    let secret = v["secret"].as_str().unwrap().to_string();
    assert!(
        v["uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Candor:root?secret=")
    );
    let (code, _, v) = api.call(
        &jar,
        "POST",
        "me/totp/confirm",
        Some(r#"{"code":"000000"}"#),
        &[&csrf],
    );
    assert_eq!(
        (code, v["code"].as_str()),
        (400, Some("bad_code")),
        "a wrong code does not enable TOTP"
    );
    let body = format!(r#"{{"code":"{}"}}"#, oathtool(&secret));
    let (code, _, v) = api.call(&jar, "POST", "me/totp/confirm", Some(&body), &[&csrf]);
    assert_eq!(code, 200, "{v}");
    let recovery: Vec<String> = v["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(recovery.len(), 10);

    let jar2 = dir.path().join("jar2");
    let (code, v) = api.login(&jar2, "root", "root password 1", None);
    assert_eq!((code, v["code"].as_str()), (401, Some("totp_required")));
    let (code, v) = api.login(&jar2, "root", "root password 1", Some("123456"));
    assert_eq!((code, v["code"].as_str()), (401, Some("bad_totp")));
    // The code that confirmed enrolment is spent for its time step; wait for the next.
    wait_for("the next TOTP step", Duration::from_secs(35), || {
        oathtool(&secret) != serde_json::from_str::<serde_json::Value>(&body).unwrap()["code"]
    });
    let code_now = oathtool(&secret);
    let (code, _) = api.login(&jar2, "root", "root password 1", Some(&code_now));
    assert_eq!(code, 200, "the authenticator's current code logs in");
    let (code, v) = api.login(&jar2, "root", "root password 1", Some(&code_now));
    assert_eq!(
        (code, v["code"].as_str()),
        (401, Some("bad_totp")),
        "a code works once"
    );
    let (code, _) = api.login(&jar2, "root", "root password 1", Some(&recovery[3]));
    assert_eq!(code, 200, "a recovery code logs in");
    let (code, _) = api.login(&jar2, "root", "root password 1", Some(&recovery[3]));
    assert_eq!(code, 401, "once");
    // Guessing the code to turn TOTP off from a (stolen) session is rate-limited.
    let (_, v) = api.login(&jar2, "root", "root password 1", Some(&recovery[4]));
    let csrf2 = format!("X-CSRF-Token: {}", v["csrf_token"].as_str().unwrap());
    let mut last = 0;
    for _ in 0..6 {
        let (code, _, _) = api.call(
            &jar2,
            "DELETE",
            "me/totp",
            Some(r#"{"code":"000000"}"#),
            &[&csrf2],
        );
        last = code;
    }
    assert_eq!(last, 429, "wrong codes lock out");
    // The lock covers every secret guessed from inside a session (the
    // current password too), counted per user apart from sign-in, so
    // strangers failing to sign in cannot block the owner's own changes.
    let (code, _, v) = api.call(
        &jar2,
        "POST",
        "me/password",
        Some(r#"{"current":"root password 1","new":"another password 1"}"#),
        &[&csrf2],
    );
    assert_eq!(
        code, 429,
        "the in-session lockout covers the password too: {v}"
    );
    let log = rec.stop();
    assert!(
        !log.contains(&secret) && !log.contains(&recovery[0]),
        "secrets are never logged"
    );
}

#[test]
fn tokens_and_camera_scopes_bound_what_a_caller_sees() {
    let (dir, _sim, cfg, rec, api) = setup(&["gate", "yard"]);
    wait_for("footage", Duration::from_secs(30), || {
        recorded_secs(&cfg, "yard") >= 3.0
    });
    let jar = dir.path().join("jar");
    let (_, v) = api.login(&jar, "root", "root password 1", None);
    let csrf = format!("X-CSRF-Token: {}", v["csrf_token"].as_str().unwrap());
    let (code, _, v) = api.call(
        &jar, "POST", "users",
        Some(r#"{"name":"guard","password":"guard password 1","role":"operator","cameras":["gate"]}"#),
        &[&csrf],
    );
    assert_eq!(code, 201, "{v}");

    let gjar = dir.path().join("gjar");
    let (_, v) = api.login(&gjar, "guard", "guard password 1", None);
    let gcsrf = format!("X-CSRF-Token: {}", v["csrf_token"].as_str().unwrap());
    let (_, _, v) = api.call(&gjar, "GET", "cameras", None, &[]);
    let names: Vec<_> = v["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gate"]);
    for p in [
        "cameras/yard/spans",
        "cameras/yard/export.mp4?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z",
        "cameras/yard/live",
    ] {
        let (code, _, v) = api.call(&gjar, "GET", p, None, &[]);
        assert_eq!(
            (code, v["code"].as_str()),
            (404, Some("no_camera")),
            "{p}: out of scope looks absent"
        );
    }
    let (code, _, _) = api.call(&gjar, "GET", "users", None, &[]);
    assert_eq!(code, 403, "operators do not manage users");

    // A token may not outrank its user, and acts with the user's scope.
    let (code, _, v) = api.call(
        &gjar,
        "POST",
        "tokens",
        Some(r#"{"name":"x","role":"admin"}"#),
        &[&gcsrf],
    );
    assert_eq!((code, v["code"].as_str()), (403, Some("forbidden")));
    let (code, _, v) = api.call(
        &gjar,
        "POST",
        "tokens",
        Some(r#"{"name":"prometheus","role":"operator"}"#),
        &[&gcsrf],
    );
    assert_eq!(code, 201, "{v}");
    let (id, token) = (
        v["id"].as_i64().unwrap(),
        v["token"].as_str().unwrap().to_string(),
    );
    let bearer = format!("Authorization: Bearer {token}");
    let none = dir.path().join("empty-jar");
    let (code, _, v) = api.call(&none, "GET", "cameras", None, &[&bearer]);
    assert_eq!(code, 200);
    assert_eq!(v["cameras"].as_array().unwrap().len(), 1);
    // Tokens need no CSRF header (they are not ambient credentials) but keep their role.
    let (code, _, _) = api.call(
        &none,
        "POST",
        "users",
        Some(r#"{"name":"x","password":"xxxxxxxxxxxx","role":"admin"}"#),
        &[&bearer],
    );
    assert_eq!(code, 403);
    let o = Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(&api.cert)
        .args(["-H", &bearer])
        .arg(format!("{}metrics", api.base))
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&o.stdout);
    assert!(
        metrics.contains("candor_camera_up{camera=\"gate\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("candor_live_frame_latency_seconds_bucket"));
    // The token's hash is all the recorder keeps, and revoking it is immediate.
    let (code, _, _) = api.call(&gjar, "DELETE", &format!("tokens/{id}"), None, &[&gcsrf]);
    assert_eq!(code, 204);
    let (code, _, v) = api.call(&none, "GET", "cameras", None, &[&bearer]);
    assert_eq!((code, v["code"].as_str()), (401, Some("bad_token")));

    // Revoking the guard's session from the admin's side logs the guard out.
    let (_, _, v) = api.call(&jar, "GET", "sessions", None, &[]);
    let sid = v["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["user"] == "guard")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (code, _, _) = api.call(&jar, "DELETE", &format!("sessions/{sid}"), None, &[&csrf]);
    assert_eq!(code, 204);
    let (code, _, _) = api.call(&gjar, "GET", "cameras", None, &[]);
    assert_eq!(code, 401);

    // The audit log has it all, and exports as CSV.
    let o = Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(&api.cert)
        .arg("-b")
        .arg(&jar)
        .arg(api.url("audit?format=csv"))
        .output()
        .unwrap();
    let csv = String::from_utf8_lossy(&o.stdout);
    assert!(csv.starts_with("time,user,action,detail\r\n"), "{csv}");
    for action in [
        "user_created",
        "token_created",
        "token_revoked",
        "session_revoked",
        "login",
    ] {
        assert!(
            csv.contains(&format!(",{action},")),
            "{action} missing from\n{csv}"
        );
    }
    let (_, _, v) = api.call(&jar, "GET", "audit?action=token*", None, &[]);
    assert_eq!(v["entries"].as_array().unwrap().len(), 2, "{v}");
    let (_, _, v) = api.call(&jar, "GET", "openapi.json", None, &[]);
    assert_eq!(v["openapi"], "3.1.0");
    assert!(v["paths"]["/api/v1/cameras/{name}/export.mp4"]["get"].is_object());
    rec.stop();
}

#[test]
fn export_serves_ranges_and_etags_so_players_can_seek() {
    let (dir, _sim, cfg, rec, api) = setup(&["gate"]);
    // The range must lie in closed segments: an open segment's frames are
    // placed 1:1 in wall time and shift by up to 500 ppm when it closes, so
    // a file ending inside one can change between requests (its ETag
    // changes with it). 2 s segments: at 9 s the one holding s+5 is closed.
    wait_for("footage", Duration::from_secs(30), || {
        recorded_secs(&cfg, "gate") >= 9.0
    });
    let s = spans(&cfg, "gate")[0].start;
    let jar = dir.path().join("jar");
    api.login(&jar, "root", "root password 1", None);
    let url = api.url(&format!(
        "cameras/gate/export.mp4?from={}&to={}",
        s + secs(1.0),
        s + secs(5.0)
    ));
    let get = |extra: &[&str], out: &Path| -> (u16, String) {
        let mut c = Command::new("curl");
        c.args(["-sS", "-D", "-", "-o"])
            .arg(out)
            .args(["-w", "%{http_code}", "--cacert"])
            .arg(&api.cert)
            .arg("-b")
            .arg(&jar);
        for h in extra {
            c.args(["-H", h]);
        }
        let o = c.arg(&url).output().unwrap();
        let t = String::from_utf8_lossy(&o.stdout).to_string();
        let code = t[t.len() - 3..].parse().unwrap();
        (code, t.to_ascii_lowercase())
    };
    let header = |h: &str, name: &str| {
        h.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .map(|v| v.trim().to_string())
    };
    // The spans API says where footage stops changing; the range below ends before it.
    let (_, _, v) = api.call(&jar, "GET", "cameras/gate/spans", None, &[]);
    let settled = candor_media::Time90k::parse_rfc3339(v["settled_end"].as_str().unwrap()).unwrap();
    let last =
        candor_media::Time90k::parse_rfc3339(v["spans"][0]["end"].as_str().unwrap()).unwrap();
    assert!(
        settled <= last && settled >= s + secs(5.0),
        "settled {settled}, last {last}"
    );
    let full = dir.path().join("full.mp4");
    let (code, h) = get(&[], &full);
    assert_eq!(code, 200);
    assert_eq!(header(&h, "accept-ranges").as_deref(), Some("bytes"));
    let etag = header(&h, "etag").unwrap();
    let whole = std::fs::read(&full).unwrap();
    assert!(ffprobe(&full).duration > 3.8);

    let part = dir.path().join("part.bin");
    let (code, h) = get(&["Range: bytes=1000-40999"], &part);
    assert_eq!(code, 206);
    assert_eq!(
        header(&h, "content-range"),
        Some(format!("bytes 1000-40999/{}", whole.len()))
    );
    assert_eq!(
        std::fs::read(&part).unwrap(),
        whole[1000..41000],
        "the range is those bytes of the file"
    );
    let (code, _) = get(&[&format!("Range: bytes=-{}", whole.len() - 5)], &part);
    assert_eq!(code, 206);
    assert_eq!(std::fs::read(&part).unwrap(), whole[5..]);
    let (code, h) = get(&[&format!("Range: bytes={}-", whole.len())], &part);
    assert_eq!(
        (code, header(&h, "content-range")),
        (416, Some(format!("bytes */{}", whole.len())))
    );
    let (code, _) = get(&[&format!("If-None-Match: {etag}")], &part);
    assert_eq!(code, 304, "unchanged footage revalidates");
    let (code, _) = get(&["If-Range: \"stale\"", "Range: bytes=0-9"], &part);
    assert_eq!(code, 200, "a stale If-Range gets the whole file");
    // A seek pattern as a player makes it: the pieces reassemble the file.
    let mut joined = Vec::new();
    let n = whole.len();
    for (a, b) in [(0, n / 3), (n / 3, 2 * n / 3), (2 * n / 3, n)] {
        get(&[&format!("Range: bytes={a}-{}", b - 1)], &part);
        joined.extend(std::fs::read(&part).unwrap());
    }
    assert!(joined == whole);
    rec.stop();
}

#[test]
fn users_change_their_own_password_and_other_sessions_end() {
    let (dir, _sim, _cfg, rec, api) = setup(&[]);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let (_, v) = api.login(&a, "root", "root password 1", None);
    let csrf = format!("X-CSRF-Token: {}", v["csrf_token"].as_str().unwrap());
    api.login(&b, "root", "root password 1", None);
    let change = |body: &str| api.call(&a, "POST", "me/password", Some(body), &[&csrf]);
    let (code, _, v) = change(r#"{"current":"wrong password!","new":"new root password"}"#);
    assert_eq!((code, v["code"].as_str()), (403, Some("bad_credentials")));
    let (code, _, v) = change(r#"{"current":"root password 1","new":"short"}"#);
    assert_eq!((code, v["code"].as_str()), (400, Some("invalid")));
    let (code, _, v) = change(r#"{"current":"root password 1","new":"new root password"}"#);
    assert_eq!(code, 200, "{v}");
    let (code, _, _) = api.call(&a, "GET", "me", None, &[]);
    assert_eq!(code, 200, "this browser got a fresh session");
    let (code, _, _) = api.call(&b, "GET", "me", None, &[]);
    assert_eq!(code, 401, "the other session ended");
    assert_eq!(api.login(&b, "root", "root password 1", None).0, 401);
    assert_eq!(api.login(&b, "root", "new root password", None).0, 200);
    let log = rec.stop();
    assert!(!log.contains("new root password"));
}
