//! TLS is on by default: the recorder generates a certificate at first start,
//! prints its SHA-256 fingerprint, and serves HTTPS that curl (an independent
//! TLS client) verifies against that certificate.

mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn generated_certificate_serves_https_and_its_printed_fingerprint_matches() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "", &[]);
    let rec = start_recorder(&cfg);
    let url = web_url(&rec);
    let log = rec.log_text();
    let printed = log
        .split("fingerprint ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let cert = dir.path().join("data/tls/cert.pem");
    let key = dir.path().join("data/tls/key.pem");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o077,
        0,
        "private key must not be readable by others"
    );

    // openssl computes the fingerprint independently.
    let o = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    let openssl = String::from_utf8_lossy(&o.stdout);
    assert!(
        openssl.trim().ends_with(&printed),
        "printed {printed}, openssl says {openssl}"
    );

    // curl verifies the chain and the host name (127.0.0.1) against the certificate.
    let health = format!("{url}api/v1/health");
    let o = Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(&cert)
        .arg(&health)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["status"], "ok");

    // Plain HTTP is not served.
    let plain = health.replace("https://", "http://");
    let o = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "5"])
        .arg(&plain)
        .output()
        .unwrap();
    assert!(!o.status.success(), "plain HTTP must not work");

    // The same certificate is reused on the next start.
    let log = rec.stop();
    assert!(log.contains("(generated now)"));
    let rec = start_recorder(&cfg);
    wait_for("second start", Duration::from_secs(20), || {
        rec.log_text().contains("fingerprint")
    });
    assert!(rec.log_text().contains(&printed) && !rec.log_text().contains("(generated now)"));
    rec.stop();
}

#[test]
fn a_taken_web_port_is_reported_and_recording_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sim = Sim::start(H264_CLIP, 1);
    let cfg = write_config(dir.path(), "", &[("gate", sim.url(0), "")]);
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("127.0.0.1:0", &taken.local_addr().unwrap().to_string());
    std::fs::write(&cfg, text).unwrap();
    let rec = start_recorder(&cfg);
    wait_for("footage", Duration::from_secs(30), || {
        recorded_secs(&cfg, "gate") >= 2.0
    });
    let log = rec.stop();
    assert!(
        log.contains("web server not started") && log.contains("recording continues"),
        "{log}"
    );
}

fn curl_json(cert: &std::path::Path, url: &str, body: &str) -> (u16, serde_json::Value) {
    let o = Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
        .arg(cert)
        .args(["-H", "Content-Type: application/json", "-d", body, url])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let (json, code) = out.rsplit_once('\n').unwrap();
    (
        code.trim().parse().unwrap(),
        serde_json::from_str(json).unwrap_or_default(),
    )
}

#[test]
fn first_admin_is_created_once_with_the_printed_setup_token() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "", &[]);
    let rec = start_recorder(&cfg);
    let url = format!("{}api/v1/setup", web_url(&rec));
    wait_for("the setup token", Duration::from_secs(10), || {
        rec.log_text().contains("#setup=")
    });
    let log = rec.log_text();
    let token = log
        .split("#setup=")
        .nth(1)
        .unwrap()
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap()
        .to_string();
    assert!(token.len() >= 43, "256-bit token, got {token:?}");
    let cert = dir.path().join("data/tls/cert.pem");
    let body =
        |t: &str, pw: &str| format!(r#"{{"token":"{t}","username":"root","password":"{pw}"}}"#);

    let (code, v) = curl_json(&cert, &url, &body("not-the-token", "correct horse battery"));
    assert_eq!((code, v["code"].as_str()), (403, Some("bad_token")), "{v}");
    let (code, v) = curl_json(&cert, &url, &body(&token, "short"));
    assert_eq!((code, v["code"].as_str()), (400, Some("invalid")), "{v}");
    let (code, v) = curl_json(&cert, &url, "{not json");
    assert_eq!(
        (code, v["code"].as_str()),
        (400, Some("bad_request")),
        "{v}"
    );
    let (code, v) = curl_json(&cert, &url, &body(&token, "correct horse battery"));
    assert_eq!((code, v["role"].as_str()), (201, Some("admin")), "{v}");
    // Replaying the token, or any other, no longer works.
    let (code, v) = curl_json(&cert, &url, &body(&token, "another password!"));
    assert_eq!(
        (code, v["code"].as_str()),
        (409, Some("setup_closed")),
        "{v}"
    );
    let log = rec.stop();
    assert!(
        !log.contains("correct horse battery"),
        "passwords are never logged"
    );
    // With an admin present, no token is printed at the next start.
    let rec = start_recorder(&cfg);
    web_url(&rec);
    assert!(!rec.stop().contains("no users yet"));
}

#[test]
fn user_add_reads_the_password_from_stdin_and_closes_setup() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "", &[]);
    let add = |name: &str, pw: &str| user_add(&cfg, name, "admin", pw);
    let o = add("ops", "short");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("at least 10 characters"));
    assert!(add("ops", "correct horse battery").status.success());
    let o = add("ops", "correct horse battery");
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    let rec = start_recorder(&cfg);
    web_url(&rec);
    assert!(!rec.stop().contains("no users yet"));
}

/// curl with a cookie jar; returns (status, headers, JSON body).

#[test]
fn login_sessions_csrf_and_lockout() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "", &[]);
    for (name, pw) in [("alice", "alice password 1"), ("bob", "bob password 22")] {
        assert!(user_add(&cfg, name, "viewer", pw).status.success());
    }
    let rec = start_recorder(&cfg);
    let base = web_url(&rec);
    let cert = dir.path().join("data/tls/cert.pem");
    let jar = dir.path().join("jar");
    let api = |p: &str| format!("{base}api/v1/{p}");

    // Not logged in.
    let (code, _, v) = curl(&cert, &jar, "GET", &api("me"), None, &[]);
    assert_eq!((code, v["code"].as_str()), (401, Some("unauthenticated")));

    // Login; the cookie is HttpOnly, Secure, SameSite=Strict.
    let (code, headers, v) = curl(
        &cert,
        &jar,
        "POST",
        &api("login"),
        Some(r#"{"username":"alice","password":"alice password 1"}"#),
        &[],
    );
    assert_eq!(code, 200, "{v}");
    let cookie = headers
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let csrf = v["csrf_token"].as_str().unwrap().to_string();
    let (code, _, v) = curl(&cert, &jar, "GET", &api("me"), None, &[]);
    assert_eq!(
        (code, v["username"].as_str(), v["role"].as_str()),
        (200, Some("alice"), Some("viewer"))
    );

    // State changes need the CSRF header.
    let (code, _, v) = curl(&cert, &jar, "POST", &api("logout"), None, &[]);
    assert_eq!((code, v["code"].as_str()), (403, Some("csrf")));
    let (code, _, _) = curl(
        &cert,
        &jar,
        "POST",
        &api("logout"),
        None,
        &["X-CSRF-Token: wrong"],
    );
    assert_eq!(code, 403);
    let (code, _, _) = curl(
        &cert,
        &jar,
        "POST",
        &api("logout"),
        None,
        &[&format!("X-CSRF-Token: {csrf}")],
    );
    assert_eq!(code, 204);
    let (code, _, _) = curl(&cert, &jar, "GET", &api("me"), None, &[]);
    assert_eq!(code, 401, "session ended");

    // Five wrong passwords lock bob out, even with the right one afterwards.
    let jar2 = dir.path().join("jar2");
    for _ in 0..5 {
        let (code, _, _) = curl(
            &cert,
            &jar2,
            "POST",
            &api("login"),
            Some(r#"{"username":"bob","password":"guess guess guess"}"#),
            &[],
        );
        assert_eq!(code, 401);
    }
    let (code, headers, v) = curl(
        &cert,
        &jar2,
        "POST",
        &api("login"),
        Some(r#"{"username":"bob","password":"bob password 22"}"#),
        &[],
    );
    assert_eq!((code, v["code"].as_str()), (429, Some("locked_out")), "{v}");
    assert!(headers.to_ascii_lowercase().contains("retry-after:"));
    let log = rec.stop();
    assert!(
        !log.contains("bob password 22") && !log.contains("guess guess"),
        "passwords never logged"
    );
}

/// `candor user add`, the password on stdin as a script would send it.

#[test]
fn logged_in_users_list_cameras_spans_and_download_an_export_ffprobe_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(H264_CLIP, 1);
    let cfg = write_config(dir.path(), "", &[("gate", sim.url(0), "")]);
    assert!(
        user_add(&cfg, "alice", "viewer", "alice password 1")
            .status
            .success()
    );
    let rec = start_recorder(&cfg);
    let base = web_url(&rec);
    let cert = dir.path().join("data/tls/cert.pem");
    let jar = dir.path().join("jar");
    let api = |p: &str| format!("{base}api/v1/{p}");
    wait_for("footage", Duration::from_secs(30), || {
        recorded_secs(&cfg, "gate") >= 6.0
    });

    for path in [
        "cameras",
        "cameras/gate/spans",
        "cameras/gate/export.mp4?from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:01Z",
    ] {
        let (code, _, _) = curl(&cert, &jar, "GET", &api(path), None, &[]);
        assert_eq!(code, 401, "{path} must need a login");
    }
    let (code, _, _) = curl(
        &cert,
        &jar,
        "POST",
        &api("login"),
        Some(r#"{"username":"alice","password":"alice password 1"}"#),
        &[],
    );
    assert_eq!(code, 200);

    let (code, _, v) = curl(&cert, &jar, "GET", &api("cameras"), None, &[]);
    assert_eq!(code, 200);
    assert_eq!(v["cameras"][0]["name"], "gate");
    assert_eq!(v["cameras"][0]["state"], "streaming", "{v}");
    let (code, _, v) = curl(&cert, &jar, "GET", &api("cameras/gate/spans"), None, &[]);
    assert_eq!(code, 200);
    let start =
        candor_media::Time90k::parse_rfc3339(v["spans"][0]["start"].as_str().unwrap()).unwrap();
    let (code, _, v) = curl(&cert, &jar, "GET", &api("cameras/nope/spans"), None, &[]);
    assert_eq!((code, v["code"].as_str()), (404, Some("no_camera")));
    let (code, _, v) = curl(
        &cert,
        &jar,
        "GET",
        &api("cameras/gate/spans?from=yesterday"),
        None,
        &[],
    );
    assert_eq!((code, v["code"].as_str()), (400, Some("bad_time")));

    let (from, to) = (start + secs(1.25), start + secs(4.75));
    let out = dir.path().join("web.mp4");
    let o = Command::new("curl")
        .args(["-sS", "--fail", "-o"])
        .arg(&out)
        .arg("--cacert")
        .arg(&cert)
        .arg("-b")
        .arg(&jar)
        .arg(api(&format!("cameras/gate/export.mp4?from={from}&to={to}")))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p = ffprobe(&out);
    assert_eq!(p.codec, "h264");
    assert!((p.duration - 3.5).abs() <= 0.1 + 1e-6, "{p:?}");
    ffmpeg_decodes(&out).unwrap();
    rec.stop();
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_user_supplied_certificate_is_served_and_a_mismatched_key_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A private CA and a leaf for 127.0.0.1, made by openssl, not by us.
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Test CA",
        ],
    );
    for name in ["leaf", "other"] {
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
    }
    std::fs::write(d.join("ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    );
    let cfg = write_config(d, "", &[]);
    let with = |cert: &str, key: &str| {
        let text = std::fs::read_to_string(&cfg).unwrap().replace(
            "[web]\n",
            &format!(
                "[web]\ncert = \"{}\"\nkey = \"{}\"\n",
                d.join(cert).display(),
                d.join(key).display()
            ),
        );
        std::fs::write(&cfg, text).unwrap();
    };
    with("leaf.pem", "leaf.key");
    let rec = start_recorder(&cfg);
    let url = web_url(&rec);
    let o = Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(d.join("ca.pem"))
        .arg(format!("{url}api/v1/health"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "curl trusting only the CA: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let fp = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(d.join("leaf.pem"))
        .output()
        .unwrap();
    let fp = String::from_utf8_lossy(&fp.stdout)
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .to_string();
    let log = rec.stop();
    assert!(
        log.contains(&fp),
        "the logged fingerprint is the supplied certificate's"
    );
    assert!(
        !d.join("data/tls").exists(),
        "nothing is generated when a certificate is supplied"
    );

    // The certificate with another certificate's key: said clearly, recording goes on.
    let cfg_text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("leaf.key", "other.key");
    std::fs::write(&cfg, cfg_text).unwrap();
    let rec = start_recorder(&cfg);
    wait_for("the web error", Duration::from_secs(20), || {
        rec.log_text().contains("web server not started")
    });
    let log = rec.stop();
    assert!(log.contains("recording continues"), "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("web server not started"))
        .unwrap();
    assert!(
        line.contains("other.key") && line.contains("[web] cert and key"),
        "{line}"
    );
}
