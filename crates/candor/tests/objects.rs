//! Object detection in the running recorder, on real footage served by the
//! camera simulator: people walking raise person events (with snapshots,
//! Frigate-shaped MQTT messages and per-label counts), and a waving tree
//! raises motion but no object event and no object alarm. ONNX Runtime is
//! the PyPI wheel's library; MQTT is the real Mosquitto.

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

const WALKING: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../assets/clips/vtest-h264-10s.mp4"
);
const TREE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../assets/clips/tree-h264-30s.mp4"
);

/// A JPEG's pixels, 768×576 RGB, by ffmpeg.
fn rgb(path: &std::path::Path) -> Vec<u8> {
    let o = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.stdout.len(), 768 * 576 * 3);
    o.stdout
}

#[test]
fn people_walking_raise_person_events_and_a_waving_tree_raises_none() {
    let prefix = format!("candorobjects{}", std::process::id());
    let sub = Subscriber::start(&[
        &format!("{prefix}/events"),
        &format!("{prefix}/gate/person"),
        &format!("{prefix}/tree/+"),
        &format!("homeassistant/sensor/{prefix}_gate_person_count/config"),
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let walking = Sim::start(WALKING, 1);
    let tree = Sim::start(TREE, 1);
    let dir = tempfile::tempdir().unwrap();
    let objects = "[cameras.motion]\nenabled = true\n[cameras.objects]\nenabled = true\n";
    let cfg = write_config(
        dir.path(),
        "",
        &[
            ("gate", walking.url(0), objects),
            ("tree", tree.url(0), objects),
        ],
    );
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text += &format!(
        "\n[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\ntopic_prefix = \"{prefix}\"\n\n[objects]\nruntime = \"{}\"\nthreads = 1\n",
        onnxruntime()
    );
    std::fs::write(&cfg, text).unwrap();
    assert!(
        user_add(&cfg, "root", "admin", "root password 1")
            .status
            .success()
    );
    let started = Instant::now();
    let rec = start_recorder(&cfg);
    let web = Web::login(&rec, dir.path(), "root", "root password 1");

    // People: a person event, ended or not, with its snapshots.
    let mut person = serde_json::Value::Null;
    wait_for(
        "a person event with a snapshot",
        Duration::from_secs(40),
        || {
            let (_, _, v) = web.api("GET", "events?camera=gate&label=person", None);
            person = v["events"]
                .as_array()
                .and_then(|l| l.iter().find(|e| e["snapshot"] == true))
                .cloned()
                .unwrap_or_default();
            !person.is_null()
        },
    );
    assert_eq!(person["kind"], "object", "{person}");
    assert_eq!(person["label"], "person", "{person}");
    let score = person["score"].as_f64().unwrap();
    assert!((0.5..=1.0).contains(&score), "{person}");
    let b: Vec<f64> = person["box"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(
        b.len() == 4
            && b.iter().all(|v| (0.0..=1.0).contains(v))
            && b[0] + b[2] <= 1.0001
            && b[1] + b[3] <= 1.0001,
        "{person}"
    );
    assert!(
        b[3] > b[2],
        "a walking person's box is taller than wide: {person}"
    );
    assert!(person["zones"].as_array().unwrap().is_empty());
    let id = person["id"].as_i64().unwrap();
    for (file, w, h) in [
        ("snapshot.jpg", 768, 576),
        ("clean.jpg", 768, 576),
        ("thumbnail.jpg", 320, 240),
    ] {
        let out = dir.path().join(file);
        let o = Command::new("curl")
            .args(["-sS", "-f", "--cacert"])
            .arg(&web.cert)
            .arg("-b")
            .arg(&web.jar)
            .arg("-o")
            .arg(&out)
            .arg(format!("{}api/v1/events/{id}/{file}", web.base))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(probe_jpeg(&out), ("mjpeg".to_owned(), w, h), "{file}");
    }
    // The box is drawn on the snapshot, where the event says, and the clean
    // picture is the same picture without it: the pixels that differ lie
    // on the box's outline.
    let (marked, clean) = (
        rgb(&dir.path().join("snapshot.jpg")),
        rgb(&dir.path().join("clean.jpg")),
    );
    let (w, h) = (768.0, 576.0);
    let (x0, y0, x1, y1) = (b[0] * w, b[1] * h, (b[0] + b[2]) * w, (b[1] + b[3]) * h);
    let mut on_outline = 0;
    let mut elsewhere = 0;
    for (i, (m, c)) in marked.chunks(3).zip(clean.chunks(3)).enumerate() {
        let d: u32 = m
            .iter()
            .zip(c)
            .map(|(a, b)| u32::from(a.abs_diff(*b)))
            .sum();
        if d < 90 {
            continue;
        }
        let (x, y) = ((i % 768) as f64, (i / 768) as f64);
        let near = |v: f64, edge: f64| (v - edge).abs() <= 8.0;
        let inside = x >= x0 - 8.0 && x <= x1 + 8.0 && y >= y0 - 8.0 && y <= y1 + 8.0;
        if inside && (near(x, x0) || near(x, x1) || near(y, y0) || near(y, y1)) {
            on_outline += 1;
        } else {
            elsewhere += 1;
        }
    }
    let perimeter = 2.0 * ((x1 - x0) + (y1 - y0));
    assert!(
        f64::from(on_outline) * 2.0 > perimeter && elsewhere * 20 < on_outline,
        "box {b:?}: {on_outline} changed pixels on its outline (perimeter {perimeter:.0}), {elsewhere} elsewhere"
    );

    // MQTT: Frigate's shape (type, before/after with label and score), the
    // event marked as an alarm, a count for the label, HA discovery.
    wait_for("MQTT object messages", Duration::from_secs(15), || {
        let evs = sub.payloads(&format!("{prefix}/events"));
        let obj: Vec<serde_json::Value> = evs
            .iter()
            .filter_map(|p| serde_json::from_str::<serde_json::Value>(p).ok())
            .filter(|v| v["event"]["kind"] == "object")
            .collect();
        obj.iter().any(|v| {
            v["type"] == "new"
                && v["alarm"] == true
                && v["after"]["label"] == "person"
                && v["after"]["camera"] == "gate"
                && v["after"]["top_score"].as_f64().is_some_and(|s| s >= 0.5)
                && v["before"].is_null()
        }) && obj
            .iter()
            .any(|v| v["type"] == "update" && v["before"]["label"] == "person")
            && sub
                .payloads(&format!("{prefix}/gate/person"))
                .iter()
                .any(|n| n.parse::<u32>().is_ok_and(|n| n >= 1))
            && sub.has(|l| l.contains(&format!("\"state_topic\":\"{prefix}/gate/person\"")))
    });
    // With objects on, the camera's motion events raise no alarm.
    let motion_msgs: Vec<serde_json::Value> = sub
        .payloads(&format!("{prefix}/events"))
        .iter()
        .filter_map(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .filter(|v| v["event"]["kind"] == "motion")
        .collect();
    assert!(
        motion_msgs.iter().all(|v| v["alarm"] == false),
        "{motion_msgs:?}"
    );

    // The camera sends garbage for 3 s (random bytes for RTP): the
    // recorder reconnects and detection carries on.
    let looks_of = |cam: &str| {
        let (_, _, sys) = web.api("GET", "system", None);
        sys["cameras"]
            .as_array()
            .and_then(|l| l.iter().find(|c| c["name"] == cam))
            .and_then(|c| c["motion"]["objects"]["looks"].as_u64())
            .unwrap_or(0)
    };
    walking.sim.set_fault(0, candor_camsim::Fault::Garbage);
    std::thread::sleep(Duration::from_secs(3));
    walking.sim.set_fault(0, candor_camsim::Fault::None);
    let before = looks_of("gate");
    wait_for(
        "detection after the garbage",
        Duration::from_secs(30),
        || looks_of("gate") > before + 10,
    );

    // The tree: one whole loop of the clip (30 s) after the motion
    // model's learning, with motion events and not one object event.
    let tree_done = started + Duration::from_secs(42);
    wait_for("tree motion", Duration::from_secs(45), || {
        let (_, _, v) = web.api("GET", "events?camera=tree&kind=motion", None);
        !v["events"].as_array().unwrap().is_empty()
    });
    std::thread::sleep(tree_done.saturating_duration_since(Instant::now()));
    let (_, _, sys) = web.api("GET", "system", None);
    let cams = sys["cameras"].as_array().unwrap();
    let tree_sys = cams.iter().find(|c| c["name"] == "tree").unwrap();
    let looks = tree_sys["motion"]["objects"]["looks"].as_u64().unwrap_or(0);
    assert!(
        looks > 10,
        "the model looked at the waving tree: {tree_sys}"
    );
    assert_eq!(
        tree_sys["motion"]["objects"]["state"], "running",
        "{tree_sys}"
    );
    let (_, _, v) = web.api("GET", "events?camera=tree&kind=object", None);
    assert_eq!(v["events"].as_array().unwrap().len(), 0, "{v}");
    assert!(
        !sub.has(|l| l.starts_with(&format!("{prefix}/events "))
            && l.contains("\"camera\":\"tree\"")
            && l.contains("\"kind\":\"object\"")),
        "no object message for the tree"
    );

    // Person events, one per person crossing where tracking allows: the
    // clip loops every 10 s, so each loop starts its walkers over.
    let (_, _, v) = web.api("GET", "events?camera=gate&kind=object", None);
    let evs = v["events"].as_array().unwrap();
    let gate_sys = cams.iter().find(|c| c["name"] == "gate").unwrap();
    eprintln!(
        "{} object events on gate in {:.0} s: {:?}\ngate: {gate_sys}\ntree: {tree_sys}",
        evs.len(),
        started.elapsed().as_secs_f64(),
        evs.iter()
            .map(|e| (
                e["label"].clone(),
                e["score"].clone(),
                e["start"].clone(),
                e["end"].clone()
            ))
            .collect::<Vec<_>>()
    );
    assert!(evs.iter().all(|e| e["kind"] == "object"));
    // The clip shows four to six people at a time and loops every 10 s
    // (its walkers jump back to their start): at most eight events a loop
    // means walkers are followed, not re-announced at every look.
    let people = evs.iter().filter(|e| e["label"] == "person").count();
    let loops = started.elapsed().as_secs_f64() / 10.0;
    assert!(
        people >= 3 && (people as f64) <= 8.0 * loops.ceil(),
        "{people} person events in {loops:.1} loops"
    );
}
