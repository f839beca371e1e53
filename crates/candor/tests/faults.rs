//! Cameras that disappear, stall or send garbage; disk budgets and a full disk.

mod common;
use candor_camsim::Fault;
use candor_media::Time90k;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

fn dir_bytes(p: &std::path::Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).unwrap().flatten() {
        let m = e.metadata().unwrap();
        n += if m.is_dir() {
            dir_bytes(&e.path())
        } else {
            m.len()
        };
    }
    n
}

#[test]
fn camera_that_goes_away_is_reconnected_soon_after_it_returns_and_the_gap_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(H264_CLIP, 1);
    let cfg = write_config(dir.path(), "", &[("gate", sim.url(0), "")]);
    let rec = start_recorder(&cfg);
    wait_for("footage", Duration::from_secs(30), || {
        recorded_secs(&cfg, "gate") >= 3.0
    });
    sim.sim.set_fault(0, Fault::Offline);
    let off = Time90k::now();
    std::thread::sleep(Duration::from_secs(6));
    sim.sim.set_fault(0, Fault::None);
    let back = Instant::now();
    wait_for(
        "a second span after the camera returns",
        Duration::from_secs(15),
        || spans(&cfg, "gate").len() >= 2,
    );
    let reconnect = back.elapsed().as_secs_f64();
    eprintln!("recording resumed {reconnect:.2} s after the camera returned");
    assert!(reconnect < 7.0, "took {reconnect:.1} s to resume");
    let s = spans(&cfg, "gate");
    let gap = (s[1].start - s[0].end).as_secs_f64();
    assert!(
        (5.0..14.0).contains(&gap),
        "gap {gap:.2} s should cover the 6 s outage: {s:?}"
    );
    assert!(
        (s[0].end - off).as_secs_f64().abs() < 1.0,
        "first span ends when the camera went away"
    );
    rec.stop();
}

#[test]
fn garbage_and_stalls_cause_reconnects_not_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(H264_CLIP, 2);
    let cfg = write_config(
        dir.path(),
        "",
        &[("junk", sim.url(0), ""), ("stall", sim.url(1), "")],
    );
    let rec = start_recorder(&cfg);
    wait_for("footage", Duration::from_secs(30), || {
        recorded_secs(&cfg, "junk") >= 2.0 && recorded_secs(&cfg, "stall") >= 2.0
    });
    sim.sim.set_fault(0, Fault::Garbage);
    sim.sim.set_fault(1, Fault::Stall);
    // stall_timeout is 3 s in the test config.
    std::thread::sleep(Duration::from_secs(5));
    sim.sim.set_fault(0, Fault::None);
    sim.sim.set_fault(1, Fault::None);
    wait_for(
        "recording to resume on both",
        Duration::from_secs(20),
        || spans(&cfg, "junk").len() >= 2 && spans(&cfg, "stall").len() >= 2,
    );
    let before = recorded_secs(&cfg, "junk");
    wait_for("more footage", Duration::from_secs(10), || {
        recorded_secs(&cfg, "junk") > before + 2.0
    });
    let log = rec.stop();
    assert!(log.contains("stalled"), "stall must be detected: {log}");
    let check = candor(&["check", "-c", cfg.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    // Footage on both sides of the faults still exports cleanly.
    for cam in ["junk", "stall"] {
        for (i, s) in spans(&cfg, cam).iter().enumerate() {
            let out = dir.path().join(format!("{cam}-{i}.mp4"));
            export_and_verify(&cfg, cam, s.start, s.end, "h264", 10.0, &out);
        }
        // Across the gap, the file keeps wall-clock duration (last frame held).
        let s = spans(&cfg, cam);
        let out = dir.path().join(format!("{cam}-all.mp4"));
        let o = export(&cfg, cam, s[0].start, s.last().unwrap().end, &out);
        assert!(String::from_utf8_lossy(&o.stderr).contains("gap in footage"));
        let p = ffprobe(&out);
        assert!(
            (p.duration - (s.last().unwrap().end - s[0].start).as_secs_f64()).abs() < 0.11,
            "{p:?}"
        );
        if let Err(e) = ffmpeg_decodes(&out) {
            // Keep the file so a failure can be studied (this is how the
            // null muxer's time-base problem in `ffmpeg_decodes` was found).
            let keep = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../artifacts/failed-exports");
            let _ = std::fs::create_dir_all(&keep);
            let _ = std::fs::copy(&out, keep.join(format!("{cam}-all.mp4")));
            panic!(
                "{cam} across the gap (file kept in {}): {e}",
                keep.display()
            );
        }
    }
}

#[test]
fn budgets_delete_oldest_footage_and_recording_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(H264_CLIP, 2);
    // The clip is ~1.2 Mbit/s: 150 kB/s per camera.
    let cfg = write_config(
        dir.path(),
        "max_bytes = \"2MB\"",
        &[
            ("a", sim.url(0), "max_bytes = \"600kB\""),
            ("b", sim.url(1), ""),
        ],
    );
    let rec = start_recorder(&cfg);
    let t0 = Time90k::now();
    // Retention runs every 10 s; give it two passes after the budget is exceeded.
    std::thread::sleep(Duration::from_secs(28));
    let (a, b) = (spans(&cfg, "a"), spans(&cfg, "b"));
    assert!(
        a[0].start > t0 + secs(10.0),
        "camera a's oldest footage should be gone: {a:?}"
    );
    assert!(
        Time90k::now() - a.last().unwrap().end < secs(3.0),
        "camera a still recording"
    );
    assert!(
        Time90k::now() - b.last().unwrap().end < secs(3.0),
        "camera b still recording"
    );
    let used = dir_bytes(&dir.path().join("data/segments"));
    // Budget + what may be written between passes (two open segments, 10 s of both cameras).
    assert!(used < 2_000_000 + 3_500_000, "used {used} bytes");
    let log = rec.stop();
    assert!(log.contains("retention freed space"), "{log}");
}

/// A tmpfs too small for the footage: writes hit ENOSPC; the recorder must free
/// space itself and keep recording. Needs root to mount (CI runs as root).
#[test]
fn full_disk_frees_space_and_keeps_recording() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("data");
    std::fs::create_dir_all(&mnt).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=6m", "tmpfs"])
        .arg(&mnt)
        .status();
    if !ok.is_ok_and(|s| s.success()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to mount a tmpfs for this test"
        );
        eprintln!("SKIPPED: can't mount tmpfs (not root?)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let sim = Sim::start(H264_CLIP, 2);
    // No reserve: the disk really fills up and writes fail.
    let cfg = write_config(
        dir.path(),
        "min_free = \"0\"",
        &[("a", sim.url(0), ""), ("b", sim.url(1), "")],
    );
    let rec = start_recorder(&cfg);
    std::thread::sleep(Duration::from_secs(30)); // ~9 MB offered to a 6 MB disk
    let a = spans(&cfg, "a");
    assert!(
        Time90k::now() - a.last().unwrap().end < secs(3.0),
        "still recording after the disk filled: {a:?}"
    );
    let log = rec.stop();
    assert!(
        log.contains("write failed") || log.contains("can't open a new segment"),
        "disk never filled? {log}"
    );
    assert!(log.contains("retention freed space"), "{log}");
    let check = candor(&["check", "-c", cfg.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}
