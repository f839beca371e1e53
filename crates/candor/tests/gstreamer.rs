//! Recording from an RTSP server we did not write: GStreamer's
//! gst-rtsp-server (Debian: gstreamer1.0-rtsp, gir1.2-gst-rtsp-server-1.0,
//! python3-gi, gstreamer1.0-plugins-good/-bad).

mod common;
use common::cloud::free_port;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

struct Gst(std::process::Child);
impl Drop for Gst {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn gst_server(clip: &str, codec: &str) -> (Gst, u16) {
    let port = free_port();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/gst_rtsp_server.py"
    );
    let mut child = Command::new("/usr/bin/python3")
        .args([script, &port.to_string(), clip, codec])
        .stdout(Stdio::piped())
        .spawn()
        .expect("GStreamer RTSP server needs /usr/bin/python3 with python3-gi (see .ci/run)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(
        line.trim(),
        "ready",
        "gst-rtsp-server did not start (install gstreamer1.0-rtsp, gir1.2-gst-rtsp-server-1.0, python3-gi)"
    );
    (Gst(child), port)
}

fn record_from_gstreamer(clip: &str, codec: &str, probe_codec: &str) {
    let (_gst, port) = gst_server(clip, codec);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "",
        &[("gst", format!("rtsp://127.0.0.1:{port}/cam"), "")],
    );
    let rec = start_recorder(&cfg);
    wait_for(
        "6 s of footage from gst-rtsp-server",
        Duration::from_secs(40),
        || recorded_secs(&cfg, "gst") >= 6.0,
    );
    let s = spans(&cfg, "gst")[0];
    let out = dir.path().join("gst.mp4");
    export_and_verify(
        &cfg,
        "gst",
        s.start + secs(0.55),
        s.start + secs(5.25),
        probe_codec,
        10.0,
        &out,
    );
    rec.stop();
}

#[test]
fn records_h264_from_gstreamer_rtsp_server() {
    record_from_gstreamer(H264_CLIP, "h264", "h264");
}

#[test]
fn records_h265_from_gstreamer_rtsp_server() {
    record_from_gstreamer(H265_CLIP, "h265", "hevc");
}
