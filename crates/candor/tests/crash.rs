//! kill -9 the recorder repeatedly mid-stream: everything received before each
//! kill (minus about a second) must survive, export and decode, and the index
//! must agree with the files after recovery.

mod common;
use candor_media::Time90k;
use common::*;
use std::time::Duration;

#[test]
fn kill_9_loses_at_most_a_second_and_never_corrupts_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(H264_CLIP, 2);
    let cfg = write_config(
        dir.path(),
        "",
        &[("a", sim.url(0), ""), ("b", sim.url(1), "")],
    );
    let mut kills: Vec<Time90k> = Vec::new();
    for round in 0..4 {
        let rec = start_recorder(&cfg);
        let before = recorded_secs(&cfg, "a");
        wait_for("new footage", Duration::from_secs(30), || {
            recorded_secs(&cfg, "a") >= before + 3.0 + round as f64 * 0.7
        });
        // Kill at varying points within segments and GOPs.
        std::thread::sleep(Duration::from_millis(137 * round as u64));
        let t = Time90k::now();
        rec.kill9();
        kills.push(t);
        // The index is readable even before recovery runs (another process may export now).
        assert!(!spans(&cfg, "a").is_empty());
    }
    // A final clean run performs recovery and records a little more.
    let rec = start_recorder(&cfg);
    wait_for("footage after restart", Duration::from_secs(30), || {
        spans(&cfg, "a")
            .last()
            .is_some_and(|s| s.end > *kills.last().unwrap() + secs(2.0))
    });
    let log = rec.stop();
    assert!(log.contains("recovered after an unclean stop"), "{log}");
    let check = candor(&["check", "-c", cfg.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "index inconsistent after recovery: {}",
        String::from_utf8_lossy(&check.stdout)
    );

    for cam in ["a", "b"] {
        let spans = spans(&cfg, cam);
        for (i, &k) in kills.iter().enumerate() {
            // The run killed at k began after the previous kill (or at the start).
            let span = spans
                .iter()
                .find(|s| s.start < k && s.end > k - secs(5.0))
                .unwrap_or_else(|| {
                    panic!("camera {cam}: no span before kill {i} at {k}: {spans:?}")
                });
            let lost = (k - span.end).as_secs_f64();
            eprintln!("camera {cam}: kill {i}: footage ends {lost:.3} s before the kill");
            assert!(
                lost <= 1.0,
                "camera {cam}: kill {i} lost {lost:.3} s of footage (span ends {}, killed {k})",
                span.end
            );
            // Everything up to the kill minus a second exports and decodes.
            let from = span.start.max(k - secs(2.5));
            let to = k - secs(1.0);
            let out = dir.path().join(format!("{cam}-{i}.mp4"));
            export_and_verify(&cfg, cam, from, to, "h264", 10.0, &out);
        }
    }
}
