//! Configuration with history, against the real binary: every change is a
//! version (who, when, from where), any two diff, any version rolls back
//! and is live at once, a hand edit is noticed at start, cameras are
//! changed and removed from the API, and a `[web] listen` change that is
//! not confirmed reverts by itself (commit confirmed).

mod common;
use common::cloud::free_port;
use common::*;
use std::time::Duration;

fn versions(w: &Web) -> serde_json::Value {
    let (code, _, v) = w.api("GET", "config/versions", None);
    assert_eq!(code, 200, "{v}");
    v
}

fn sensitivity(w: &Web, cam: &str) -> i64 {
    let (code, _, m) = w.api("GET", &format!("cameras/{cam}/motion"), None);
    assert_eq!(code, 200, "{m}");
    m["sensitivity"].as_i64().unwrap()
}

fn camera_names(w: &Web) -> Vec<String> {
    let (code, _, v) = w.api("GET", "cameras", None);
    assert_eq!(code, 200, "{v}");
    v["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn changes_are_versions_that_diff_roll_back_live_and_keep_secrets_hidden() {
    let sim = Sim::start(H264_CLIP, 2);
    let dir = tempfile::tempdir().unwrap();
    // The simulator takes any credentials; the password must never show.
    let gate = sim
        .url(0)
        .replace("rtsp://", "rtsp://admin:Hunter2-secret@");
    let cfg = write_config(
        dir.path(),
        "",
        &[("gate", gate, "[cameras.motion]\nenabled = true\n")],
    );
    allow_loopback_cameras(&cfg);
    assert!(
        user_add(&cfg, "owner", "admin", "owner-password-1")
            .status
            .success()
    );
    assert!(
        user_add(&cfg, "op", "operator", "operator-password-1")
            .status
            .success()
    );
    let rec = start_recorder(&cfg);
    let w = Web::login(&rec, dir.path(), "owner", "owner-password-1");

    let v = versions(&w);
    assert_eq!(v["versions"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["versions"][0]["origin"], "file");
    assert_eq!(v["current"], 1);

    // Three changes through the API: motion, a camera added, that camera changed.
    let (code, _, m) = w.api("GET", "cameras/gate/motion", None);
    assert_eq!(code, 200);
    let default_sensitivity = m["sensitivity"].as_i64().unwrap();
    assert_ne!(default_sensitivity, 80);
    let mut m2 = m.clone();
    m2["sensitivity"] = 80.into();
    let (code, _, r) = w.api("PUT", "cameras/gate/motion", Some(&m2.to_string()));
    assert_eq!(code, 200, "{r}");
    let add = serde_json::json!({ "name": "yard", "url": sim.url(1) }).to_string();
    let (code, _, r) = w.api("POST", "cameras", Some(&add));
    assert_eq!(code, 201, "{r}");
    let edit = serde_json::json!({ "name": "yard", "url": sim.url(1), "username": "viewer", "password": "Yard-pass-9" }).to_string();
    let (code, _, r) = w.api("PUT", "cameras/yard", Some(&edit));
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["live"][0], "camera yard restarted", "{r}");
    assert!(
        r["confirm_by"].is_null(),
        "a camera change is not held: {r}"
    );
    wait_for("yard streaming", Duration::from_secs(20), || {
        let (_, _, s) = w.api("GET", "cameras", None);
        s["cameras"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "yard" && c["state"] == "streaming")
    });

    let v = versions(&w);
    let list = v["versions"].as_array().unwrap();
    assert_eq!(list.len(), 4, "{v}");
    let notes: Vec<_> = list.iter().map(|x| x["note"].as_str().unwrap()).collect();
    assert_eq!(
        notes,
        [
            "camera yard changed",
            "camera yard added",
            "motion settings of gate",
            "first version seen"
        ]
    );
    for x in &list[..3] {
        assert_eq!(x["user"], "owner");
        assert_eq!(x["origin"], "local");
        assert_eq!(x["address"], "127.0.0.1");
    }

    // Diffs show what changed, never a password.
    let (code, _, d) = w.api("GET", "config/diff?from=1&to=2", None);
    assert_eq!(code, 200, "{d}");
    let diff = d["diff"].as_str().unwrap();
    assert!(diff.contains("+sensitivity = 80"), "{diff}");
    let (_, _, d) = w.api("GET", "config/diff?from=3&to=4", None);
    let diff = d["diff"].as_str().unwrap();
    assert!(diff.contains("+url = \"rtsp://viewer:<secret:"), "{diff}");
    let (_, _, t) = w.api("GET", "config/text", None);
    for (what, text) in [("diff", diff), ("text", t["text"].as_str().unwrap())] {
        assert!(
            !text.contains("Hunter2") && !text.contains("Yard-pass"),
            "a password in the {what}: {text}"
        );
    }
    let (code, _, _) = w.api("GET", "config/diff?from=1&to=99", None);
    assert_eq!(code, 404);

    // Roll back to before the camera was added: it stops at once.
    let (code, _, r) = w.api("POST", "config/rollback", Some(r#"{"version":2}"#));
    assert_eq!(code, 200, "{r}");
    assert!(
        r["live"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "camera yard stopped"),
        "{r}"
    );
    assert_eq!(camera_names(&w), ["gate"]);
    assert_eq!(sensitivity(&w, "gate"), 80);
    // And to the first version: motion is back as it was, live.
    let (code, _, r) = w.api("POST", "config/rollback", Some(r#"{"version":1}"#));
    assert_eq!(code, 200, "{r}");
    assert_eq!(sensitivity(&w, "gate"), default_sensitivity);
    let v = versions(&w);
    assert_eq!(v["versions"][0]["note"], "rolled back to version 1");
    assert_eq!(v["current"], 6);
    let (code, _, _) = w.api("POST", "config/rollback", Some(r#"{"version":6}"#));
    assert_eq!(code, 400, "already the config");

    // The audit log says so.
    let (_, _, a) = w.api("GET", "audit?action=config*", None);
    let acts: Vec<_> = a["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        acts.iter().filter(|a| *a == "config_rolled_back").count(),
        2,
        "{a}"
    );

    // An operator (or anyone below admin) gets none of it.
    let op = Web::login(&rec, dir.path(), "op", "operator-password-1");
    for (m, p, b) in [
        ("GET", "config/versions", None),
        ("GET", "config/text", None),
        ("GET", "config/diff?from=1&to=2", None),
        ("POST", "config/rollback", Some(r#"{"version":2}"#)),
        ("PUT", "config/text", Some(r#"{"base":6,"text":""}"#)),
        ("DELETE", "cameras/gate", None),
        (
            "PUT",
            "cameras/gate",
            Some(r#"{"name":"gate","url":"rtsp://127.0.0.1/x"}"#),
        ),
    ] {
        let (code, _, _) = op.api(m, p, b);
        assert_eq!(code, 403, "{m} {p} as an operator");
    }

    // A camera removed from the web app stops; its footage stays.
    let before = recorded_secs(&cfg, "gate");
    assert!(before > 0.0);
    let (code, _, r) = w.api("DELETE", "cameras/gate", None);
    assert_eq!(code, 200, "{r}");
    assert!(camera_names(&w).is_empty());
    // (An open segment's span is estimated to now; closed, it ends at its
    // last frame: allow a second.)
    assert!(recorded_secs(&cfg, "gate") >= before - 1.0, "footage kept");
    let (code, _, _) = w.api("DELETE", "cameras/gate", None);
    assert_eq!(code, 400);

    // A hand edit while stopped is noticed at the next start.
    rec.stop();
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}\n# edited by hand\n")).unwrap();
    let rec = start_recorder(&cfg);
    let w = Web::login(&rec, dir.path(), "owner", "owner-password-1");
    let v = versions(&w);
    assert_eq!(v["versions"][0]["origin"], "file", "{v}");
    assert_eq!(v["versions"][0]["note"], "changed outside Candor (by hand)");
    use std::os::unix::fs::PermissionsExt;
    let history = dir.path().join("candor.history.db");
    assert_eq!(
        std::fs::metadata(&history).unwrap().permissions().mode() & 0o077,
        0,
        "the history holds the config's secrets"
    );
}

fn health(port: u16, cert: &std::path::Path) -> bool {
    std::process::Command::new("curl")
        .args(["-sf", "--max-time", "3", "--cacert"])
        .arg(cert)
        .arg(format!("https://127.0.0.1:{port}/api/v1/health"))
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn an_unconfirmed_listen_change_reverts_and_the_old_address_answers_again() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "", &[]);
    let (a, b) = (free_port(), free_port());
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("127.0.0.1:0", &format!("127.0.0.1:{a}"));
    std::fs::write(&cfg, text).unwrap();
    assert!(
        user_add(&cfg, "owner", "admin", "owner-password-1")
            .status
            .success()
    );
    let rec = start_recorder(&cfg);
    let mut w = Web::login(&rec, dir.path(), "owner", "owner-password-1");
    let cert = w.cert.clone();
    assert!(health(a, &cert));

    let move_to = |w: &Web, port_from: u16, port_to: u16, within: u64| {
        let (_, _, t) = w.api("GET", "config/text", None);
        let text = t["text"].as_str().unwrap().replace(
            &format!("127.0.0.1:{port_from}"),
            &format!("127.0.0.1:{port_to}"),
        );
        let body =
            serde_json::json!({ "base": t["version"], "text": text, "confirm_within": within });
        let (code, _, r) = w.api("PUT", "config/text", Some(&body.to_string()));
        assert_eq!(code, 200, "{r}");
        r
    };
    let r = move_to(&w, a, b, 3);
    assert!(r["confirm_by"].is_string(), "a [web] change is held: {r}");
    assert_eq!(
        r["live"][0],
        format!("web server listening on 127.0.0.1:{b}")
    );
    assert!(health(b, &cert), "the new address answers");
    assert!(!health(a, &cert), "the old one is closed");
    // Nobody confirms: it reverts, and the old address answers again.
    wait_for("the revert", Duration::from_secs(15), || health(a, &cert));
    assert!(!health(b, &cert));
    w.base = format!("https://127.0.0.1:{a}/");
    let v = versions(&w);
    assert_eq!(v["versions"][0]["origin"], "system", "{v}");
    assert!(v["pending"].is_null());
    let (_, _, au) = w.api("GET", "audit?action=config_reverted", None);
    assert_eq!(au["entries"].as_array().unwrap().len(), 1, "{au}");

    // Confirmed in time: it stays.
    let r = move_to(&w, a, b, 3);
    assert!(r["confirm_by"].is_string());
    w.base = format!("https://127.0.0.1:{b}/");
    let (code, _, _) = w.api("POST", "config/confirm", None);
    assert_eq!(code, 204);
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        health(b, &cert) && !health(a, &cert),
        "a confirmed change stays"
    );
    let (code, _, _) = w.api("POST", "config/confirm", None);
    assert_eq!(code, 409, "nothing waits any more");

    // Held, then the recorder dies before the deadline: the next start,
    // after it, reverts before serving.
    let r = move_to(&w, b, a, 2);
    assert!(r["confirm_by"].is_string());
    rec.kill9();
    std::thread::sleep(Duration::from_secs(3));
    let rec = start_recorder(&cfg);
    wait_for("web up", Duration::from_secs(20), || health(b, &cert));
    assert!(!health(a, &cert));
    assert!(
        rec.log_text()
            .contains("an unconfirmed change was reverted")
    );
}
