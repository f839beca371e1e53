//! Motion detection on real footage (OpenCV's sample clips, re-encoded like
//! camera streams): people walking must raise events, waving leaves under a
//! mask must not, and zones must decide where motion counts.

use candor_motion::{Polygon, ScanEvent, ScanStats, Scanner, Settings, Zone};

/// (start s, end s, peak score, zone) per event.
type Events = Vec<(f64, f64, f32, Option<String>)>;

fn clip(name: &str) -> (candor_media::mp4::read::Clip, Vec<u8>) {
    let path = format!("{}/../../assets/clips/{name}", env!("CARGO_MANIFEST_DIR"));
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    (candor_media::mp4::read::parse(&data).unwrap(), data)
}

/// Runs a clip through the scanner at 5 fps; returns (start s, end s, score, zone).
fn scan(name: &str, settings: Settings) -> (Events, ScanStats) {
    scan_until(name, settings, f64::INFINITY)
}

fn scan_until(name: &str, settings: Settings, until_s: f64) -> (Events, ScanStats) {
    let (c, data) = clip(name);
    let mut s = Scanner::new(&c.config, settings, 5.0, 90_000 * 2).unwrap();
    let mut out = Vec::new();
    let mut open = None;
    let handle = |e: ScanEvent, open: &mut Option<(f64, f32)>, out: &mut Vec<_>| match e {
        ScanEvent::Start {
            at_90k,
            score,
            picture,
            ..
        } => {
            assert_eq!(
                (picture.width, picture.height),
                (usize::from(c.width), usize::from(c.height))
            );
            *open = Some((at_90k as f64 / 90_000.0, score));
        }
        ScanEvent::End {
            at_90k,
            peak_score,
            zone,
            ..
        } => {
            let (start, _) = open.take().expect("end without start");
            out.push((start, at_90k as f64 / 90_000.0, peak_score, zone));
        }
    };
    for smp in c
        .samples
        .iter()
        .filter(|s| (s.time_90k as f64) < until_s * 90_000.0)
    {
        let b = &data[smp.offset as usize..smp.offset as usize + smp.size as usize];
        if let Some(e) = s.push(smp.time_90k, b, smp.key).unwrap() {
            handle(e, &mut open, &mut out);
        }
    }
    if let Some(e) = s.finish() {
        handle(e, &mut open, &mut out);
    }
    (out, s.stats())
}

fn rect(x0: f32, y0: f32, x1: f32, y1: f32) -> Polygon {
    Polygon::new(vec![(x0, y0), (x1, y0), (x1, y1), (x0, y1)]).unwrap()
}

#[test]
fn people_walking_raise_an_event() {
    let (events, stats) = scan("vtest-h264-10s.mp4", Settings::default());
    eprintln!("vtest: {events:?} {stats:?}");
    assert_eq!(stats.decode_errors, 0);
    assert_eq!(stats.decoded, 100, "every frame decoded");
    assert!(
        (45..=55).contains(&stats.analysed),
        "analysed at 5 fps: {}",
        stats.analysed
    );
    assert!(!events.is_empty(), "no event for people walking");
    // The model learns for 3 s, then the walkers are seen at once.
    assert!(events[0].0 < 4.5, "first event too late: {events:?}");
    assert!(events[0].2 > 0.003, "score {}", events[0].2);
}

/// The tree clip: leaves wave in the wind for 23 s, then a hand enters
/// from the top right (about 23.5 s) and sweeps down to the left edge.
#[test]
fn waving_tree_under_a_mask_raises_nothing() {
    // The tree fills the frame right of the window frame at the left edge.
    let settings = Settings {
        masks: vec![rect(0.12, 0.0, 1.0, 1.0)],
        ..Default::default()
    };
    let (events, stats) = scan_until("tree-h264-30s.mp4", settings, 23.0);
    eprintln!("tree masked: {events:?} {stats:?}");
    assert!(stats.analysed > 110);
    assert_eq!(events, []);
}

#[test]
fn the_model_learns_the_tree_but_sees_the_hand() {
    // No mask at all: 20 s of waving leaves must not fire (the per-pixel
    // deviation learns them during the first seconds), the hand must.
    let (events, _) = scan("tree-h264-30s.mp4", Settings::default());
    eprintln!("tree unmasked: {events:?}");
    assert_eq!(events.len(), 1, "{events:?}");
    assert!((23.0..25.0).contains(&events[0].0), "{events:?}");
    assert!(events[0].2 > 0.05, "the hand is large: {events:?}");
}

#[test]
fn zones_decide_where_motion_counts() {
    // vtest: people walk across the lower two thirds; nobody is in the sky
    // strip at the very top.
    let zone = |name: &str, p: Polygon| Zone {
        name: name.into(),
        polygon: p,
    };
    let (top, _) = scan(
        "vtest-h264-10s.mp4",
        Settings {
            zones: vec![zone("top", rect(0.0, 0.0, 1.0, 0.08))],
            ..Default::default()
        },
    );
    assert_eq!(top, [], "motion counted in an empty zone");
    let (walk, _) = scan(
        "vtest-h264-10s.mp4",
        Settings {
            zones: vec![
                zone("top", rect(0.0, 0.0, 1.0, 0.08)),
                zone("street", rect(0.0, 0.3, 1.0, 1.0)),
            ],
            ..Default::default()
        },
    );
    assert!(!walk.is_empty());
    assert!(
        walk.iter().all(|e| e.3.as_deref() == Some("street")),
        "{walk:?}"
    );
}
