//! ONVIF end to end against the simulator (`candor camsim --onvif`):
//! WS-Discovery finds the cameras, WS-Security digests (with the camera's
//! clock an hour off) get their profiles and RTSP URIs, a wrong password is
//! refused, and the URI found records.

mod common;
use common::*;
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A recorder config with one camera, `gate`, on simulated camera 0, its
/// ONVIF events followed with the camera's credentials.
fn gate_config(dir: &std::path::Path, sim: &Camsim) -> std::path::PathBuf {
    let url = format!("rtsp://admin:cam%20pass%201@{}/cam0", sim.rtsp);
    let onvif = format!("onvif = \"http://{}/onvif/cam0/device_service\"", sim.http);
    write_config(dir, "", &[("gate", url, &onvif)])
}

/// Adds top-level sections (integrations) to a config.
fn append(cfg: &std::path::Path, toml: &str) {
    let mut text = std::fs::read_to_string(cfg).unwrap();
    text += toml;
    std::fs::write(cfg, text).unwrap();
}

fn discover(probe: &str, user: Option<(&str, &str)>) -> serde_json::Value {
    let mut c = Command::new(bin());
    c.args(["discover", "--probe", probe, "--wait", "2", "--json"]);
    if let Some((u, _)) = user {
        c.args(["--user", u]);
    }
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some((_, p)) = user {
        writeln!(child.stdin.take().unwrap(), "{p}").unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn discovery_finds_cameras_and_their_streams_then_records() {
    let sim = camsim_with_onvif(2, "cam pass 1", 3600);
    let found = discover(&sim.discovery, None);
    assert_eq!(found.as_array().unwrap().len(), 2, "{found}");
    assert_eq!(found[0]["name"], "camsim 0", "scopes are percent-decoded");

    // With the camera an hour ahead, digests only work if the client uses
    // the camera's clock (learnt from GetSystemDateAndTime).
    let v = discover(&sim.discovery, Some(("admin", "cam pass 1")));
    let cams = v.as_array().unwrap();
    assert_eq!(cams.len(), 2);
    for (i, c) in cams.iter().enumerate() {
        assert_eq!(c["manufacturer"], "Candor", "{c}");
        let off = c["clock_offset_secs"].as_i64().unwrap();
        assert!((3598..=3602).contains(&off), "clock offset {off}");
        assert_eq!(c["profiles"][0]["encoding"], "H264");
        assert_eq!(c["profiles"][0]["width"], 768);
        assert!(
            c["main"].as_str().unwrap().ends_with(&format!("/cam{i}")),
            "{c}"
        );
    }
    let wrong = discover(&sim.discovery, Some(("admin", "not the password")));
    assert_eq!(
        wrong[0]["error"],
        "the camera refused the user name or password"
    );

    // The URI discovery found is one the recorder can record.
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "",
        &[("found", cams[1]["main"].as_str().unwrap().to_string(), "")],
    );
    let rec = start_recorder(&cfg);
    wait_for(
        "footage from the discovered URI",
        Duration::from_secs(30),
        || recorded_secs(&cfg, "found") >= 2.0,
    );
    let log = rec.stop();
    assert!(!log.contains("cam pass 1"));
}

fn raise(sim: &Camsim, what: &str) {
    raise_on(sim, 0, what);
}

#[test]
fn camera_events_over_pullpoint_become_candor_events() {
    let sim = camsim_with_onvif(1, "cam pass 1", -1800);
    let dir = tempfile::tempdir().unwrap();
    let cfg = gate_config(dir.path(), &sim);
    let rec = start_recorder(&cfg);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !rec.log_text().contains("following ONVIF events") {
        assert!(
            std::time::Instant::now() < deadline,
            "no subscription:\n{}",
            rec.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    raise(&sim, "motion/on");
    raise(&sim, "input/on");
    wait_for("two ongoing events", Duration::from_secs(15), || {
        events_json(&cfg)
            .iter()
            .filter(|e| e["end"].is_null())
            .count()
            == 2
    });
    raise(&sim, "motion/off");
    wait_for("motion to end", Duration::from_secs(15), || {
        events_json(&cfg)
            .iter()
            .any(|e| e["kind"] == "motion" && !e["end"].is_null())
    });
    let list = events_json(&cfg);
    let motion = list.iter().find(|e| e["kind"] == "motion").unwrap();
    assert_eq!(
        (motion["camera"].as_str(), motion["source"].as_str()),
        (Some("gate"), Some("onvif"))
    );
    assert!(
        motion["detail"]
            .as_str()
            .unwrap()
            .contains("CellMotionDetector")
    );
    let input = list.iter().find(|e| e["kind"] == "input").unwrap();
    assert!(input["end"].is_null(), "the input is still on");
    // Stopping ends what is still going on: nothing stays "ongoing" for ever.
    let log = rec.stop();
    assert!(
        !log.contains("cam pass 1"),
        "the camera password is never logged"
    );
    assert!(events_json(&cfg).iter().all(|e| !e["end"].is_null()));
}

#[test]
fn events_reach_mqtt_subscribers_with_home_assistant_discovery() {
    let prefix = format!("candortest{}", std::process::id());
    let sub = Subscriber::start(&[
        &format!("{prefix}/#"),
        &format!("homeassistant/binary_sensor/{prefix}_gate_motion/config"),
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let sim = camsim_with_onvif(1, "cam pass 1", 0);
    let dir = tempfile::tempdir().unwrap();
    let cfg = gate_config(dir.path(), &sim);
    append(
        &cfg,
        &format!("\n[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\ntopic_prefix = \"{prefix}\"\n"),
    );
    let rec = start_recorder(&cfg);
    wait_for(
        "availability and discovery",
        Duration::from_secs(20),
        || {
            sub.has(|l| l == format!("{prefix}/available online"))
                && sub.has(|l| {
                    l.contains("homeassistant/binary_sensor/")
                        && l.contains(&format!("\"state_topic\":\"{prefix}/gate/motion\""))
                })
        },
    );
    wait_for("the event subscription", Duration::from_secs(20), || {
        rec.log_text().contains("following ONVIF events")
    });
    raise(&sim, "motion/on");
    wait_for("motion ON", Duration::from_secs(15), || {
        sub.has(|l| l == format!("{prefix}/gate/motion ON"))
            && sub.has(|l| {
                l.starts_with(&format!("{prefix}/events "))
                    && l.contains("\"type\":\"new\"")
                    && l.contains("\"kind\":\"motion\"")
            })
    });
    raise(&sim, "motion/off");
    wait_for("motion OFF", Duration::from_secs(15), || {
        sub.has(|l| l == format!("{prefix}/gate/motion OFF"))
            && sub.has(|l| l.contains("\"type\":\"end\""))
    });
    rec.stop();
    wait_for("offline on stop", Duration::from_secs(10), || {
        sub.has(|l| l == format!("{prefix}/available offline"))
    });
}

type Received = std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>;

/// The independent webhook receiver (Python's hmac): its port, and one JSON
/// line per request it got (`valid` says whether the signature verified).
/// Kills the receiver when the test ends, passed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn webhook_receiver(secret: &str) -> (KillOnDrop, u16, Received) {
    let mut recv = Command::new("/usr/bin/python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/webhook_receiver.py"
        ))
        .arg(secret)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(recv.stdout.take().unwrap()).lines();
    let port: u16 = out.next().unwrap().unwrap().trim().parse().unwrap();
    let got = Received::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for l in out.map_while(Result::ok) {
            g.lock().unwrap().push(serde_json::from_str(&l).unwrap());
        }
    });
    (KillOnDrop(recv), port, got)
}

#[test]
fn webhooks_are_signed_retried_and_verified_by_an_independent_receiver() {
    let secret = "a webhook secret 123";
    let (recv, port, got) = webhook_receiver(secret);
    let sim = camsim_with_onvif(1, "cam pass 1", 0);
    let dir = tempfile::tempdir().unwrap();
    let cfg = gate_config(dir.path(), &sim);
    append(
        &cfg,
        &format!("\n[[webhooks]]\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret = \"{secret}\"\n"),
    );
    let rec = start_recorder(&cfg);
    wait_for("the event subscription", Duration::from_secs(20), || {
        rec.log_text().contains("following ONVIF events")
    });
    raise(&sim, "motion/on");
    raise(&sim, "motion/off");
    wait_for(
        "both deliveries, one after a retry",
        Duration::from_secs(20),
        || {
            got.lock()
                .unwrap()
                .iter()
                .filter(|v| v["status"] == 200)
                .count()
                >= 2
        },
    );
    let log = rec.stop();
    drop(recv);
    let got = got.lock().unwrap().clone();
    assert_eq!(got[0]["status"], 500, "the first try failed on purpose");
    assert!(
        got.iter().all(|v| v["valid"] == true),
        "every signature verifies: {got:?}"
    );
    let delivered: Vec<_> = got
        .iter()
        .filter(|v| v["status"] == 200)
        .map(|v| v["body"].clone())
        .collect();
    assert_eq!(
        delivered[0]["type"], "new",
        "the failed delivery was retried first, in order"
    );
    assert_eq!(delivered[0]["event"]["kind"], "motion");
    assert_eq!(delivered[1]["type"], "end");
    assert_eq!(delivered[0]["event"]["id"], delivered[1]["event"]["id"]);
    assert!(log.contains("HTTP 500"), "the failure is logged");
    assert!(!log.contains(secret), "the secret is never logged");
}

#[test]
fn the_web_api_lists_events_and_streams_them_live() {
    let sim = camsim_with_onvif(1, "cam pass 1", 0);
    let dir = tempfile::tempdir().unwrap();
    let cfg = gate_config(dir.path(), &sim);
    assert!(
        user_add(&cfg, "root", "admin", "root password 1")
            .status
            .success()
    );
    let rec = start_recorder(&cfg);
    let web = Web::login(&rec, dir.path(), "root", "root password 1");
    let (base, cert, jar) = (web.base.clone(), web.cert.clone(), web.jar.clone());
    wait_for("the event subscription", Duration::from_secs(20), || {
        rec.log_text().contains("following ONVIF events")
    });
    // A real SSE client (curl -N) on the live feed while the camera raises motion.
    let feed = Command::new("curl")
        .args(["-sS", "-N", "--max-time", "6", "--cacert"])
        .arg(&cert)
        .arg("-b")
        .arg(&jar)
        .arg(format!("{base}api/v1/events/live"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    raise(&sim, "motion/on");
    let out = feed.wait_with_output().unwrap();
    let sse = String::from_utf8_lossy(&out.stdout);
    assert!(
        sse.contains("event: event")
            && sse.contains("\"kind\":\"motion\"")
            && sse.contains("\"type\":\"new\""),
        "SSE: {sse}"
    );
    let (code, _, v) = curl(
        &cert,
        &jar,
        "GET",
        &format!("{base}api/v1/events?camera=gate&kind=motion"),
        None,
        &[],
    );
    assert_eq!(code, 200);
    let list = v["events"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v}");
    assert!(
        list[0]["end"].is_null(),
        "still going on: {v}\n{}",
        rec.log_text()
    );
    let (code, _, v) = curl(
        &cert,
        &jar,
        "GET",
        &format!("{base}api/v1/events?camera=nope"),
        None,
        &[],
    );
    assert_eq!((code, v["code"].as_str()), (404, Some("no_camera")));
    rec.stop();
}

fn raise_on(sim: &Camsim, cam: usize, what: &str) {
    raise_on_camsim(&sim.http, cam, what);
}

/// Retention with events, against a running recorder: continuous footage
/// expires after `max_age` (6 s) while the footage around an event (2 s pre-
/// and post-capture) stays for `event_max_age`; with `record = "events"`,
/// only footage around events is kept, and an operator's pin keeps one
/// event's footage after `max_age` while an unpinned event's goes (and the
/// event, with its footage gone, is forgotten).
#[test]
fn event_footage_outlives_continuous_footage_and_pins_hold() {
    let sim = camsim_with_onvif(2, "cam pass 1", 0);
    let dir = tempfile::tempdir().unwrap();
    let cam = |i: usize, extra: &str| {
        (
            format!("rtsp://admin:cam%20pass%201@{}/cam{i}", sim.rtsp),
            format!(
                "onvif = \"http://{}/onvif/cam{i}/device_service\"\nmax_age = \"6s\"\npre_capture = \"2s\"\npost_capture = \"2s\"\n{extra}",
                sim.http
            ),
        )
    };
    let (gate_url, gate_extra) = cam(0, "event_max_age = \"1h\"\n");
    let (yard_url, yard_extra) = cam(1, "record = \"events\"\n");
    let cfg = write_config(
        dir.path(),
        "",
        &[
            ("gate", gate_url, &gate_extra),
            ("yard", yard_url, &yard_extra),
        ],
    );
    assert!(
        user_add(&cfg, "op", "operator", "operator password 1")
            .status
            .success()
    );
    let rec = start_recorder(&cfg);
    wait_for("both event subscriptions", Duration::from_secs(20), || {
        rec.log_text().matches("following ONVIF events").count() >= 2
    });
    std::thread::sleep(Duration::from_secs(4));
    raise_on(&sim, 1, "motion/on");
    std::thread::sleep(Duration::from_secs(1));
    raise_on(&sim, 1, "motion/off");
    std::thread::sleep(Duration::from_secs(5));
    raise_on(&sim, 0, "motion/on");
    raise_on(&sim, 1, "motion/on");
    std::thread::sleep(Duration::from_secs(1));
    raise_on(&sim, 0, "motion/off");
    raise_on(&sim, 1, "motion/off");
    let mut ev = Vec::new();
    wait_for("three ended events", Duration::from_secs(10), || {
        ev = events_json(&cfg);
        ev.len() == 3 && ev.iter().all(|e| !e["end"].is_null())
    });
    let window = |camera: &str, nth: usize| {
        // Events are listed newest first.
        let e: Vec<_> = ev.iter().filter(|e| e["camera"] == camera).collect();
        let e = e[e.len() - 1 - nth];
        let t = |k: &str| candor_media::Time90k::parse_rfc3339(e[k].as_str().unwrap()).unwrap();
        (
            e["id"].as_i64().unwrap(),
            t("start") - secs(2.0),
            t("end") + secs(2.0),
        )
    };
    let gate_ev = window("gate", 0);
    let (yard_old, yard_new) = (window("yard", 0), window("yard", 1));

    // An operator keeps the second yard event.
    let web = Web::login(&rec, dir.path(), "op", "operator password 1");
    let (code, _, pin_v) = web.api(
        "PUT",
        &format!("events/{}/pinned", yard_new.0),
        Some(r#"{"pinned":true}"#),
    );
    assert_eq!(code, 200, "{pin_v}");

    let covered =
        |spans: &[SpanT], (_, a, b): (i64, candor_media::Time90k, candor_media::Time90k)| {
            spans
                .iter()
                .any(|s| s.start <= a + secs(0.2) && s.end >= b - secs(0.2))
        };
    let touches =
        |spans: &[SpanT], (_, a, b): (i64, candor_media::Time90k, candor_media::Time90k)| {
            spans.iter().any(|s| s.start < b && s.end > a)
        };
    // Retention runs every 10 s; footage older than 6 s outside events goes.
    let (mut g, mut y) = (Vec::new(), Vec::new());
    wait_for("retention around events", Duration::from_secs(60), || {
        g = spans(&cfg, "gate");
        y = spans(&cfg, "yard");
        let gate_before_event_gone = g.first().is_some_and(|s| s.start > gate_ev.1 - secs(4.5));
        gate_before_event_gone && g.len() >= 2 && !touches(&y, yard_old)
    });
    // gate: footage around its event is still whole; older footage is gone,
    // and footage between the event and the last 6 s is gone too.
    assert!(
        covered(&g, gate_ev),
        "gate event footage kept: {g:?} {gate_ev:?}"
    );
    assert!(g.len() >= 2, "a gap after the event window: {g:?}");
    // yard (record = events): the pinned event's footage stays whole, the
    // unpinned one's went with max_age, and so did the event itself.
    assert!(
        covered(&y, yard_new),
        "pinned footage kept: {y:?} {yard_new:?}"
    );
    let ev = events_json(&cfg);
    assert!(
        ev.iter().all(|e| e["id"].as_i64() != Some(yard_old.0)),
        "an event whose footage is gone is forgotten: {ev:?}"
    );
    assert!(ev.iter().any(|e| e["id"].as_i64() == Some(yard_new.0)));
    // A forgotten event can't be pinned, and the answer says so.
    let (code, _, v) = web.api(
        "PUT",
        &format!("events/{}/pinned", yard_old.0),
        Some(r#"{"pinned":true}"#),
    );
    assert_eq!((code, v["code"].as_str()), (404, Some("no_event")), "{v}");
    let log = rec.stop();
    assert!(
        log.contains("forgot 1 event(s) whose footage is gone"),
        "{log}"
    );
}

/// ONVIF end to end, the web app's way, at the API level: discovery → the
/// camera's streams (WS-Security digest, camera clock an hour off) → added
/// (written to candor.toml, recording at once, no restart) → a camera event
/// → a Candor event → MQTT message on Mosquitto → signed webhook, verified.
#[test]
fn discover_describe_and_add_a_camera_through_the_api_without_a_restart() {
    let sim = camsim_with_onvif(1, "cam pass 1", 3600);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "", &[]);
    allow_loopback_cameras(&cfg);
    // The whole chain ends at the integrations: Mosquitto and a webhook.
    let prefix = format!("candoradd{}", std::process::id());
    let sub = Subscriber::start(&[&format!("{prefix}/door/tamper")]);
    let secret = "a webhook secret 456";
    let (recv, port, got) = webhook_receiver(secret);
    append(
        &cfg,
        &format!(
            "\n[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\ntopic_prefix = \"{prefix}\"\n\n[[webhooks]]\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret = \"{secret}\"\n"
        ),
    );
    assert!(
        user_add(&cfg, "root", "admin", "root password 1")
            .status
            .success()
    );
    let rec = start_recorder(&cfg);
    let web = Web::login(&rec, dir.path(), "root", "root password 1");
    let (base, cert, jar) = (web.base.clone(), web.cert.clone(), web.jar.clone());
    let api = |method: &str, path: &str, body: &str| web.api(method, path, Some(body));
    let (code, _, found) = api(
        "POST",
        "discover",
        &format!(r#"{{"probe":"{}","wait_secs":2}}"#, sim.discovery),
    );
    assert_eq!(code, 200, "{found}");
    let xaddr = found["cameras"][0]["xaddrs"][0]
        .as_str()
        .unwrap()
        .to_owned();
    // Only the local network: the recorder is no proxy to the internet.
    let (code, _, v) = api(
        "POST",
        "discover/describe",
        r#"{"xaddr":"http://8.8.8.8/onvif/device_service","username":"a","password":"b"}"#,
    );
    assert_eq!((code, v["code"].as_str()), (400, Some("not_local")));
    let (code, _, v) = api(
        "POST",
        "discover/describe",
        &format!(r#"{{"xaddr":"{xaddr}","username":"admin","password":"wrong"}}"#),
    );
    assert_eq!(
        (code, v["code"].as_str()),
        (400, Some("camera_refused")),
        "{v}"
    );
    let (code, _, d) = api(
        "POST",
        "discover/describe",
        &format!(r#"{{"xaddr":"{xaddr}","username":"admin","password":"cam pass 1"}}"#),
    );
    assert_eq!(code, 200, "{d}");
    let main = d["main"].as_str().unwrap().to_owned();
    assert!(main.starts_with("rtsp://"), "{d}");
    let body = serde_json::json!({
        "name": "door", "url": main, "username": "admin", "password": "cam pass 1",
        "sub_url": d["sub"], "onvif": xaddr, "motion": true,
    });
    let (code, _, v) = api("POST", "cameras", &body.to_string());
    assert_eq!(code, 201, "{v}");
    assert!(!v["url"].as_str().unwrap().contains("cam pass"), "{v}");
    let (code, _, v) = api("POST", "cameras", &body.to_string());
    assert_eq!(
        (code, v["code"].as_str()),
        (400, Some("bad_camera")),
        "the same name twice: {v}"
    );
    // Written to the file (the recorder's own parser reads it back) …
    let saved = candor_recorder::Config::load(&cfg).unwrap();
    assert_eq!(saved.cameras.len(), 1);
    assert_eq!(saved.cameras[0].url.password.as_deref(), Some("cam pass 1"));
    // … and recording, and following the camera's events, without a restart.
    wait_for(
        "the added camera's footage",
        Duration::from_secs(20),
        || recorded_secs(&cfg, "door") >= 2.0,
    );
    wait_for("the event subscription", Duration::from_secs(20), || {
        rec.log_text().contains("following ONVIF events")
    });
    raise(&sim, "tamper/on");
    wait_for("a tamper event on door", Duration::from_secs(15), || {
        events_json(&cfg)
            .iter()
            .any(|e| e["camera"] == "door" && e["kind"] == "tamper")
    });
    let (_, _, audit) = curl(
        &cert,
        &jar,
        "GET",
        &format!("{base}api/v1/audit?action=camera_added"),
        None,
        &[],
    );
    assert!(audit.to_string().contains("door"), "{audit}");
    wait_for(
        "MQTT and webhook for the added camera",
        Duration::from_secs(20),
        || {
            sub.has(|l| l == format!("{prefix}/door/tamper ON"))
                && got.lock().unwrap().iter().any(|v| {
                    v["status"] == 200
                        && v["valid"] == true
                        && v["body"]["event"]["camera"] == "door"
                })
        },
    );
    drop(recv);
    let log = rec.stop();
    assert!(
        !log.contains("cam pass 1"),
        "the camera password is never logged"
    );
}
