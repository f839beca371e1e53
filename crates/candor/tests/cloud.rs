//! The optional cloud, end to end on loopback: `candor cloud` and real
//! recorders (`candor run`, cameras from camsim with ONVIF events) talking
//! the link protocol over TLS, driven through both HTTP APIs with curl.
//! The same scenario runs against SQLite and against PostgreSQL.

mod common;
use common::cloud::*;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn ledger(site: &Site) -> Vec<serde_json::Value> {
    let (code, _, v) = site.web.api("GET", "egress", None);
    assert_eq!(code, 200, "{v}");
    v["entries"].as_array().unwrap().clone()
}

fn scenario(database: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let cloud = CloudProc::start(dir.path(), database.as_deref(), "");
    let owner = Owner::register(&cloud, dir.path(), "owner@example.com");
    let other = Owner::register(&cloud, dir.path(), "neighbour@example.com");

    let shop = site(
        &dir.path().join("shop"),
        &cloud,
        "Shop",
        "sharing = \"health_and_events\"",
    );
    let home = site(
        &dir.path().join("home"),
        &cloud,
        "Home",
        "sharing = \"online_only\"\nprivate_alarms = true",
    );
    // Before pairing the recorders connect nowhere: nothing in their ledgers.
    assert!(ledger(&shop).is_empty());
    let (shop_id, shop_code) = pair(&shop, &owner);
    let (home_id, _) = pair(&home, &owner);
    assert_ne!(shop_id, home_id);

    // The code was single use.
    let (code, v) = owner.api(
        "POST",
        "pair",
        Some(&serde_json::json!({"code": shop_code}).to_string()),
    );
    assert_eq!(code, 404, "a replayed pairing code: {v}");

    // Live status, as much as each site shares.
    wait_for("shop's camera health", Duration::from_secs(30), || {
        let s = owner.site(&shop_id);
        s["online"] == true && s["status"]["cameras"][0]["streaming"] == true
    });
    let s = owner.site(&shop_id);
    assert_eq!(s["sharing"], "health_and_events");
    assert_eq!(s["status"]["cameras"][0]["name"], "gate");
    assert!(
        s["status"]["disk_used_percent"].as_f64().unwrap() > 0.0,
        "{s}"
    );
    wait_for("home online", Duration::from_secs(15), || {
        owner.site(&home_id)["online"] == true
    });
    let h = owner.site(&home_id);
    assert_eq!(h["sharing"], "online_only");
    assert!(
        h["status"]["cameras"].is_null(),
        "online_only shares no health: {h}"
    );

    // Another owner sees none of it, and can't act on it.
    assert!(other.sites().is_empty());
    assert_eq!(other.api("GET", &format!("sites/{shop_id}"), None).0, 404);
    assert_eq!(
        other.api("DELETE", &format!("sites/{shop_id}"), None).0,
        404
    );
    assert_eq!(
        other
            .api("POST", &format!("sites/{shop_id}/alarms/1/ack"), None)
            .0,
        404
    );
    assert!(other.alarms(&shop_id).is_empty());
    // Without the CSRF header a state change is refused.
    let (code, _, _) = curl(
        &cloud.cert,
        &owner.jar,
        "DELETE",
        &format!("{}api/sites/{shop_id}", cloud.base),
        None,
        &[],
    );
    assert_eq!(code, 403);

    // Alarms: one live event per site.
    shop.wait_following();
    home.wait_following();
    shop.event();
    home.event();
    wait_for("the first alarms", Duration::from_secs(15), || {
        owner.alarms(&shop_id).len() == 1 && owner.alarms(&home_id).len() == 1
    });
    let a = &owner.alarms(&shop_id)[0];
    assert_eq!(
        (
            a["camera"].as_str(),
            a["kind"].as_str(),
            a["late"].as_bool()
        ),
        (Some("gate"), Some("motion"), Some(false)),
        "{a}"
    );
    let b = &owner.alarms(&home_id)[0];
    assert!(
        b["camera"].is_null() && b["kind"].is_null(),
        "private alarm carries no details: {b}"
    );

    // The cloud dies while events happen; every alarm arrives once, late.
    let recorded_before = recorded_secs(&shop.cfg, "gate");
    let cloud = cloud.crash_and_restart(|| {
        std::thread::sleep(Duration::from_millis(500));
        for _ in 0..3 {
            shop.event();
        }
        // Recording goes on without the cloud.
        wait_for(
            "footage while the cloud is down",
            Duration::from_secs(15),
            || recorded_secs(&shop.cfg, "gate") > recorded_before + 2.0,
        );
        wait_for(
            "3 more events on the recorder",
            Duration::from_secs(10),
            || {
                shop.events()
                    .iter()
                    .filter(|e| e["end"].is_string())
                    .count()
                    >= 4
            },
        );
    });
    wait_for(
        "all 4 alarms after the restart",
        Duration::from_secs(60),
        || owner.alarms(&shop_id).len() >= 4,
    );
    std::thread::sleep(Duration::from_secs(2));
    let alarms = owner.alarms(&shop_id);
    let mut ids: Vec<i64> = alarms.iter().map(|a| a["id"].as_i64().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        (alarms.len(), ids.len()),
        (4, 4),
        "exactly once: {alarms:?}"
    );
    assert_eq!(
        alarms.iter().filter(|a| a["late"] == true).count(),
        3,
        "{alarms:?}"
    );
    assert_eq!(shop.events().len(), 4);

    // Acknowledged on the phone, recorded on the recorder.
    let first = ids[0];
    let (code, v) = owner.api("POST", &format!("sites/{shop_id}/alarms/{first}/ack"), None);
    assert_eq!(code, 204, "{v}");
    wait_for(
        "the acknowledgement on the recorder",
        Duration::from_secs(15),
        || {
            shop.events()
                .iter()
                .any(|e| e["acked_by"] == "owner@example.com")
        },
    );
    wait_for(
        "the recorder's confirmation in the cloud",
        Duration::from_secs(15),
        || {
            owner
                .alarms(&shop_id)
                .iter()
                .any(|a| a["id"] == first && a["ack_recorded"] == true)
        },
    );

    // The app can only ask for more sharing; the recorder's admin decides.
    let (code, v) = owner.api(
        "PUT",
        &format!("sites/{home_id}/sharing"),
        Some(r#"{"sharing":"health"}"#),
    );
    assert_eq!(code, 202, "{v}");
    wait_for(
        "the request on the recorder",
        Duration::from_secs(10),
        || home.cloud_state()["sharing_request"] == "health",
    );
    assert_eq!(
        owner.site(&home_id)["sharing"],
        "online_only",
        "a request alone changes nothing"
    );
    let (code, _, v) = home.web.api(
        "PUT",
        "cloud/sharing",
        Some(r#"{"sharing":"health","private_alarms":true}"#),
    );
    assert_eq!(code, 200, "{v}");
    assert!(
        std::fs::read_to_string(&home.cfg)
            .unwrap()
            .contains("sharing = \"health\"")
    );
    wait_for("home's health in the app", Duration::from_secs(30), || {
        let s = owner.site(&home_id);
        s["sharing"] == "health" && s["status"]["cameras"][0]["streaming"] == true
    });
    assert!(home.cloud_state()["sharing_request"].is_null());

    // The ledger holds every message the recorder sent, alarms included.
    let entries = ledger(&shop);
    let kinds: std::collections::HashSet<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in [
        "connect",
        "pair_start",
        "pair_confirm",
        "hello",
        "status",
        "alarm",
        "ack_recorded",
    ] {
        assert!(kinds.contains(k), "no {k} in the ledger: {kinds:?}");
    }
    let sent_alarms: std::collections::HashSet<i64> = entries
        .iter()
        .filter(|e| e["kind"] == "alarm")
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(e["summary"].as_str().unwrap()).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        sent_alarms,
        ids.iter().copied().collect(),
        "every alarm the cloud has is in the ledger"
    );
    // Home's alarms are private: no camera name ever left in one.
    let home_alarms: Vec<_> = ledger(&home)
        .into_iter()
        .filter(|e| e["kind"] == "alarm")
        .collect();
    assert!(!home_alarms.is_empty());
    for e in home_alarms {
        assert!(
            !e["summary"].as_str().unwrap().contains("gate"),
            "home's private alarm names a camera: {e}"
        );
    }

    // A recorder whose key was never paired is refused, and one whose site
    // was unpaired in the app is refused for good.
    let key_copy = std::fs::read(home.dir.join("data/cloud/key")).unwrap();
    let paired_copy = std::fs::read(home.dir.join("data/cloud/paired.json")).unwrap();
    let (code, _) = owner.api("DELETE", &format!("sites/{home_id}"), None);
    assert_eq!(code, 204);
    wait_for(
        "home to learn it was unpaired",
        Duration::from_secs(20),
        || home.cloud_state()["paired"].is_null(),
    );
    assert!(
        !home.dir.join("data/cloud/key").exists(),
        "unpairing drops the key"
    );
    let home_log = home.rec.stop();
    assert!(home_log.contains("unpaired"), "{home_log}");
    std::fs::write(home.dir.join("data/cloud/key"), &key_copy).unwrap();
    std::fs::write(home.dir.join("data/cloud/paired.json"), &paired_copy).unwrap();
    let revived = start_recorder(&home.cfg);
    wait_for(
        "the revoked key to be refused",
        Duration::from_secs(20),
        || revived.log_text().contains("was unpaired"),
    );
    assert!(owner.sites().iter().all(|s| s["id"] != home_id.as_str()));
    drop(revived);
    // A fresh key claiming shop's site.
    std::fs::remove_file(home.dir.join("data/cloud/key")).ok();
    let mut forged: serde_json::Value =
        serde_json::from_slice(&std::fs::read(shop.dir.join("data/cloud/paired.json")).unwrap())
            .unwrap();
    forged["site"] = shop_id.clone().into();
    std::fs::write(home.dir.join("data/cloud/paired.json"), forged.to_string()).unwrap();
    let forger = start_recorder(&home.cfg);
    wait_for(
        "the unknown key to be refused",
        Duration::from_secs(20),
        || forger.log_text().contains("unknown recorder"),
    );
    assert_eq!(owner.site(&shop_id)["name"], "Shop");
    drop(forger);

    // Shop goes silent without closing its connection (SIGSTOP: no FIN, no
    // RST, like a cut cable): the cloud shows it offline within 30 s.
    Command::new("kill")
        .args(["-STOP", &shop.rec.child.id().to_string()])
        .status()
        .unwrap();
    let t = Instant::now();
    wait_for("shop offline", Duration::from_secs(40), || {
        owner.site(&shop_id)["online"] == false
    });
    let took = t.elapsed();
    Command::new("kill")
        .args(["-CONT", &shop.rec.child.id().to_string()])
        .status()
        .unwrap();
    assert!(took < Duration::from_secs(30), "offline after {took:?}");
    eprintln!("silent recorder shown offline after {took:?}");
    wait_for("shop back online", Duration::from_secs(40), || {
        owner.site(&shop_id)["online"] == true
    });

    // Unpairing from the recorder's side is final too.
    let (code, _, v) = shop.web.api("POST", "cloud/unpair", None);
    assert_eq!(code, 200, "{v}");
    wait_for("shop gone from the app", Duration::from_secs(15), || {
        owner.sites().is_empty()
    });

    // The ledger as CSV, read back by Python's csv module: one row per
    // alarm message, its JSON intact.
    let (code, _, _) = shop.web.api("GET", "egress?kind=alarm&format=csv", None);
    assert_eq!(code, 200);
    let csv_out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&shop.web.cert)
        .arg("-b")
        .arg(&shop.web.jar)
        .arg(format!(
            "{}api/v1/egress?kind=alarm&format=csv",
            shop.web.base
        ))
        .output()
        .unwrap();
    let mut py = Command::new("python3")
        .args(["-c", "import csv,sys,json; r=list(csv.DictReader(sys.stdin)); print(json.dumps([json.loads(x['summary'])['id'] for x in r]))"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut py.stdin.take().unwrap(), &csv_out.stdout).unwrap();
    let ids_csv: Vec<i64> = serde_json::from_slice(&py.wait_with_output().unwrap().stdout).unwrap();
    let mut sorted = ids_csv.clone();
    sorted.sort();
    assert_eq!(sorted, ids, "CSV alarm rows: {ids_csv:?}");

    // Two-factor sign-in for cloud accounts, with codes from oathtool.
    let (code, t) = owner.api("POST", "totp/begin", None);
    assert_eq!(code, 200, "{t}");
    let secret = t["secret"].as_str().unwrap();
    let totp = |secret: &str| {
        let o = Command::new("oathtool")
            .args(["--totp", "-b", secret])
            .output()
            .expect("oathtool");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let step = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 30
    };
    let confirmed_in = step();
    let body = serde_json::json!({"secret": secret, "code": totp(secret)}).to_string();
    assert_eq!(owner.api("POST", "totp/confirm", Some(&body)).0, 204);
    let jar = dir.path().join("jar-2fa");
    let login = |extra: serde_json::Value| {
        let mut b =
            serde_json::json!({"email": "owner@example.com", "password": "long enough password"});
        if let Some(c) = extra.as_str() {
            b["code"] = c.into();
        }
        curl(
            &cloud.cert,
            &jar,
            "POST",
            &format!("{}api/login", cloud.base),
            Some(&b.to_string()),
            &[],
        )
    };
    let (code, _, v) = login(serde_json::Value::Null);
    assert_eq!(
        (code, v["code"].as_str()),
        (401, Some("totp_required")),
        "{v}"
    );
    // The code that confirmed can't sign in (its 30-second step is spent).
    let (code, _, v) = login(totp(secret).into());
    if step() == confirmed_in {
        assert_eq!(code, 401, "a spent step: {v}");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    std::thread::sleep(Duration::from_secs(31 - now % 30));
    // The next step's code signs in once: two sign-ins racing with it get
    // one session between them (the step is spent in one update).
    let code_now = totp(secret);
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| login(code_now.clone().into()).0);
        let b = s.spawn(|| {
            let jar = dir.path().join("jar-2fa-race");
            let body = serde_json::json!({"email": "owner@example.com", "password": "long enough password", "code": code_now});
            curl(&cloud.cert, &jar, "POST", &format!("{}api/login", cloud.base), Some(&body.to_string()), &[]).0
        });
        (a.join().unwrap(), b.join().unwrap())
    });
    let mut both = [a, b];
    both.sort();
    assert_eq!(both, [200, 401], "one code, two sign-ins");
    // A stolen session cannot move 2FA to another phone without a code.
    let (code, t) = owner.api("POST", "totp/begin", None);
    assert_eq!(code, 200, "{t}");
    let fresh = t["secret"].as_str().unwrap();
    let body = serde_json::json!({"secret": fresh, "code": totp(fresh)}).to_string();
    let (code, v) = owner.api("POST", "totp/confirm", Some(&body));
    assert_eq!(
        (code, v["code"].as_str()),
        (403, Some("code_required")),
        "{v}"
    );
    // Sign-up does not tell whether an address has an account, and leaves
    // the existing one as it was.
    let taken = serde_json::json!({"email": "owner@example.com", "password": "another password 2"});
    let (code, _, v) = curl(
        &cloud.cert,
        &dir.path().join("jar-x"),
        "POST",
        &format!("{}api/accounts", cloud.base),
        Some(&taken.to_string()),
        &[],
    );
    assert_eq!(
        (code, &v),
        (201, &serde_json::json!({"email": "owner@example.com"}))
    );
    let (code, _, _) = curl(
        &cloud.cert,
        &dir.path().join("jar-x"),
        "POST",
        &format!("{}api/login", cloud.base),
        Some(&taken.to_string()),
        &[],
    );
    assert_eq!(code, 401, "sign-up changed an existing account's password");
    // Password change needs the current password; other sessions end.
    let (code, v) = other.api(
        "POST",
        "password",
        Some(r#"{"current":"wrong password!","new":"neighbour password 2"}"#),
    );
    assert_eq!(
        (code, v["code"].as_str()),
        (403, Some("bad_credentials")),
        "{v}"
    );
    let second = Owner::login(
        &cloud,
        dir.path(),
        "neighbour@example.com",
        "long enough password",
        "jar-n2",
    );
    let (code, v) = other.api(
        "POST",
        "password",
        Some(r#"{"current":"long enough password","new":"neighbour password 2"}"#),
    );
    assert_eq!(code, 204, "{v}");
    assert_eq!(
        second.api("GET", "sites", None).0,
        401,
        "the other session lives on"
    );
    assert_eq!(other.api("GET", "sites", None).0, 200, "this session ended");
    // Account deletion: needs the password, then the account is gone.
    let (code, v) = other.api(
        "DELETE",
        "account",
        Some(r#"{"password":"long enough password"}"#),
    );
    assert_eq!(
        (code, v["code"].as_str()),
        (403, Some("bad_credentials")),
        "{v}"
    );
    let (code, v) = other.api(
        "DELETE",
        "account",
        Some(r#"{"password":"neighbour password 2"}"#),
    );
    assert_eq!(code, 204, "{v}");
    assert_eq!(other.api("GET", "sites", None).0, 401);

    // Sign-in is rate limited: five wrong passwords lock the account.
    for _ in 0..5 {
        let b =
            serde_json::json!({"email": "neighbour@example.com", "password": "wrong password!"})
                .to_string();
        curl(
            &cloud.cert,
            &jar,
            "POST",
            &format!("{}api/login", cloud.base),
            Some(&b),
            &[],
        );
    }
    let b =
        serde_json::json!({"email": "neighbour@example.com", "password": "neighbour password 2"})
            .to_string();
    let (code, _, v) = curl(
        &cloud.cert,
        &jar,
        "POST",
        &format!("{}api/login", cloud.base),
        Some(&b),
        &[],
    );
    assert_eq!(code, 429, "locked out even with the right password: {v}");
    drop(cloud);
}

#[test]
fn cloud_end_to_end_on_sqlite() {
    scenario(None);
}

#[test]
fn cloud_end_to_end_on_postgresql() {
    scenario(Some(pg_database("cloud")));
}

/// An HTTP CONNECT proxy on loopback that records where it was asked to go.
struct Proxy {
    port: u16,
    targets: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

fn connect_proxy() -> Proxy {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let targets = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let t2 = targets.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let targets = t2.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if c.read(&mut b).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(b[0]);
                }
                let line = String::from_utf8_lossy(&head)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
                targets.lock().unwrap().push(line.clone());
                let Ok(up) = std::net::TcpStream::connect(&target) else {
                    let _ = c.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                    return;
                };
                c.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
                let (mut a, mut b2) = (c.try_clone().unwrap(), up.try_clone().unwrap());
                let (mut c2, mut up2) = (c, up);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut a, &mut up2);
                    let _ = up2.shutdown(std::net::Shutdown::Write);
                });
                let _ = std::io::copy(&mut b2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    Proxy { port, targets }
}

/// Three recorders (one through an HTTP CONNECT proxy) paired through the
/// two real web apps in headless Chromium; alarms appear live in the cloud
/// app and are acknowledged there; and Web Push messages reach a local push
/// endpoint that checks VAPID and decrypts them with Python's `http_ece`,
/// an implementation nobody here wrote.
#[test]
fn cloud_in_chromium_with_web_push() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "apt-get install chromium"
    );
    ensure_playwright();
    let dir = tempfile::tempdir().unwrap();
    // The push endpoint first: the cloud must trust its certificate.
    let push = PushEndpoint::start(dir.path());
    let (subscription, pushed) = (push.subscription.clone(), push.pushed.clone());
    let push_cert = push.cert.clone();
    let cloud = CloudProc::start(
        dir.path(),
        None,
        &format!(
            "push_ca = \"{}\"\nvapid_subject = \"mailto:ops@example.com\"\npush_allow_hosts = [\"127.0.0.1\"]",
            push_cert.display()
        ),
    );
    let owner = Owner::register(&cloud, dir.path(), "owner@example.com");
    let (code, v) = owner.api("POST", "push", Some(&subscription.to_string()));
    assert_eq!(code, 201, "{v}");
    // Push endpoints inside the cloud's network are refused (the push
    // endpoint above is allowed by push_allow_hosts), so are another
    // account's endpoint and more than ten devices.
    for inside in [
        "https://10.1.2.3/push",
        "https://169.254.169.254/latest",
        "https://localhost:9/x",
        "https://[::1]/x",
    ] {
        let mut s = subscription.clone();
        s["endpoint"] = inside.into();
        let (code, v) = owner.api("POST", "push", Some(&s.to_string()));
        assert_eq!(
            (code, v["code"].as_str()),
            (400, Some("endpoint_not_public")),
            "{inside}: {v}"
        );
    }
    let stranger = Owner::register(&cloud, dir.path(), "stranger@example.com");
    let (code, v) = stranger.api("POST", "push", Some(&subscription.to_string()));
    assert_eq!(
        (code, v["code"].as_str()),
        (409, Some("endpoint_taken")),
        "{v}"
    );
    let gone = serde_json::json!({"endpoint": subscription["endpoint"]}).to_string();
    assert_eq!(stranger.api("DELETE", "push", Some(&gone)).0, 204);
    let ep = subscription["endpoint"].as_str().unwrap().to_owned();
    let mut codes = Vec::new();
    for i in 0..11 {
        let mut s = subscription.clone();
        s["endpoint"] = format!("{ep}-stranger-{i}").into();
        codes.push(stranger.api("POST", "push", Some(&s.to_string())).0);
    }
    assert_eq!(&codes[..10], &[201; 10]);
    assert_eq!(codes[10], 409, "an eleventh device");
    // A subscription with an http endpoint or a bad key is refused.
    let mut bad = subscription.clone();
    bad["endpoint"] = "http://127.0.0.1:1/x".into();
    assert_eq!(owner.api("POST", "push", Some(&bad.to_string())).0, 400);

    let proxy = connect_proxy();
    let shop = site(
        &dir.path().join("shop"),
        &cloud,
        "Shop",
        "sharing = \"health_and_events\"",
    );
    let home = site(
        &dir.path().join("home"),
        &cloud,
        "Home",
        &format!(
            "sharing = \"health\"\nprivate_alarms = true\nproxy = \"http://127.0.0.1:{}\"",
            proxy.port
        ),
    );
    let depot = site(
        &dir.path().join("depot"),
        &cloud,
        "Depot",
        "sharing = \"online_only\"",
    );
    for s in [&shop, &home, &depot] {
        s.wait_following();
    }
    let shots = workspace().join("artifacts/screenshots/cloud");
    std::fs::create_dir_all(&shots).unwrap();
    let recorders: Vec<serde_json::Value> = [("Shop", &shop), ("Home", &home), ("Depot", &depot)]
        .iter()
        .map(|(n, s)| serde_json::json!({"name": n, "url": s.web.base, "control": format!("http://{}/control/cam0", s.sim.http)}))
        .collect();
    let recorders_env = serde_json::Value::from(recorders).to_string();
    let result = run_e2e(
        "cloud.mjs",
        &[
            ("CLOUD_URL", &cloud.base),
            ("OWNER", &"owner@example.com"),
            ("PASSWORD", &"long enough password"),
            ("RECORDERS", &recorders_env),
            ("SHOTS", &shots),
        ],
        || format!("cloud log:\n{}", cloud.log_text()),
    );
    assert_eq!(result["sites"].as_array().unwrap().len(), 3);
    assert_eq!(result["manifest"], "standalone");
    assert_eq!(result["service_worker"], true);
    eprintln!("camera event → cloud app (ms): {}", result["alarm_ms"]);

    // The recorder's QR code, read off the screenshot by zbarimg, opens the
    // cloud app's pairing page with the code filled in.
    let o = Command::new("zbarimg")
        .args(["-q", "--raw"])
        .arg(shots.join("c02-recorder-code.png"))
        .output()
        .expect("zbarimg (zbar-tools)");
    let qr = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        qr.trim(),
        format!(
            "{}#pair={}",
            cloud.base,
            result["first_code"].as_str().unwrap()
        ),
        "QR code"
    );

    // Home reached the cloud only through the proxy.
    let targets = proxy.targets.lock().unwrap().clone();
    let addr = cloud
        .base
        .trim_start_matches("https://")
        .trim_end_matches('/');
    assert!(
        !targets.is_empty()
            && targets
                .iter()
                .all(|t| t == &format!("CONNECT {addr} HTTP/1.1")),
        "{targets:?}"
    );

    // Web Push: one message per alarm, VAPID valid, decrypted independently.
    let t = Instant::now();
    while pushed.lock().unwrap().len() < 2 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "push messages: {:?}\ncloud log:\n{}",
            pushed.lock().unwrap(),
            cloud.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let msgs = pushed.lock().unwrap().clone();
    for m in &msgs {
        assert_eq!(m["vapid"], "ok", "{m}");
        assert_eq!(m["encoding"], "aes128gcm", "{m}");
    }
    let plain: Vec<serde_json::Value> = msgs
        .iter()
        .map(|m| serde_json::from_str(m["plaintext"].as_str().expect("decrypted")).unwrap())
        .collect();
    assert!(
        plain
            .iter()
            .any(|p| p["title"] == "Alarm at Shop" && p["body"] == "motion on gate"),
        "{plain:?}"
    );
    let private = plain
        .iter()
        .find(|p| p["title"] == "Alarm at Home")
        .expect("home's push");
    assert_eq!(private["body"], "Details stay on the recorder.");
    drop(push);
}
