//! The API checked by tools we did not write, from its own OpenAPI document:
//! openapi-spec-validator says the document is valid OpenAPI 3.1, and
//! schemathesis generates hundreds of requests from it (valid and invalid
//! paths, queries and bodies) against a running recorder with an admin
//! token, and finds no server error (5xx), no crash, and no response body
//! that differs from the document's schema for it.

mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn generated_requests_from_the_openapi_document_cause_no_server_error() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(H264_CLIP, 1);
    let cfg = write_config(dir.path(), "", &[("gate", sim.url(0), "")]);
    assert!(
        user_add(&cfg, "admin", "admin", "admin password 1")
            .status
            .success()
    );
    let rec = start_recorder(&cfg);
    let base = web_url(&rec);
    wait_for("footage", Duration::from_secs(30), || {
        recorded_secs(&cfg, "gate") >= 2.0
    });
    let cert = dir.path().join("data/tls/cert.pem");
    let jar = dir.path().join("jar");
    let (code, _, v) = curl(
        &cert,
        &jar,
        "POST",
        &format!("{base}api/v1/login"),
        Some(r#"{"username":"admin","password":"admin password 1"}"#),
        &[],
    );
    assert_eq!(code, 200);
    let csrf = format!("X-CSRF-Token: {}", v["csrf_token"].as_str().unwrap());
    let (code, _, v) = curl(
        &cert,
        &jar,
        "POST",
        &format!("{base}api/v1/tokens"),
        Some(r#"{"name":"schemathesis"}"#),
        &[&csrf],
    );
    assert_eq!(code, 201);
    let bearer = format!("Authorization: Bearer {}", v["token"].as_str().unwrap());
    let doc = dir.path().join("openapi.json");
    let o = Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(&cert)
        .args(["-H", &bearer, "-o"])
        .arg(&doc)
        .arg(format!("{base}api/v1/openapi.json"))
        .output()
        .unwrap();
    assert!(o.status.success());

    let o = Command::new("openapi-spec-validator")
        .arg(&doc)
        .output()
        .expect("openapi-spec-validator is needed: pip install openapi-spec-validator");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));

    let o = Command::new("schemathesis")
        .args(["run"])
        .arg(&doc)
        .args([
            "--url",
            base.trim_end_matches('/'),
            "--tls-verify",
            "false",
            "-H",
            &bearer,
        ])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--max-examples",
            "25",
            "--seed",
            "20261127",
        ])
        // The WebSocket route is not HTTP; revoking sessions or tokens by
        // generated ids could revoke the token this run uses.
        .args([
            "--exclude-path-regex",
            "live|logout|sessions/\\{id\\}|tokens/\\{id\\}",
        ])
        .env("NO_COLOR", "1")
        // Its cache stays in the temporary directory, not the source tree.
        .current_dir(dir.path())
        .output()
        .expect("schemathesis is needed: pip install schemathesis");
    let out = String::from_utf8_lossy(&o.stdout);
    let summary = out
        .lines()
        .filter(|l| l.contains(" generated, "))
        .collect::<Vec<_>>()
        .join("\n");
    println!("schemathesis: {summary}");
    assert!(
        o.status.success(),
        "schemathesis found problems:\n{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(summary.contains("passed"), "{out}");
    let log = rec.stop();
    assert!(!log.contains("panicked"), "a handler panicked:\n{log}");
}
