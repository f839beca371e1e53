//! The README's first command: `candor demo` records simulated cameras with no
//! setup and tells the user what it is doing and how to export.

mod common;
use common::*;

#[test]
fn demo_records_four_cameras_and_explains_how_to_export() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo-data");
    let out = std::process::Command::new(bin())
        .args(["demo", "--port", "0", "--seconds", "12", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "camera simulator: rtsp://127.0.0.1:",
        "recording into:",
        "export -c",
        "cam3",
        "MB written",
        "recorder stopped cleanly",
    ] {
        assert!(err.contains(needle), "demo output lacks {needle:?}:\n{err}");
    }
    let cfg = data.join("candor.toml");
    for cam in ["cam0", "cam1", "cam2", "cam3"] {
        let secs = recorded_secs(&cfg, cam);
        assert!(secs > 9.0, "{cam} recorded only {secs:.1} s");
    }
}
