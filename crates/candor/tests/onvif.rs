//! ONVIF end to end against the simulator (`candor camsim --onvif`):
//! WS-Discovery finds the cameras, WS-Security digests (with the camera's
//! clock an hour off) get their profiles and RTSP URIs, a wrong password is
//! refused, and the URI found records.

mod common;
use common::*;
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

struct Camsim {
    child: std::process::Child,
    discovery: String,
}

impl Drop for Camsim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn camsim_with_onvif(cameras: usize, password: &str, clock_offset: i64) -> Camsim {
    let mut child = Command::new(bin())
        .args([
            "camsim",
            "--listen",
            "127.0.0.1:0",
            "--cameras",
            &cameras.to_string(),
        ])
        .args(["--onvif", "127.0.0.1:0", "--discovery", "127.0.0.1:0"])
        .args(["--onvif-clock-offset", &clock_offset.to_string()])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let discovery = loop {
        let line = lines.next().expect("camsim output").unwrap();
        if let Some(rest) = line.split("WS-Discovery on udp://").nth(1) {
            break rest.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Camsim { child, discovery }
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
