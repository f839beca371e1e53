//! The web app end to end in real headless Chromium (Debian's `chromium`,
//! driven by Playwright's `playwright-core` from `e2e/`): first-run setup →
//! live view plays, survives a camera reboot and a dropped connection →
//! playback from a chosen instant → export downloads an
//! MP4 that ffprobe accepts → a viewer limited to one camera sees only that
//! camera, in the UI and the API → the events page lists motion events with
//! thumbnails and a click plays the footage → the admin enrols TOTP by QR code.
//! Screenshots go to `artifacts/screenshots/`.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[test]
fn web_app_end_to_end_in_headless_chromium() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Debian's chromium: apt-get install chromium"
    );
    ensure_playwright();
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(H264_CLIP, 2);
    let hevc = Sim::start(H265_CLIP, 1);
    // An ONVIF camera for the "Add camera" page to discover and add.
    let onvif_cam = camsim_with_onvif(1, "cam pass 1", 0);
    let cfg = write_config(
        dir.path(),
        "",
        &[
            ("gate", sim.url(0), ""),
            ("yard", sim.url(1), "[cameras.motion]\nenabled = true\n"),
            ("door", hevc.url(0), ""),
        ],
    );
    allow_loopback_cameras(&cfg);
    let rec = start_recorder(&cfg);
    let base = web_url(&rec);
    wait_for("the setup link", Duration::from_secs(10), || {
        rec.log_text().contains("#setup=")
    });
    let token = rec
        .log_text()
        .split("#setup=")
        .nth(1)
        .unwrap()
        .split(char::is_whitespace)
        .next()
        .unwrap()
        .to_string();
    wait_for("footage", Duration::from_secs(40), || {
        recorded_secs(&cfg, "gate") >= 8.0 && recorded_secs(&cfg, "yard") >= 8.0
    });
    let shots = workspace().join("artifacts/screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let download = dir.path().join("download.mp4");
    let mut node = Command::new("node")
        .arg(workspace().join("e2e/app.mjs"))
        .env("CANDOR_URL", &base)
        .env("SETUP_TOKEN", &token)
        .env("SHOTS", &shots)
        .env("DOWNLOAD", &download)
        .env("ONVIF_PROBE", &onvif_cam.discovery)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = node.stderr.take().unwrap();
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    // The script asks for camera faults on stdout; its last line is the result.
    let mut out = String::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(node.stdout.take().unwrap())) {
        let line = line.unwrap();
        match line.as_str() {
            "FAULT offline gate" => sim.sim.set_fault(0, candor_camsim::Fault::Offline),
            "FAULT clear gate" => sim.sim.set_fault(0, candor_camsim::Fault::None),
            _ => {}
        }
        out.push_str(&line);
        out.push('\n');
    }
    let status = node.wait().unwrap();
    let err = err_thread.join().unwrap();
    println!("{out}\n{err}");
    assert!(
        status.success(),
        "browser run failed:\n{out}\n{err}\n{}",
        rec.log_text()
    );
    let result: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();

    // The zone drawn in the browser went into candor.toml, readable by the
    // recorder's own config parser, next to what was there before.
    let cfg_now = candor_recorder::Config::load(&cfg).unwrap();
    let gate = cfg_now
        .cameras
        .iter()
        .find(|c| c.name.get_ref().0 == "gate")
        .unwrap();
    assert_eq!(gate.motion.zones.len(), 1);
    assert_eq!(gate.motion.zones[0].name.0, "path");
    assert_eq!(result["snapshot_size"], serde_json::json!([768, 576]));
    // The camera added in the browser is in candor.toml and recording.
    let porch = cfg_now
        .cameras
        .iter()
        .find(|c| c.name.get_ref().0 == "porch")
        .unwrap();
    assert_eq!(porch.url.password.as_deref(), Some("cam pass 1"));
    assert!(porch.onvif.is_some() && porch.motion.enabled);
    wait_for(
        "footage of the added camera",
        Duration::from_secs(20),
        || recorded_secs(&cfg, "porch") >= 2.0,
    );

    // The downloaded export is a real MP4 of the selected range.
    let p = ffprobe(&download);
    assert_eq!(p.codec, "h264");
    let want = result["export_secs"].as_f64().unwrap();
    assert!(
        (p.duration - want).abs() < 0.2,
        "export {} s, selected {want} s",
        p.duration
    );
    ffmpeg_decodes(&download).unwrap();
    // The enrolment QR code, as Chromium drew it, decodes (zbarimg, an
    // independent decoder) to an otpauth URI with the secret the page showed.
    let o = Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(shots.join("totp-qr.png"))
        .output()
        .expect("zbarimg is needed: apt-get install zbar-tools");
    let uri = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let secret = result["totp_secret"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/Candor:admin?secret=") && uri.contains(secret),
        "QR decodes to {uri:?}"
    );
    let log = rec.stop();
    assert!(
        !log.contains("viewer password"),
        "passwords are never logged"
    );
    assert!(!log.contains(secret), "TOTP secrets are never logged");
}
