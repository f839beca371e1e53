//! Helpers for the end-to-end tests: the real `candor` binary, the camera
//! simulator in-process (so tests can inject faults), and ffprobe/ffmpeg as
//! independent judges of the exported files.
#![allow(dead_code)]

pub mod cloud;

use candor_camsim::{CamSim, Source};
use candor_media::{Duration90k, Time90k};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `libonnxruntime.so.*` inside the PyPI wheel (`.ci/run` installs it):
/// what `[objects] runtime` names in the tests.
pub fn onnxruntime() -> String {
    let o = Command::new("python3")
        .args([
            "-c",
            "import onnxruntime, os, glob; print(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi', 'libonnxruntime.so.*'))[0])",
        ])
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "onnxruntime from PyPI is needed: python3 -m pip install onnxruntime\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// A picture's codec, width and height, by ffprobe.
pub fn probe_jpeg(path: &std::path::Path) -> (String, u64, u64) {
    let o = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let s = &v["streams"][0];
    (
        s["codec_name"].as_str().unwrap_or_default().to_owned(),
        s["width"].as_u64().unwrap_or(0),
        s["height"].as_u64().unwrap_or(0),
    )
}

pub const H264_CLIP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../assets/clips/vtest-h264-10s.mp4"
);
pub const H265_CLIP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../assets/clips/vtest-h265-10s.mp4"
);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_candor")
}

/// A camera simulator running on its own tokio runtime.
pub struct Sim {
    pub sim: CamSim,
    _rt: tokio::runtime::Runtime,
}

impl Sim {
    pub fn start(clip: &str, cameras: usize) -> Sim {
        Sim::start_on(clip, cameras, 0)
    }

    pub fn start_on(clip: &str, cameras: usize, port: u16) -> Sim {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let src = Arc::new(Source::from_mp4(&std::fs::read(clip).unwrap()).unwrap());
        let sim = rt
            .block_on(CamSim::start(([127, 0, 0, 1], port).into(), cameras, src))
            .unwrap();
        Sim { sim, _rt: rt }
    }

    pub fn url(&self, i: usize) -> String {
        self.sim.url(i)
    }

    pub fn port(&self) -> u16 {
        self.sim.local_addr().port()
    }
}

/// Writes a config with the given cameras: (name, url, extra camera keys).
pub fn write_config(dir: &Path, storage_extra: &str, cameras: &[(&str, String, &str)]) -> PathBuf {
    let mut s = format!(
        "[storage]\npath = \"{}\"\nsegment_duration = \"2s\"\nfsync_interval = \"1s\"\n{storage_extra}\n\n[web]\nlisten = \"127.0.0.1:0\"\n",
        dir.join("data").display()
    );
    for (name, url, extra) in cameras {
        s += &format!(
            "\n[[cameras]]\nname = \"{name}\"\nurl = \"{url}\"\nstall_timeout = \"3s\"\n{extra}\n"
        );
    }
    let p = dir.join("candor.toml");
    std::fs::write(&p, s).unwrap();
    p
}

/// Lets the web app add cameras on loopback (the simulators live there);
/// off by default, and the attack tests rely on that.
#[allow(dead_code)]
pub fn allow_loopback_cameras(cfg: &Path) {
    let text = std::fs::read_to_string(cfg).unwrap().replacen(
        "[web]\n",
        "[web]\nallow_loopback_cameras = true\n",
        1,
    );
    std::fs::write(cfg, text).unwrap();
}

pub struct RecorderProc {
    pub child: Child,
    pub log: PathBuf,
}

/// Runs `candor <subcommand> -c cfg` with its stderr in a fresh log file
/// beside the config.
pub fn spawn_candor(subcommand: &str, cfg: &Path, rust_log: &str) -> (Child, PathBuf) {
    let log = cfg.with_extension(format!(
        "log.{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let child = Command::new(bin())
        .args([subcommand, "-c"])
        .arg(cfg)
        .env("RUST_LOG", rust_log)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (child, log)
}

pub fn start_recorder(cfg: &Path) -> RecorderProc {
    let (child, log) = spawn_candor("run", cfg, "info,retina=warn");
    RecorderProc { child, log }
}

/// `candor events --json` on a (running or stopped) recorder's config.
pub fn events_json(cfg: &Path) -> Vec<serde_json::Value> {
    let o = candor(&["events", "-c", cfg.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice::<serde_json::Value>(&o.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Raises or clears an event on a camsim ONVIF camera (`http`: its ONVIF
/// `host:port`; `what`: `motion/on`, `tamper/off`, …).
pub fn raise_on_camsim(http: &str, cam: usize, what: &str) {
    let o = Command::new("curl")
        .args(["-sS", "--fail", "-X", "POST"])
        .arg(format!("http://{http}/control/cam{cam}/{what}"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

impl RecorderProc {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then wait: the graceful path.
    pub fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(
                    st.success(),
                    "recorder exited with {st}: {}",
                    self.log_text()
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "recorder did not stop on SIGTERM within 20 s: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.log_text()
    }

    /// SIGKILL: the crash path.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for RecorderProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn candor(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

#[derive(Debug, Clone, Copy)]
pub struct SpanT {
    pub start: Time90k,
    pub end: Time90k,
}

pub fn spans(cfg: &Path, camera: &str) -> Vec<SpanT> {
    let out = candor(&[
        "spans",
        "-c",
        cfg.to_str().unwrap(),
        "--camera",
        camera,
        "--json",
    ]);
    if !out.status.success() {
        return Vec::new();
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| SpanT {
            start: Time90k::parse_rfc3339(s["start"].as_str().unwrap()).unwrap(),
            end: Time90k::parse_rfc3339(s["end"].as_str().unwrap()).unwrap(),
        })
        .collect()
}

pub fn recorded_secs(cfg: &Path, camera: &str) -> f64 {
    spans(cfg, camera)
        .iter()
        .map(|s| (s.end - s.start).as_secs_f64())
        .sum()
}

pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn export(cfg: &Path, camera: &str, from: Time90k, to: Time90k, out: &Path) -> Output {
    candor(&[
        "export",
        "-c",
        cfg.to_str().unwrap(),
        "--camera",
        camera,
        "--from",
        &from.to_string(),
        "--to",
        &to.to_string(),
        "-o",
        out.to_str().unwrap(),
    ])
}

#[derive(Debug)]
pub struct Probe {
    pub codec: String,
    pub codec_tag: String,
    pub frames: u64,
    pub duration: f64,
    pub moov_before_mdat: bool,
}

/// ffprobe's view of a file: codec, decoded frame count and duration.
pub fn ffprobe(path: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
        ])
        .arg("stream=codec_name,codec_tag_string,nb_read_frames:format=duration")
        .args(["-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe is installed (apt-get install ffmpeg)");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["streams"][0];
    let bytes = std::fs::read(path).unwrap();
    let find = |t: &[u8]| bytes.windows(4).position(|w| w == t).unwrap_or(usize::MAX);
    Probe {
        codec: s["codec_name"].as_str().unwrap_or("").into(),
        codec_tag: s["codec_tag_string"].as_str().unwrap_or("").into(),
        frames: s["nb_read_frames"].as_str().unwrap_or("0").parse().unwrap(),
        duration: v["format"]["duration"]
            .as_str()
            .unwrap_or("0")
            .parse()
            .unwrap(),
        moov_before_mdat: find(b"moov") < find(b"mdat"),
    }
}

/// `ffmpeg -v error -xerror -i FILE -f null -`: decodes every frame, fails on any error.
pub fn ffmpeg_decodes(path: &Path) -> Result<(), String> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(path)
        // Encode to the null muxer in the file's own time base (1/90000).
        // By default ffmpeg uses 1/average-frame-rate, and an export that
        // holds a frame across a long gap has a low average (e.g. 3.4 fps for
        // 45 frames over 13 s), so frames 0.1 s apart fell into one tick and
        // the null muxer reported "non monotonically increasing dts" for a
        // file whose timestamps are strictly increasing.
        .args(["-enc_time_base", "-1", "-f", "null", "-"])
        .output()
        .expect("ffmpeg is installed");
    if out.status.success() && out.stderr.is_empty() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

pub fn secs(s: f64) -> Duration90k {
    Duration90k::from_secs_f64(s)
}

/// Exports `[from, to)` and checks it with ffprobe and ffmpeg: codec, duration
/// within one frame interval, frame count within one frame, moov first, decodes.
pub fn export_and_verify(
    cfg: &Path,
    camera: &str,
    from: Time90k,
    to: Time90k,
    codec: &str,
    fps: f64,
    out: &Path,
) {
    let o = export(cfg, camera, from, to, out);
    assert!(
        o.status.success(),
        "export failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let p = ffprobe(out);
    let want = (to - from).as_secs_f64();
    assert_eq!(p.codec, codec, "{p:?}");
    assert!(
        (p.duration - want).abs() <= 1.0 / fps + 1e-6,
        "duration {} vs requested {want}: {p:?}",
        p.duration
    );
    let want_frames = want * fps;
    assert!(
        (p.frames as f64 - want_frames).abs() <= 1.0 + 1e-6,
        "frames {} vs {want_frames}: {p:?}",
        p.frames
    );
    assert!(
        p.moov_before_mdat,
        "moov must come first for progressive playback"
    );
    ffmpeg_decodes(out)
        .unwrap_or_else(|e| panic!("ffmpeg could not decode {}: {e}", out.display()));
}

/// The recorder's web address, from its log.
#[allow(dead_code)]
pub fn web_url(rec: &RecorderProc) -> String {
    let mut url = String::new();
    wait_for("the web address", Duration::from_secs(20), || {
        match rec
            .log_text()
            .split("web: ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
        {
            Some(u) => {
                url = u.to_string();
                true
            }
            None => false,
        }
    });
    url
}

#[allow(dead_code)]
pub fn curl(
    cert: &std::path::Path,
    jar: &std::path::Path,
    method: &str,
    url: &str,
    body: Option<&str>,
    extra: &[&str],
) -> (u16, String, serde_json::Value) {
    let mut c = Command::new("curl");
    c.args([
        "-sS",
        "-D",
        "-",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "-X",
        method,
        "--cacert",
    ])
    .arg(cert)
    .arg("-b")
    .arg(jar)
    .arg("-c")
    .arg(jar);
    if let Some(b) = body {
        c.args(["-H", "Content-Type: application/json", "-d", b]);
    }
    for h in extra {
        c.args(["-H", h]);
    }
    let o = c.arg(url).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let (rest, code) = out.rsplit_once('\n').unwrap();
    let (headers, json) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
    (
        code.trim().parse().unwrap(),
        headers.to_string(),
        serde_json::from_str(json).unwrap_or_default(),
    )
}

#[allow(dead_code)]
pub fn user_add(
    cfg: &std::path::Path,
    name: &str,
    role: &str,
    password: &str,
) -> std::process::Output {
    use std::io::Write;
    // Viewers and operators see every camera here; the default (none) is
    // attack.rs's `new_users_see_no_camera_until_granted`.
    let mut c = Command::new(bin())
        .args([
            "user",
            "add",
            name,
            "--role",
            role,
            "--cameras",
            "all",
            "-c",
        ])
        .arg(cfg)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    c.wait_with_output().unwrap()
}

#[allow(dead_code)]
/// Lines a real MQTT client (mosquitto_sub) receives, as `topic payload`.
pub struct Subscriber {
    child: std::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Subscriber {
    pub fn start(topics: &[&str]) -> Subscriber {
        use std::io::BufRead;
        let mut c = Command::new("mosquitto_sub");
        c.args(["-h", "127.0.0.1", "-p", "1883", "-v"]);
        for t in topics {
            c.args(["-t", t]);
        }
        let mut child = c
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("mosquitto_sub is needed: apt-get install mosquitto-clients");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let l = lines.clone();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                l.lock().unwrap().push(line);
            }
        });
        Subscriber { child, lines }
    }
    pub fn has(&self, f: impl Fn(&str) -> bool) -> bool {
        self.lines.lock().unwrap().iter().any(|l| f(l))
    }
    /// The payloads received so far on `topic`.
    pub fn payloads(&self, topic: &str) -> Vec<String> {
        let start = format!("{topic} ");
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.strip_prefix(&start).map(str::to_owned))
            .collect()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[allow(dead_code)]
pub struct Camsim {
    pub child: std::process::Child,
    pub discovery: String,
    /// `host:port` of the ONVIF HTTP side.
    pub http: String,
    pub rtsp: String,
}

impl Drop for Camsim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `candor camsim` with ONVIF services and WS-Discovery (unicast, loopback).
pub fn camsim_with_onvif(cameras: usize, password: &str, clock_offset: i64) -> Camsim {
    use std::io::{BufRead, Write};
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
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut rtsp, mut http) = (String::new(), String::new());
    let mut discovery = String::new();
    while rtsp.is_empty() || discovery.is_empty() {
        let line = lines.next().expect("camsim output").unwrap();
        if let Some(r) = line.split("rtsp://").nth(1) {
            rtsp = r.split('/').next().unwrap().to_string();
        }
        if let Some(h) = line.split("ONVIF devices at http://").nth(1) {
            http = h.split('/').next().unwrap().to_string();
        }
        if let Some(rest) = line.split("WS-Discovery on udp://").nth(1) {
            discovery = rest.trim().to_string();
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Camsim {
        child,
        discovery,
        http,
        rtsp,
    }
}

/// A logged-in web session against a running recorder: curl with a cookie
/// jar, trusting the recorder's generated certificate.
#[allow(dead_code)]
pub struct Web {
    pub base: String,
    pub cert: PathBuf,
    pub jar: PathBuf,
    pub csrf: String,
}

#[allow(dead_code)]
impl Web {
    /// Logs an existing user in; `dir` is the test's directory (data/ below it).
    pub fn login(rec: &RecorderProc, dir: &Path, user: &str, password: &str) -> Web {
        let base = web_url(rec);
        let (cert, jar) = (
            dir.join("data/tls/cert.pem"),
            dir.join(format!("jar-{user}")),
        );
        let body = serde_json::json!({ "username": user, "password": password }).to_string();
        let (code, _, v) = curl(
            &cert,
            &jar,
            "POST",
            &format!("{base}api/v1/login"),
            Some(&body),
            &[],
        );
        assert_eq!(code, 200, "login as {user}: {v}");
        let csrf = v["csrf_token"].as_str().unwrap_or_default().to_owned();
        Web {
            base,
            cert,
            jar,
            csrf,
        }
    }

    /// A call under `/api/v1/`, with the CSRF header.
    pub fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (u16, String, serde_json::Value) {
        let h = format!("X-CSRF-Token: {}", self.csrf);
        curl(
            &self.cert,
            &self.jar,
            method,
            &format!("{}api/v1/{path}", self.base),
            body,
            &[&h],
        )
    }
}

#[allow(dead_code)]
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `e2e/<script>` with node and `env`; on failure, panics with its
/// output and `logs()` (the servers' logs). Returns its last line: the
/// run's results, as JSON.
#[allow(dead_code)]
pub fn run_e2e(
    script: &str,
    env: &[(&str, &dyn AsRef<std::ffi::OsStr>)],
    logs: impl FnOnce() -> String,
) -> serde_json::Value {
    let o = Command::new("node")
        .arg(workspace().join("e2e").join(script))
        .envs(env.iter().map(|(k, v)| (*k, v.as_ref())))
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    println!("{out}\n{err}");
    assert!(
        o.status.success(),
        "browser run failed:\n{out}\n{err}\n{}",
        logs()
    );
    serde_json::from_str(out.lines().last().unwrap()).unwrap()
}

/// `e2e/node_modules`, installed from the lock file on first use.
#[allow(dead_code)]
pub fn ensure_playwright() {
    let e2e = workspace().join("e2e");
    if e2e.join("node_modules/playwright-core").exists() {
        return;
    }
    let o = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&e2e)
        .output()
        .expect("npm (Node.js) is needed for the browser tests: apt-get install nodejs npm");
    assert!(
        o.status.success(),
        "npm ci: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A real browser's first TLS flight (rustls) asking for `name`.
#[allow(dead_code)]
pub fn client_hello(name: &str) -> Vec<u8> {
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let mut c = rustls::ClientConnection::new(
        std::sync::Arc::new(config),
        rustls::pki_types::ServerName::try_from(name.to_string()).unwrap(),
    )
    .unwrap();
    let mut out = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut out).unwrap();
    }
    out
}
