//! The air-gap claim, checked on the wire. Each recorder runs in its own
//! network namespace (`ip netns`), joined to the host by a veth pair whose
//! host end is the only way out, with a default route through it, so any
//! packet the recorder sends anywhere (a DNS lookup, a "phone home", a time
//! server) crosses the veth. tcpdump records the host end for the whole run.
//!
//! - Cloud off (the default): the only connections the recorder opens are to
//!   its camera.
//! - Cloud on and paired: the cloud's address is added, nothing else.
//!
//! The test writes what it saw, by role, to `docs/connectivity.md` when
//! `CANDOR_WRITE_DOCS=1`, and otherwise fails if the file says otherwise.
//! Needs root (namespaces, veth, packet capture), as in CI.

mod common;
use common::cloud::*;
use common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn run(cmd: &[&str]) {
    let o = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A namespace `ns` whose interface has `10.231.<n>.2/30`, the host end
/// `10.231.<n>.1/30`; the default route leads out through the host end.
struct Netns {
    ns: String,
    host_if: String,
    host_ip: String,
    ns_ip: String,
}

impl Netns {
    /// Takes the first `10.231.<n>.0/30` no interface on the host uses (a
    /// run killed half-way may have left one behind: a second route to the
    /// same subnet would swallow the replies).
    fn new() -> Netns {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let used = String::from_utf8_lossy(
            &Command::new("ip")
                .args(["-br", "addr"])
                .output()
                .unwrap()
                .stdout,
        )
        .into_owned();
        let n = (1..=250u8)
            .find(|n| !used.contains(&format!("10.231.{n}.1/")))
            .expect("a free 10.231.x.0/30 subnet");
        let tag = format!("{}x{n}", std::process::id() % 100_000);
        let (ns, host_if, ns_if) = (
            format!("candor-{tag}"),
            format!("vh{tag}"),
            format!("vr{tag}"),
        );
        let (host_ip, ns_ip) = (format!("10.231.{n}.1"), format!("10.231.{n}.2"));
        run(&["ip", "netns", "add", &ns]);
        let me = Netns {
            ns: ns.clone(),
            host_if: host_if.clone(),
            host_ip: host_ip.clone(),
            ns_ip: ns_ip.clone(),
        };
        run(&[
            "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ]);
        run(&["ip", "link", "set", &ns_if, "netns", &ns]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{host_ip}/30"),
            "dev",
            &host_if,
        ]);
        run(&["ip", "link", "set", &host_if, "up"]);
        let inside = |args: &[&str]| {
            let mut v = vec!["ip", "netns", "exec", &ns];
            v.extend_from_slice(args);
            run(&v);
        };
        // No IPv6: its neighbour discovery is the kernel talking, not Candor,
        // and would only blur the capture.
        inside(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        inside(&["ip", "addr", "add", &format!("{ns_ip}/30"), "dev", &ns_if]);
        inside(&["ip", "link", "set", "lo", "up"]);
        inside(&["ip", "link", "set", &ns_if, "up"]);
        inside(&["ip", "route", "add", "default", "via", &host_ip]);
        me
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    fn start(iface: &str, file: PathBuf) -> Capture {
        let child = Command::new("tcpdump")
            .args(["-i", iface, "-n", "-U", "-w"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tcpdump is needed for the air-gap test: apt-get install tcpdump");
        std::thread::sleep(Duration::from_millis(800));
        Capture { child, file }
    }

    /// Stops (SIGINT flushes the file) and returns the packets as text.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let o = Command::new("tcpdump")
            .args(["-n", "-r"])
            .arg(&self.file)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

/// Connections and datagrams the namespace started: TCP SYNs (without ACK)
/// and any UDP or ICMP from its address, as `proto ip:port`.
fn outbound(packets: &str, ns_ip: &str) -> (BTreeSet<String>, usize) {
    let mut out = BTreeSet::new();
    let mut from_ns = 0;
    for l in packets.lines() {
        let Some(rest) = l.split(" IP ").nth(1) else {
            continue;
        };
        let mut it = rest.split_whitespace();
        let (Some(src), Some(">"), Some(dst)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if !src.starts_with(&format!("{ns_ip}.")) && src != ns_ip {
            continue;
        }
        from_ns += 1;
        let dst = dst.trim_end_matches(':');
        let (ip, port) = dst.rsplit_once('.').unwrap_or((dst, ""));
        if l.contains("Flags [S]") {
            out.insert(format!("tcp {ip}:{port}"));
        } else if l.contains("UDP") || l.contains(" udp ") || l.contains("domain") || port == "53" {
            out.insert(format!("udp {ip}:{port}"));
        } else if l.contains("ICMP") {
            out.insert(format!("icmp {ip}"));
        }
    }
    (out, from_ns)
}

fn openssl_cert(dir: &Path, ip: &str) {
    std::fs::create_dir_all(dir).unwrap();
    run(&[
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=candor-test",
        "-addext",
        &format!("subjectAltName=IP:{ip}"),
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-keyout",
        dir.join("key.pem").to_str().unwrap(),
        "-out",
        dir.join("cert.pem").to_str().unwrap(),
    ]);
}

/// `candor camsim` in the host namespace, on the host end of the veth.
fn camsim_on(ip: &str) -> (Child, String) {
    use std::io::BufRead;
    let mut child = Command::new(bin())
        .args(["camsim", "--listen", &format!("{ip}:0"), "--cameras", "1"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let l = lines.next().expect("camsim output").unwrap();
        if let Some(r) = l.split("rtsp://").nth(1) {
            break format!("rtsp://{}", r.split_whitespace().next().unwrap());
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

struct Outcome {
    seen: BTreeSet<String>,
    camera: String,
    cloud: Option<String>,
    packets_from_recorder: usize,
}

fn scenario(dir: &Path, cloud_on: bool, secs: u64) -> Outcome {
    let net = Netns::new();
    let (mut cam, url) = camsim_on(&net.host_ip);
    let camera = url
        .trim_start_matches("rtsp://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    // The recorder's web server listens inside the namespace, on its veth
    // address, with a certificate for it (the test pairs through it).
    openssl_cert(&dir.join("data/tls"), &net.ns_ip);
    let cfg = write_config(dir, "", &[("gate", url.clone(), "")]);
    let mut text = std::fs::read_to_string(&cfg).unwrap().replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"{}:0\"", net.ns_ip),
    );
    let cloud = if cloud_on {
        let cdir = dir.join("cloud");
        openssl_cert(&cdir.join("cloud-data/tls"), &net.host_ip);
        let c = CloudProc::start_on(&cdir, &net.host_ip, None, "");
        let addr = c
            .base
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_string();
        text += &format!(
            "\n[cloud]\naddress = \"{addr}\"\nca = \"{}\"\nname = \"Air gap\"\n",
            c.cert.display()
        );
        Some(c)
    } else {
        None
    };
    std::fs::write(&cfg, text).unwrap();
    let o = user_add(&cfg, "admin", "admin", "admin password 1");
    assert!(o.status.success());
    let capture = Capture::start(&net.host_if, dir.join("capture.pcap"));
    let log = dir.join("recorder.log");
    let child = Command::new("ip")
        .args(["netns", "exec", &net.ns, bin(), "run", "-c"])
        .arg(&cfg)
        .env("RUST_LOG", "info,retina=warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let rec = RecorderProc { child, log };
    let start = Instant::now();
    if let Some(c) = &cloud {
        let owner = Owner::register(c, dir, "owner@example.com");
        let web = Web::login(&rec, dir, "admin", "admin password 1");
        pair_web(&web, &owner);
        // An alarm too, so the capture covers every kind of cloud traffic.
        wait_for("the site online", Duration::from_secs(20), || {
            owner.sites().iter().any(|s| s["online"] == true)
        });
    }
    let t = Instant::now();
    while recorded_secs(&cfg, "gate") < 2.0 {
        if t.elapsed() > Duration::from_secs(30) {
            let log = rec.log_text();
            panic!(
                "no footage from {url}:\n{log}\ncapture:\n{}",
                capture.stop()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    while start.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(500));
    }
    let log_text = rec.stop();
    let packets = capture.stop();
    let _ = cam.kill();
    let _ = cam.wait();
    let (seen, packets_from_recorder) = outbound(&packets, &net.ns_ip);
    assert!(
        packets_from_recorder > 0,
        "nothing captured:\n{packets}\n{log_text}"
    );
    Outcome {
        seen,
        camera,
        cloud: cloud.as_ref().map(|c| {
            c.base
                .trim_start_matches("https://")
                .trim_end_matches('/')
                .to_string()
        }),
        packets_from_recorder,
    }
}

/// The observed destinations, by role; anything unexpected by address.
fn roles(o: &Outcome) -> Vec<String> {
    let mut r: Vec<String> = o
        .seen
        .iter()
        .map(|s| {
            if *s == format!("tcp {}", o.camera) {
                "TCP to the camera's RTSP address (`[[cameras]] url`)".to_string()
            } else if o.cloud.as_ref().is_some_and(|c| *s == format!("tcp {c}")) {
                "TCP to the cloud (`[cloud] address`; TLS 1.3, one connection at a time)"
                    .to_string()
            } else {
                format!("UNEXPECTED: {s}")
            }
        })
        .collect();
    // By role, not by port number, so the document is stable.
    r.sort();
    r
}

#[test]
fn recorder_connects_only_to_its_cameras_and_the_paired_cloud() {
    assert!(
        Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout == b"0\n")
            .unwrap_or(false),
        "the air-gap test needs root (network namespaces and packet capture), as in CI"
    );
    let secs: u64 = std::env::var("CANDOR_AIRGAP_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (p1, p2) = (d1.path().to_owned(), d2.path().to_owned());
    let off = std::thread::spawn(move || scenario(&p1, false, secs));
    let on = scenario(&p2, true, secs);
    let off = off.join().unwrap();
    let (r_off, r_on) = (roles(&off), roles(&on));
    eprintln!(
        "cloud off: {:?} ({} packets from the recorder)",
        off.seen, off.packets_from_recorder
    );
    eprintln!(
        "cloud on: {:?} ({} packets from the recorder)",
        on.seen, on.packets_from_recorder
    );
    assert!(
        r_off
            .iter()
            .chain(&r_on)
            .all(|r| !r.starts_with("UNEXPECTED")),
        "off: {r_off:?}\non: {r_on:?}"
    );
    assert_eq!(r_off.len(), 1, "cloud off: the camera only: {r_off:?}");
    assert_eq!(
        r_on.len(),
        2,
        "cloud on: the camera and the cloud: {r_on:?}"
    );

    let list = |r: &[String]| r.iter().map(|x| format!("- {x}\n")).collect::<String>();
    let doc = format!(
        "# Outbound connections of the Candor recorder\n\n\
         Generated by `crates/candor/tests/airgap.rs` (run with `CANDOR_WRITE_DOCS=1` to\n\
         rewrite it; every other run fails if the recorder's behaviour no longer\n\
         matches this file).\n\n\
         How it is measured: the recorder runs in its own network namespace whose\n\
         only way out is a veth pair with a default route through it; tcpdump\n\
         captures the host end for the whole run (120 s by default,\n\
         `CANDOR_AIRGAP_SECS`). Every TCP connection the recorder opens (SYN) and\n\
         every UDP or ICMP packet it sends is listed below by role. Camera and\n\
         cloud addresses are IP literals, so no DNS is involved; with host\n\
         names, the system resolver adds lookups to the configured DNS server.\n\n\
         ## Cloud off (the default)\n\n{}\n\
         Nothing else: no DNS, no NTP, no update check, no telemetry.\n\
         Integrations the owner configures (MQTT broker, webhook URLs, ONVIF\n\
         event subscriptions of the cameras) add exactly those addresses.\n\n\
         ## Cloud on and paired\n\n{}\n\
         The cloud is reached only while paired, or while an admin pairs. What\n\
         is sent over it is in the egress ledger (`candor egress`, and the\n\
         Cloud page of the web app).\n\n\
         ## Remote access on, with a cloud that serves its zone's DNS\n\n\
         Not measured here (remote access is off in this run); by design and\n\
         in `crates/candor/tests/remote.rs`:\n\n\
         - TCP to the ACME CA (`[cloud] acme_directory`, Let's Encrypt by\n  \
         default; through `[cloud] proxy` if set): a few HTTPS requests per\n  \
         certificate, at first and then about every 60 days, and retries after\n  \
         a failure (1 minute, doubling to 6 hours). Each is an egress-ledger\n  \
         row of kind `acme`. A cloud that does not serve the zone's DNS causes\n  \
         none; `acme_directory = \"off\"` stops them.\n\n\
         Remote connections themselves arrive over the cloud link: no other\n\
         outbound connection.\n\n\
         ## Update checks on (`[updates] repository` set; off by default)\n\n\
         Not measured here (the air-gap run has no `[updates]`); by design and in\n\
         `crates/candor/tests/update.rs`\n\
         (`an_online_check_finds_the_release_and_every_request_is_in_the_ledger`):\n\n\
         - TCP to the repository's host (`[updates] repository`, http or https):\n  \
         at the recorder's start and every `check_every` (6 h by default), a few\n  \
         GET requests for the signed metadata (`timestamp.json`, the snapshot\n  \
         and targets it names, and a probe for the next root). Each is an\n  \
         egress-ledger row of kind `update` (\"update check\"), written before it\n  \
         is sent. The check downloads no release.\n\
         - When an install runs (an admin's or a technician's **Install** or\n  \
         schedule on the System page, or `[updates] window`; only under `candor\n  \
         supervise`): the same metadata requests, then one GET for the release\n  \
         binary under `targets/` (tens of MB), each an egress-ledger row of kind\n  \
         `update` (\"update download\") written before it is sent\n  \
         (`an_admin_installs_the_offered_release_from_the_system_page` checks\n  \
         the download's row).\n",
        list(&r_off),
        list(&r_on)
    );
    let path = workspace().join("docs/connectivity.md");
    if std::env::var("CANDOR_WRITE_DOCS").is_ok() {
        std::fs::write(&path, &doc).unwrap();
    } else {
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            committed, doc,
            "docs/connectivity.md is out of date; rerun with CANDOR_WRITE_DOCS=1 and review the change"
        );
    }
}
