//! camsim → recorder → export → ffprobe/ffmpeg, for H.264 and H.265, TCP and UDP.

mod common;
use common::*;
use std::time::Duration;

fn record_and_export(clip: &str, codec: &str, tag: &str, transport: &str) {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(clip, 1);
    let cfg = write_config(
        dir.path(),
        "",
        &[("gate", sim.url(0), &format!("transport = \"{transport}\""))],
    );
    let rec = start_recorder(&cfg);
    // Long enough to span several 2 s segments.
    wait_for("9 s of footage", Duration::from_secs(40), || {
        recorded_secs(&cfg, "gate") >= 9.0
    });
    let span = spans(&cfg, "gate")[0];
    // A range that starts and ends mid-GOP and crosses segment boundaries,
    // exported while the recorder is still writing.
    let (from, to) = (span.start + secs(1.37), span.start + secs(7.52));
    let out = dir.path().join("out.mp4");
    export_and_verify(&cfg, "gate", from, to, codec, 10.0, &out);
    assert_eq!(ffprobe(&out).codec_tag, tag);
    let log = rec.stop();
    assert!(!log.contains("ERROR"), "{log}");
    // After a clean stop the index and files agree exactly.
    let check = candor(&["check", "-c", cfg.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

#[test]
fn h264_over_tcp_exports_exact_range_that_ffmpeg_decodes() {
    record_and_export(H264_CLIP, "h264", "avc1", "tcp");
}

#[test]
fn h265_over_tcp_exports_exact_range_as_hvc1() {
    record_and_export(H265_CLIP, "hevc", "hvc1", "tcp");
}

#[test]
fn h264_over_udp_records_and_exports() {
    record_and_export(H264_CLIP, "h264", "avc1", "udp");
}

#[test]
fn empty_range_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(H264_CLIP, 1);
    let cfg = write_config(dir.path(), "", &[("gate", sim.url(0), "")]);
    let rec = start_recorder(&cfg);
    wait_for("footage", Duration::from_secs(30), || {
        recorded_secs(&cfg, "gate") >= 1.0
    });
    let o = candor(&[
        "export",
        "-c",
        cfg.to_str().unwrap(),
        "--camera",
        "gate",
        "--from",
        "2001-01-01T00:00:00Z",
        "--to",
        "2001-01-01T00:05:00Z",
        "-o",
        dir.path().join("x.mp4").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no footage") && err.contains("candor spans"),
        "{err}"
    );
    assert!(!dir.path().join("x.mp4").exists() && !dir.path().join("x.mp4.partial").exists());
    rec.stop();
}

#[test]
fn bad_config_names_field_and_line_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, "[storage]\npath = \"x\"\nmax_bytes = \"20 parsecs\"\n").unwrap();
    let o = candor(&["run", "-c", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("line 3") && err.contains("size"), "{err}");
}

#[test]
fn camera_password_never_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 9: the recorder logs connection failures with the URL.
    let cfg = write_config(
        dir.path(),
        "",
        &[(
            "gate",
            "rtsp://admin:hunter2secret@127.0.0.1:9/cam0".into(),
            "",
        )],
    );
    let rec = start_recorder(&cfg);
    std::thread::sleep(Duration::from_secs(3));
    let log = rec.stop();
    assert!(log.contains("rtsp://admin:***@127.0.0.1:9/cam0"), "{log}");
    assert!(!log.contains("hunter2secret"), "{log}");
}
