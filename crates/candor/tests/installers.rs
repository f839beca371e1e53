//! Technicians' access, against the real binary (docs/design/installers.md):
//! the owner grants a scope for a time; the technician enrols with the
//! one-time code (their own password and TOTP), works within the scope and
//! nothing else, every change is theirs in the history and the audit log,
//! and a revocation ends their sessions and streams at once.

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

fn base32_decode(s: &str) -> Vec<u8> {
    let (mut out, mut buf, mut bits) = (Vec::new(), 0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {s}"),
        };
        buf = (buf << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    out
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Posts without a session (the enrolment routes are public).
fn post_public(w: &Web, path: &str, body: &str) -> (u16, serde_json::Value) {
    let jar = w.jar.with_extension("anon");
    let (code, _, v) = curl(
        &w.cert,
        &jar,
        "POST",
        &format!("{}api/v1/{path}", w.base),
        Some(body),
        &[],
    );
    (code, v)
}

/// Logs in with a password and a second factor.
fn login_2fa(
    rec: &RecorderProc,
    dir: &std::path::Path,
    user: &str,
    pw: &str,
    code: &str,
) -> Result<Web, (u16, serde_json::Value)> {
    let base = web_url(rec);
    let cert = dir.join("data/tls/cert.pem");
    let jar = dir.join(format!("jar-{user}-{}", unix_now()));
    let _ = std::fs::remove_file(&jar);
    let body = serde_json::json!({ "username": user, "password": pw, "totp": code }).to_string();
    let (status, _, v) = curl(
        &cert,
        &jar,
        "POST",
        &format!("{base}api/v1/login"),
        Some(&body),
        &[],
    );
    if status != 200 {
        return Err((status, v));
    }
    Ok(Web {
        base,
        cert,
        jar,
        csrf: v["csrf_token"].as_str().unwrap_or_default().to_owned(),
    })
}

fn session_cookie(jar: &std::path::Path) -> String {
    std::fs::read_to_string(jar)
        .unwrap()
        .lines()
        .find(|l| l.contains("candor_session"))
        .and_then(|l| l.split('\t').nth(6))
        .unwrap()
        .to_owned()
}

fn t_version(w: &Web) -> i64 {
    let (_, _, t) = w.api("GET", "config/text", None);
    t["version"].as_i64().unwrap()
}

fn audit_actions(w: &Web, user: &str) -> Vec<(String, String)> {
    let (code, _, a) = w.api("GET", &format!("audit?user={user}"), None);
    assert_eq!(code, 200, "{a}");
    a["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_technician_works_within_the_grant_and_is_out_at_once_when_it_is_revoked() {
    let sim = Sim::start(H264_CLIP, 3);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "",
        &[
            (
                "gate",
                sim.url(0).replace("rtsp://", "rtsp://admin:Gate-Secret-1@"),
                "[cameras.motion]\nenabled = true\n",
            ),
            ("yard", sim.url(1), ""),
        ],
    );
    allow_loopback_cameras(&cfg);
    assert!(
        user_add(&cfg, "owner", "admin", "owner-password-1")
            .status
            .success()
    );
    let rec = start_recorder(&cfg);
    let owner = Web::login(&rec, dir.path(), "owner", "owner-password-1");

    // The owner grants one hour of configuration access.
    let grant = serde_json::json!({
        "technician": "bob@acme-security", "org": "ACME Security",
        "scopes": { "config": true }, "cameras": null, "hours": 1,
        "reason": "tune motion on the gate, add the porch camera",
    });
    let (code, _, g) = owner.api("POST", "grants", Some(&grant.to_string()));
    assert_eq!(code, 201, "{g}");
    let enroll = g["enroll_code"].as_str().unwrap().to_owned();
    let grant_id = g["grant"]["id"].as_i64().unwrap();
    // Hours outside the menu, or an empty scope, are refused.
    for bad in [
        serde_json::json!({"technician":"x@y","org":"Y","scopes":{"config":true},"cameras":null,"hours":3,"reason":""}),
        serde_json::json!({"technician":"x@y","org":"Y","scopes":{},"cameras":null,"hours":1,"reason":""}),
        serde_json::json!({"technician":"owner","org":"Y","scopes":{"config":true},"cameras":null,"hours":1,"reason":""}),
    ] {
        let (code, _, v) = owner.api("POST", "grants", Some(&bad.to_string()));
        assert!(code == 400 || code == 409, "{bad} → {code} {v}");
    }

    // Before enrolment the technician cannot sign in; a wrong code gets nothing.
    assert!(
        login_2fa(
            &rec,
            dir.path(),
            "bob@acme-security",
            "anything-at-all",
            "000000"
        )
        .is_err()
    );
    let (code, _) = post_public(&owner, "enroll", r#"{"code":"not-the-code"}"#);
    assert_eq!(code, 403);
    let (code, e) = post_public(
        &owner,
        "enroll",
        &serde_json::json!({ "code": enroll }).to_string(),
    );
    assert_eq!(code, 200, "{e}");
    assert_eq!(e["technician"], "bob@acme-security");
    let secret = base32_decode(e["secret"].as_str().unwrap());
    let totp = candor_auth::totp::code_at(&secret, unix_now() / 30);
    let finish =
        serde_json::json!({ "code": enroll, "password": "short", "totp": format!("{totp:06}") });
    let (code, _) = post_public(&owner, "enroll/finish", &finish.to_string());
    assert_eq!(
        code, 400,
        "a technician's password is at least 12 characters"
    );
    let pw = "bob-technician-pass";
    let finish =
        serde_json::json!({ "code": enroll, "password": pw, "totp": format!("{totp:06}") });
    let (code, f) = post_public(&owner, "enroll/finish", &finish.to_string());
    assert_eq!(code, 200, "{f}");
    let recovery: Vec<String> = f["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let (code, _) = post_public(&owner, "enroll/finish", &finish.to_string());
    assert_eq!(code, 403, "the enrolment code works once");
    // A password alone is not enough.
    let base = web_url(&rec);
    let (code, _, v) = curl(
        &owner.cert,
        &dir.path().join("jar-nocode"),
        "POST",
        &format!("{base}api/v1/login"),
        Some(&serde_json::json!({"username":"bob@acme-security","password":pw}).to_string()),
        &[],
    );
    assert_eq!((code, v["code"].as_str()), (401, Some("totp_required")));
    let bob = login_2fa(&rec, dir.path(), "bob@acme-security", pw, &recovery[0]).unwrap();

    // Within the grant: configuration, no video, nothing of the owner's.
    let (code, _, cams) = bob.api("GET", "cameras", None);
    assert_eq!(code, 200);
    assert_eq!(
        cams["cameras"].as_array().unwrap().len(),
        0,
        "video is off unless granted"
    );
    let (code, _, m) = bob.api("GET", "cameras/gate/motion", None);
    assert_eq!(code, 200, "{m}");
    for (m, p, b) in [
        ("GET", "cameras/gate/snapshot.jpg", None),
        ("GET", "cameras/gate/spans", None),
        ("GET", "events", None),
        ("GET", "system", None),
        ("GET", "users", None),
        ("POST", "tokens", Some(r#"{"name":"t","role":"admin"}"#)),
        ("GET", "audit", None),
        ("GET", "grants", None),
        ("POST", "grants", Some(&grant.to_string())),
        ("PUT", "cloud/remote", Some(r#"{"enabled":true}"#)),
        ("POST", "shares", Some(r#"{}"#)),
        ("POST", "me/totp", Some("{}")),
        ("POST", "me/password", Some(r#"{}"#)),
        ("GET", "system/update", None),
        ("POST", "system/update", Some(r#"{"version":"9.9.9"}"#)),
        ("DELETE", "system/update", None),
    ] {
        let (code, _, v) = bob.api(m, p, b);
        assert_eq!(code, 403, "{m} {p}: {v}");
    }
    let mut m2 = m.clone();
    m2["sensitivity"] = 85.into();
    let (code, _, r) = bob.api("PUT", "cameras/gate/motion", Some(&m2.to_string()));
    assert_eq!(code, 200, "{r}");
    let add = serde_json::json!({ "name": "porch", "url": sim.url(2) }).to_string();
    let (code, _, r) = bob.api("POST", "cameras", Some(&add));
    assert_eq!(code, 201, "{r}");

    // The text editor gives a technician no more than the forms: cameras
    // only, no secret moved where it shows or goes elsewhere, no camera
    // off the local network, no confirming.
    let (code, _, t) = bob.api("GET", "config/text", None);
    assert_eq!(code, 200);
    let text = t["text"].as_str().unwrap().to_owned();
    assert!(
        !text.contains("Gate-Secret-1"),
        "redacted for technicians too"
    );
    let mark = text
        .split("rtsp://admin:")
        .nth(1)
        .and_then(|x| x.split('@').next())
        .unwrap_or_else(|| panic!("no camera password mark in {text}"))
        .to_owned();
    let put = |t: String| {
        let body = serde_json::json!({ "base": t_version(&bob), "text": t });
        bob.api("PUT", "config/text", Some(&body.to_string()))
    };
    for (why, hostile) in [
        (
            "mqtt",
            format!("{text}\n[mqtt]\nurl = \"mqtt://198.51.100.9:1883\"\n"),
        ),
        (
            "web",
            text.replace("[web]\n", "[web]\nallow_loopback_cameras = false\n"),
        ),
        (
            "mark in a name",
            text.replacen("name = \"yard\"", &format!("name = \"{mark}\""), 1),
        ),
        (
            "mark to another host",
            text.replacen(
                &format!("{mark}@127.0.0.1"),
                &format!("{mark}@198.51.100.9"),
                1,
            ),
        ),
        (
            "camera off the LAN",
            format!("{text}\n[[cameras]]\nname = \"meta\"\nurl = \"rtsp://169.254.169.254/x\"\n"),
        ),
    ] {
        let (code, _, v) = put(hostile);
        assert_eq!(code, 400, "{why}: {v}");
        assert!(!v.to_string().contains("Gate-Secret-1"), "{why}: {v}");
    }
    let (code, _, _) = bob.api("POST", "config/confirm", None);
    assert_eq!(code, 403, "confirming is the owner's");

    // The owner sees both changes as the technician's, with diffs, and in the audit log.
    let (_, _, v) = owner.api("GET", "config/versions", None);
    let list = v["versions"].as_array().unwrap();
    for (x, note) in list[..2]
        .iter()
        .zip(["camera porch added", "motion settings of gate"])
    {
        assert_eq!(x["user"], "bob@acme-security", "{v}");
        assert_eq!(x["origin"], "technician");
        assert_eq!(x["note"], note);
    }
    let motion_version = list[1]["id"].as_i64().unwrap();
    let (_, _, d) = owner.api(
        "GET",
        &format!(
            "config/diff?from={}&to={motion_version}",
            motion_version - 1
        ),
        None,
    );
    assert!(
        d["diff"].as_str().unwrap().contains("+sensitivity = 85"),
        "{d}"
    );
    let acts = audit_actions(&owner, "bob@acme-security");
    let has = |a: &str, d: &str| acts.iter().any(|(x, y)| x == a && y.contains(d));
    assert!(has("technician_enrolled", ""), "{acts:?}");
    assert!(has("technician_access_started", "config"), "{acts:?}");
    assert!(
        has("technician_action", "PUT /api/v1/cameras/gate/motion → 200"),
        "{acts:?}"
    );
    assert!(
        has("technician_action", "POST /api/v1/cameras → 201"),
        "{acts:?}"
    );
    // The owner rolls the last change back (the camera added): it stops at
    // once, and the motion change before it stays.
    let (code, _, r) = owner.api(
        "POST",
        "config/rollback",
        Some(&format!(r#"{{"version":{motion_version}}}"#)),
    );
    assert_eq!(code, 200, "{r}");
    assert!(
        r["live"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "camera porch stopped"),
        "{r}"
    );
    let (_, _, cams) = owner.api("GET", "cameras", None);
    let names: Vec<_> = cams["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(names, ["gate", "yard"]);
    let (_, _, m3) = owner.api("GET", "cameras/gate/motion", None);
    assert_eq!(m3["sensitivity"], 85);

    // Revoked mid-session: the next request is refused.
    let (code, _, _) = owner.api("POST", &format!("grants/{grant_id}/revoke"), None);
    assert_eq!(code, 204);
    let (code, _, _) = bob.api("GET", "cameras/gate/motion", None);
    assert_eq!(code, 401, "revoked: signed out");
    assert!(
        login_2fa(&rec, dir.path(), "bob@acme-security", pw, &recovery[1]).is_err(),
        "no grant, no sign-in"
    );
    assert!(
        audit_actions(&owner, "owner")
            .iter()
            .any(|(a, _)| a == "grant_revoked")
    );

    // A new grant with playback of the gate only: no new enrolment, and a
    // revocation ends an open stream (the event feed) within 5 s.
    let grant2 = serde_json::json!({
        "technician": "bob@acme-security", "org": "ACME Security",
        "scopes": { "playback": true, "diagnostics": true }, "cameras": ["gate"], "hours": 2, "reason": "check recordings",
    });
    let (code, _, g2) = owner.api("POST", "grants", Some(&grant2.to_string()));
    assert_eq!(code, 201, "{g2}");
    assert!(g2["enroll_code"].is_null(), "enrolled already");
    let bob = login_2fa(&rec, dir.path(), "bob@acme-security", pw, &recovery[2]).unwrap();
    let (code, _, cams) = bob.api("GET", "cameras", None);
    assert_eq!(code, 200);
    let names: Vec<_> = cams["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(names, ["gate"]);
    let (code, _, _) = bob.api("GET", "cameras/yard/spans", None);
    assert_eq!(
        code, 404,
        "a camera outside the grant does not exist for them"
    );
    let (code, _, _) = bob.api("GET", "cameras/gate/motion", None);
    assert_eq!(code, 403, "no config scope now");
    let (code, _, s) = bob.api("GET", "system", None);
    assert_eq!(code, 200, "{s}");
    assert_eq!(
        s["cameras"].as_array().unwrap().len(),
        2,
        "diagnostics: every camera's health"
    );
    let cookie = session_cookie(&bob.jar);
    let mut feed = Command::new("curl")
        .args(["-sS", "-N", "-m", "30", "-o", "/dev/null", "--cacert"])
        .arg(&bob.cert)
        .args(["-H", &format!("Cookie: __Host-candor_session={cookie}")])
        .arg(format!("{}api/v1/events/live", bob.base))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert!(feed.try_wait().unwrap().is_none(), "the feed is open");
    let g2id = g2["grant"]["id"].as_i64().unwrap();
    let (code, _, _) = owner.api("POST", &format!("grants/{g2id}/revoke"), None);
    assert_eq!(code, 204);
    let revoked = Instant::now();
    feed.wait().unwrap();
    let ended = revoked.elapsed();
    eprintln!("the technician's event feed ended {ended:?} after the revocation");
    assert!(
        ended < Duration::from_secs(5),
        "the feed ran on for {ended:?}"
    );

    // The maintenance scope (software updates) alone: the update routes
    // and nothing else. This recorder has no [updates], so an install is
    // refused by the recorder itself, past the grant's check.
    let grant3 = serde_json::json!({
        "technician": "bob@acme-security", "org": "ACME Security",
        "scopes": { "maintenance": true }, "cameras": null, "hours": 1, "reason": "install 0.9",
    });
    let (code, _, g3) = owner.api("POST", "grants", Some(&grant3.to_string()));
    assert_eq!(code, 201, "{g3}");
    let bob = login_2fa(&rec, dir.path(), "bob@acme-security", pw, &recovery[3]).unwrap();
    let (code, _, u) = bob.api("GET", "system/update", None);
    assert_eq!(code, 200, "{u}");
    assert!(u["update_install"].is_null(), "{u}");
    let (code, _, v) = bob.api("POST", "system/update", Some(r#"{"version":"9.9.9"}"#));
    assert_eq!((code, v["code"].as_str()), (409, Some("no_updates")), "{v}");
    for (m, p) in [
        ("GET", "system"),
        ("GET", "cameras/gate/motion"),
        ("GET", "events"),
    ] {
        let (code, _, v) = bob.api(m, p, None);
        assert_eq!(code, 403, "{m} {p}: {v}");
    }
}

#[test]
fn remote_diagnostics_test_cameras_show_logs_and_bundle_without_secrets() {
    let sim = camsim_with_onvif(1, "Cam-Secret-77", 42);
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = write_config(
        dir.path(),
        "",
        &[
            (
                "gate",
                format!("rtsp://admin:Cam-Secret-77@{}/cam0", sim.rtsp),
                &format!("onvif = \"http://{}/onvif/cam0/device_service\"", sim.http),
            ),
            (
                "dead",
                format!("rtsp://admin:Dead-Secret-88@127.0.0.1:{closed}/x"),
                "",
            ),
        ],
    );
    assert!(
        user_add(&cfg, "owner", "admin", "owner-password-1")
            .status
            .success()
    );
    let rec = start_recorder(&cfg);
    let owner = Web::login(&rec, dir.path(), "owner", "owner-password-1");
    wait_for("dead camera retried", Duration::from_secs(20), || {
        let (_, _, d) = owner.api("GET", "diagnostics", None);
        d["cameras"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["name"] == "dead" && !c["recent_errors"].as_array().unwrap().is_empty())
        })
    });
    let (code, _, t) = owner.api("POST", "diagnostics/cameras/gate/test", None);
    assert_eq!(code, 200, "{t}");
    let steps = t["steps"].as_array().unwrap();
    let step = |n: &str| steps.iter().find(|s| s["name"] == n).unwrap().clone();
    assert_eq!(step("tcp")["ok"], true, "{t}");
    assert_eq!(step("rtsp")["ok"], true, "{t}");
    assert!(
        step("rtsp")["detail"]
            .as_str()
            .unwrap()
            .contains("video h264"),
        "{t}"
    );
    // camsim's clock runs 42 s ahead: reported, and flagged.
    assert_eq!(step("onvif")["ok"], false, "{t}");
    let d = step("onvif")["detail"].as_str().unwrap().to_owned();
    assert!(
        d.contains("+42 s") || d.contains("+41 s") || d.contains("+43 s"),
        "{d}"
    );
    let (code, _, t) = owner.api("POST", "diagnostics/cameras/dead/test", None);
    assert_eq!(code, 200, "{t}");
    assert_eq!(
        t["steps"].as_array().unwrap().len(),
        1,
        "no RTSP after TCP failed: {t}"
    );
    assert_eq!(t["steps"][0]["ok"], false);
    let (code, _, _) = owner.api("POST", "diagnostics/cameras/nope/test", None);
    assert_eq!(code, 404);

    // Logs and the bundle hold no secret.
    let (code, _, l) = owner.api("GET", "diagnostics/logs?lines=5000", None);
    assert_eq!(code, 200);
    let lines = l["lines"].as_array().unwrap();
    assert!(lines.len() <= 2000 && !lines.is_empty());
    let joined = lines
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(joined.contains("recording"), "{joined}");
    let (code, headers, bundle) = owner.api("GET", "diagnostics/bundle", None);
    assert_eq!(code, 200);
    assert!(
        headers
            .to_lowercase()
            .contains("attachment; filename=\"candor-support-")
    );
    let text = bundle.to_string();
    for secret in ["Cam-Secret-77", "Dead-Secret-88"] {
        assert!(!joined.contains(secret), "{secret} in the logs");
        assert!(!text.contains(secret), "{secret} in the bundle");
    }
    assert!(bundle["config"].as_str().unwrap().contains("<secret:"));
    assert!(!bundle["logs"].as_array().unwrap().is_empty());
    assert_eq!(bundle["health"]["cameras"].as_array().unwrap().len(), 2);

    // A technician with diagnostics only: all of it, and nothing else.
    let grant = serde_json::json!({
        "technician": "eve@acme", "org": "ACME", "scopes": { "diagnostics": true },
        "cameras": null, "hours": 1, "reason": "camera down",
    });
    let (code, _, g) = owner.api("POST", "grants", Some(&grant.to_string()));
    assert_eq!(code, 201, "{g}");
    let code_ = g["enroll_code"].as_str().unwrap();
    let (_, e) = post_public(
        &owner,
        "enroll",
        &serde_json::json!({ "code": code_ }).to_string(),
    );
    let secret = base32_decode(e["secret"].as_str().unwrap());
    let totp = format!(
        "{:06}",
        candor_auth::totp::code_at(&secret, unix_now() / 30)
    );
    let (code, f) = post_public(
        &owner,
        "enroll/finish",
        &serde_json::json!({ "code": code_, "password": "eve-technician-pw", "totp": totp })
            .to_string(),
    );
    assert_eq!(code, 200, "{f}");
    let eve = login_2fa(
        &rec,
        dir.path(),
        "eve@acme",
        "eve-technician-pw",
        f["recovery_codes"][0].as_str().unwrap(),
    )
    .unwrap();
    let (code, _, d) = eve.api("GET", "diagnostics", None);
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["cameras"].as_array().unwrap().len(), 2);
    let (code, _, _) = eve.api("POST", "diagnostics/cameras/gate/test", None);
    assert_eq!(code, 200);
    for (m, p) in [
        ("GET", "config/text"),
        ("GET", "cameras/gate/motion"),
        ("GET", "cameras/gate/spans"),
    ] {
        let (code, _, _) = eve.api(m, p, None);
        assert_eq!(code, 403, "{m} {p}");
    }
    let acts = audit_actions(&owner, "eve@acme");
    assert!(
        acts.iter()
            .any(|(a, d)| a == "camera_tested" && d.starts_with("gate")),
        "{acts:?}"
    );
}
