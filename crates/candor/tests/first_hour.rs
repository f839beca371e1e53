//! The first hour, tried as a new user would: a cloud reached by another
//! name than localhost, a wrong `[cloud] ca`, a missing config file. Each
//! must fail with words that say what to do, at the moment it can be said.

mod common;
use common::cloud::*;
use common::*;

/// Stderr of a failed command, and its exit code.
fn fails(args: &[&str]) -> (String, i32) {
    let o = candor(args);
    assert!(!o.status.success(), "{args:?} succeeded");
    (
        String::from_utf8_lossy(&o.stderr).into_owned(),
        o.status.code().unwrap_or(-1),
    )
}

#[test]
fn config_errors_say_their_cause_once_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nonexist.toml");
    let (err, code) = fails(&["check", "-c", missing.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");

    // The cloud's config: the same code, the same single cause.
    let (err, code) = fails(&["cloud", "-c", missing.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    let bad = dir.path().join("cloud.toml");
    std::fs::write(&bad, "listen = \"127.0.0.1:0\"\nno_such_key = 1\n").unwrap();
    let (err, code) = fails(&["cloud", "-c", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    // A name for the generated certificate with a port in it is refused
    // before anything is generated.
    std::fs::write(
        &bad,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nhostnames = [\"cloud.example.com:8443\"]\n",
            dir.path().join("cloud-data").display()
        ),
    )
    .unwrap();
    let (err, code) = fails(&["cloud", "-c", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("hostnames") && err.contains("without port"),
        "{err}"
    );
    assert!(!dir.path().join("cloud-data/tls/key.pem").exists());

    // `[cloud] ca` is checked: a missing file, or one with no certificate
    // in it, fails `candor check` with the reason; `candor run` says so at
    // start and records all the same (the cloud is optional, footage is not).
    for (ca, says) in [
        ("missing.pem", "No such file or directory"),
        ("notes.txt", "no PEM certificate in it"),
    ] {
        std::fs::write(dir.path().join("notes.txt"), "not a certificate\n").unwrap();
        let cfg = write_config(dir.path(), "", &[]);
        let mut text = std::fs::read_to_string(&cfg).unwrap();
        text += &format!(
            "\n[cloud]\naddress = \"cloud.example.com:8443\"\nca = \"{}\"\n",
            dir.path().join(ca).display()
        );
        std::fs::write(&cfg, text).unwrap();
        let (err, code) = fails(&["check", "-c", cfg.to_str().unwrap()]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("[cloud] ca") && err.contains(says), "{err}");
    }
    let sim = Sim::start(H264_CLIP, 1);
    let cfg = write_config(dir.path(), "", &[("gate", sim.url(0), "")]);
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text += &format!(
        "\n[cloud]\naddress = \"cloud.example.com:8443\"\nca = \"{}\"\n",
        dir.path().join("notes.txt").display()
    );
    std::fs::write(&cfg, text).unwrap();
    let rec = start_recorder(&cfg);
    wait_for(
        "footage despite a bad [cloud] ca",
        std::time::Duration::from_secs(30),
        || recorded_secs(&cfg, "gate") >= 2.0,
    );
    assert!(
        rec.log_text().contains("no PEM certificate in it"),
        "{}",
        rec.log_text()
    );
}

/// A cloud reached at an address its generated certificate does not cover:
/// pairing fails at once, the answer and the recorder's log say why and what
/// to do. With the address in `hostnames`, the generated certificate covers
/// it and pairing starts.
#[test]
fn the_cloud_certificate_covers_the_configured_hostnames() {
    let dir = tempfile::tempdir().unwrap();
    for d in ["cloud-a", "cloud-b"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    let cloud = CloudProc::start_on(&dir.path().join("cloud-a"), "127.0.0.2", None, "");
    assert!(
        cloud.log_text().contains(&cloud.cert.display().to_string()),
        "the cloud names its certificate file:\n{}",
        cloud.log_text()
    );
    let site = site(&dir.path().join("site"), &cloud, "Home", "");
    let (code, _, v) = site.web.api("POST", "cloud/pair", None);
    assert_eq!(code, 502, "{v}");
    assert_eq!(v["code"], "pairing_failed", "{v}");
    let said = v["message"].as_str().unwrap();
    assert!(said.contains("hostnames"), "{said}");
    assert!(!said.contains("docs.rs"), "{said}");
    wait_for(
        "the failure in the log",
        std::time::Duration::from_secs(5),
        || site.rec.log_text().contains("cloud pairing failed"),
    );

    // Another cloud, told its name.
    let cloud = CloudProc::start_on(
        &dir.path().join("cloud-b"),
        "127.0.0.3",
        None,
        "hostnames = [\"127.0.0.3\"]",
    );
    let Site { rec, cfg, .. } = site;
    rec.stop();
    let text = std::fs::read_to_string(&cfg).unwrap();
    let addr = cloud
        .base
        .trim_start_matches("https://")
        .trim_end_matches('/');
    let text = text
        .lines()
        .map(|l| {
            if l.starts_with("address = ") {
                format!("address = \"{addr}\"")
            } else if l.starts_with("ca = ") {
                format!("ca = \"{}\"", cloud.cert.display())
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&cfg, text).unwrap();
    let rec = start_recorder(&cfg);
    let web = Web::login(&rec, &dir.path().join("site"), "admin", "admin password 1");
    let (code, _, v) = web.api("POST", "cloud/pair", None);
    assert_eq!(code, 200, "{v}");
    wait_for("a pairing code", std::time::Duration::from_secs(15), || {
        let (_, _, v) = web.api("GET", "cloud", None);
        v["pairing"]["code"].is_string()
    });
}
