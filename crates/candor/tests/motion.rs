//! Motion detection in the running recorder: a simulated camera loops real
//! footage of people walking; the recorder decodes its sub stream, raises
//! motion events with snapshots, shows them in the API, and publishes them
//! (and the snapshot, with Home Assistant discovery of an image entity) to
//! the real Mosquitto broker. JPEGs are judged by ffprobe.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

const CLIP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../assets/clips/vtest-h264-10s.mp4"
);

#[test]
fn motion_on_the_sub_stream_raises_events_with_snapshots_over_api_and_mqtt() {
    let prefix = format!("candormotion{}", std::process::id());
    let sub = Subscriber::start(&[
        &format!("{prefix}/gate/motion"),
        &format!("{prefix}/yard/motion"),
        &format!("{prefix}/events"),
        &format!("homeassistant/image/{prefix}_gate_snapshot/config"),
    ]);
    // The snapshot topic carries JPEG bytes: a second client writes the
    // first message it gets to a file, as-is.
    let dir = tempfile::tempdir().unwrap();
    let mqtt_jpeg = dir.path().join("mqtt.jpg");
    let snap_sub = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", "1883", "-C", "1", "-N", "-t"])
        .arg(format!("{prefix}/gate/snapshot"))
        .stdout(std::fs::File::create(&mqtt_jpeg).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let sim = Sim::start(CLIP, 2);
    // gate: main stream cam0, motion on the "sub stream" cam1 (the same
    // footage, served separately, as a camera's second profile would be).
    // yard: a zone where nobody walks (the top 8% of the image): no events.
    let gate_extra = format!(
        "sub_url = \"{}\"\n[cameras.motion]\nenabled = true\n",
        sim.url(1)
    );
    let yard_extra = "[cameras.motion]\nenabled = true\n[[cameras.motion.zones]]\nname = \"sky\"\npoints = [[0.0, 0.0], [1.0, 0.0], [1.0, 0.08], [0.0, 0.08]]\n";
    let cfg = write_config(
        dir.path(),
        "",
        &[
            ("gate", sim.url(0), &gate_extra),
            ("yard", sim.url(1), yard_extra),
        ],
    );
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text += &format!("\n[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\ntopic_prefix = \"{prefix}\"\n");
    std::fs::write(&cfg, text).unwrap();
    assert!(
        user_add(&cfg, "root", "admin", "root password 1")
            .status
            .success()
    );
    let rec = start_recorder(&cfg);
    let web = Web::login(&rec, dir.path(), "root", "root password 1");
    let (base, cert, jar) = (web.base.clone(), web.cert.clone(), web.jar.clone());

    // The model learns for 3 s, then the walkers are motion.
    let mut ev = serde_json::Value::Null;
    wait_for(
        "a motion event with a snapshot",
        Duration::from_secs(30),
        || {
            let (_, _, v) = web.api("GET", "events?camera=gate", None);
            ev = v["events"]
                .as_array()
                .and_then(|l| {
                    l.iter()
                        .find(|e| e["source"] == "motion" && e["snapshot"] == true)
                })
                .cloned()
                .unwrap_or_default();
            !ev.is_null()
        },
    );
    assert_eq!(ev["kind"], "motion");
    assert!(ev["score"].as_f64().unwrap() > 0.003, "{ev}");
    let id = ev["id"].as_i64().unwrap();

    // The snapshot and thumbnail are real JPEGs of the sub stream's picture.
    for (file, width, height) in [("snapshot.jpg", 768, 576), ("thumbnail.jpg", 320, 240)] {
        let out = dir.path().join(file);
        let o = Command::new("curl")
            .args(["-sS", "-f", "--cacert"])
            .arg(&cert)
            .arg("-b")
            .arg(&jar)
            .arg("-o")
            .arg(&out)
            .arg(format!("{base}api/v1/events/{id}/{file}"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            probe_jpeg(&out),
            ("mjpeg".to_owned(), width, height),
            "{file}"
        );
    }
    let (code, _, _) = curl(
        &cert,
        &jar,
        "GET",
        &format!("{base}api/v1/events/{}/snapshot.jpg", id + 100_000),
        None,
        &[],
    );
    assert_eq!(code, 404);

    // MQTT: state, event message with score, HA image discovery and the JPEG.
    wait_for("MQTT motion messages", Duration::from_secs(15), || {
        sub.has(|l| l == format!("{prefix}/gate/motion ON"))
            && sub.has(|l| {
                l.starts_with(&format!("{prefix}/events "))
                    && l.contains("\"source\":\"motion\"")
                    && l.contains("\"snapshot\":true")
                    && l.contains("\"score\":")
            })
            && sub.has(|l| {
                l.contains("homeassistant/image/")
                    && l.contains(&format!("\"image_topic\":\"{prefix}/gate/snapshot\""))
                    && l.contains("\"content_type\":\"image/jpeg\"")
            })
    });
    let snap = snap_sub.wait_with_output().unwrap();
    assert!(snap.status.success());
    assert_eq!(probe_jpeg(&mqtt_jpeg), ("mjpeg".to_owned(), 768, 576));

    // The system page reports the detector and its cost.
    let (_, _, sys) = curl(
        &cert,
        &jar,
        "GET",
        &format!("{base}api/v1/system"),
        None,
        &[],
    );
    let cams = sys["cameras"].as_array().unwrap();
    let gate = cams.iter().find(|c| c["name"] == "gate").unwrap();
    assert_eq!(gate["motion"]["state"], "running", "{gate}");
    assert!(
        gate["motion"]["stream"]
            .as_str()
            .unwrap()
            .starts_with("768x576 avc1"),
        "{gate}"
    );
    assert!(gate["motion"]["analysed"].as_u64().unwrap() > 10, "{gate}");

    // The zone in the sky saw nothing, although yard's detector ran.
    let yard = cams.iter().find(|c| c["name"] == "yard").unwrap();
    assert!(yard["motion"]["analysed"].as_u64().unwrap() > 10, "{yard}");
    let (_, _, v) = curl(
        &cert,
        &jar,
        "GET",
        &format!("{base}api/v1/events?camera=yard"),
        None,
        &[],
    );
    assert_eq!(v["events"].as_array().unwrap().len(), 0, "{v}");
    assert!(!sub.has(|l| l == format!("{prefix}/yard/motion ON")));

    // An admin removes yard's zone through the API: the change is written to
    // candor.toml and the running detector picks it up, so the walkers now
    // count anywhere.
    let (code, _, v) = web.api(
        "PUT",
        "cameras/yard/motion",
        Some(r#"{"enabled":true,"sensitivity":60,"min_size":0.3,"zones":[],"masks":[]}"#),
    );
    assert_eq!(code, 200, "{v}");
    let written = candor_recorder::Config::load(&cfg).unwrap();
    assert!(written.cameras[1].motion.zones.is_empty());
    let bad = web.api(
        "PUT",
        "cameras/yard/motion",
        Some(r#"{"enabled":true,"masks":[[[0.1,0.1],[2.0,0.1],[0.1,0.5]]]}"#),
    );
    assert_eq!(
        bad.0, 400,
        "a point outside the picture is refused: {}",
        bad.2
    );
    wait_for(
        "yard motion after the zone went",
        Duration::from_secs(20),
        || {
            let (_, _, v) = web.api("GET", "events?camera=yard", None);
            !v["events"].as_array().unwrap().is_empty()
        },
    );

    // One event, three ways: the API, the MQTT message and `candor events
    // --json` carry the same fields with the same values (they serialize
    // one struct, candor_wire::Event). The event is an ongoing one (the
    // walkers never stop), compared with MQTT's `update` that brought its
    // snapshot: nothing about it changes until it ends.
    let (mut from_mqtt, mut from_api) = (serde_json::Value::Null, serde_json::Value::Null);
    wait_for(
        "an ongoing event's update over MQTT",
        Duration::from_secs(30),
        || {
            let (_, _, v) = web.api("GET", "events", None);
            let api = v["events"].as_array().cloned().unwrap_or_default();
            for m in sub.payloads(&format!("{prefix}/events")) {
                let m: serde_json::Value = serde_json::from_str(&m).unwrap();
                if m["type"] != "update" {
                    continue;
                }
                if let Some(e) = api
                    .iter()
                    .find(|e| e["id"] == m["event"]["id"] && e["end"].is_null())
                {
                    (from_mqtt, from_api) = (m["event"].clone(), e.clone());
                    return true;
                }
            }
            false
        },
    );
    let o = candor(&["events", "-c", cfg.to_str().unwrap(), "--json"]);
    let cli: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let from_cli = cli
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == from_mqtt["id"])
        .cloned()
        .unwrap();
    assert_eq!(from_api, from_mqtt, "API and MQTT differ");
    assert_eq!(from_cli, from_mqtt, "CLI and MQTT differ");
    assert_eq!(from_mqtt.as_object().unwrap().len(), 16, "{from_mqtt}");

    // Stopping ends the ongoing event.
    rec.stop();
    let o = candor(&[
        "events",
        "-c",
        cfg.to_str().unwrap(),
        "--camera",
        "gate",
        "--json",
    ]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!list.as_array().unwrap().is_empty());
    assert!(
        list.as_array().unwrap().iter().all(|e| !e["end"].is_null()),
        "{list}"
    );
}
