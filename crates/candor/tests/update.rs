//! `candor update --from DIR` against the real binary: a repository the
//! test signs (candor_update::publish, tough's editor) offering the real
//! `candor` binary as a newer release is verified and installed under a
//! prefix; a tampered one and an expired one are refused with a clear
//! message and nothing installed. (The supervisor that restarts into it
//! and rolls back is the next step: docs/design/updates.md.)

mod common;
use candor_update::publish::{Release, generate_key, init_root, publish};
use common::cloud::free_port;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const ARCH: &str = concat!("x86_64", "-", "linux");

fn update(cfg: &Path, repo: &Path, root: &Path, prefix: &Path, extra: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_candor"))
        .arg("update")
        .arg("-c")
        .arg(cfg)
        .arg("--from")
        .arg(repo)
        .arg("--root")
        .arg(root)
        .arg("--prefix")
        .arg(prefix)
        .args(extra)
        .output()
        .unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn sign(dir: &Path, root: &Path, key: &Path, bin: &Path, timestamp_days: i64) -> PathBuf {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(publish(
        root,
        &[key],
        &[Release {
            version: "9.0.0",
            arch: ARCH,
            file: bin,
        }],
        dir,
        1,
        timestamp_days,
    ))
    .unwrap()
}

#[test]
fn an_offline_folder_installs_a_signed_newer_release_and_nothing_else() {
    if std::env::consts::ARCH != "x86_64" || std::env::consts::OS != "linux" {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "",
        &[("gate", "rtsp://127.0.0.1:9/x".into(), "")],
    );
    let key = dir.path().join("release.pk8");
    generate_key(&key).unwrap();
    let root = dir.path().join("root.json");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(init_root(&key, &root))
        .unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_candor"));
    let prefix = dir.path().join("opt");
    std::fs::create_dir_all(&prefix).unwrap();

    // A build without the project's root built in (tests are) trusts
    // nothing unless told which root: it says so, and installs nothing.
    let o = candor(&[
        "update",
        "-c",
        cfg.to_str().unwrap(),
        "--from",
        dir.path().to_str().unwrap(),
        "--prefix",
        prefix.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("no release root built in"),
        "{err}"
    );

    // Expired metadata (an old copy): refused, unless accepted knowingly.
    let stale = sign(&dir.path().join("stale"), &root, &key, &bin, -1);
    let (ok, out) = update(&cfg, &stale, &root, &prefix, &["--check"]);
    assert!(
        !ok && out.contains("expired") && out.contains("--allow-expired"),
        "{out}"
    );

    // A tampered release: refused, nothing installed.
    let tampered = sign(&dir.path().join("tampered"), &root, &key, &bin, 1);
    let target = std::fs::read_dir(tampered.join("targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.to_string_lossy()
                .ends_with(&format!("candor-9.0.0-{ARCH}"))
        })
        .unwrap();
    let mut bytes = std::fs::read(&target).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&target, &bytes).unwrap();
    let (ok, out) = update(&cfg, &tampered, &root, &prefix, &[]);
    assert!(
        !ok && out.contains("does not match its signed length and hash"),
        "{out}"
    );
    assert!(!prefix.join("versions/9.0.0").exists(), "nothing installed");

    // A good copy: checked, then installed; `current` runs it.
    let good = sign(&dir.path().join("good"), &root, &key, &bin, 1);
    let (ok, out) = update(&cfg, &good, &root, &prefix, &["--check"]);
    assert!(
        ok && out.contains("→ 9.0.0") && out.contains("not installed"),
        "{out}"
    );
    assert!(!prefix.join("current").exists());
    let (ok, out) = update(&cfg, &good, &root, &prefix, &[]);
    assert!(ok && out.contains("installed"), "{out}");
    // The binary as published: this build, stamped 9.0.0, which it says.
    let installed = prefix.join("current/candor");
    assert_eq!(
        std::fs::metadata(&installed).unwrap().len(),
        std::fs::metadata(&bin).unwrap().len()
    );
    let v = Command::new(&installed).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&v.stdout).trim(), "candor 9.0.0");
    // A repository signed by other keys (its own root): refused.
    let key2 = dir.path().join("other.pk8");
    generate_key(&key2).unwrap();
    let root2 = dir.path().join("root2.json");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(init_root(&key2, &root2))
        .unwrap();
    let theirs = sign(&dir.path().join("theirs"), &root2, &key2, &bin, 1);
    let (ok, out) = update(&cfg, &theirs, &root, &prefix, &["--check"]);
    assert!(!ok && out.contains("not validly signed"), "{out}");
}

/// Issue 16's rollback: a new version that exits at start (here a script
/// published and installed as 9.1.0 through the same signed path) is run
/// three times by `candor supervise`, which then goes back to the good
/// version (the real binary, 9.0.0), says why in `last.json`, and
/// recording resumes.
#[test]
fn a_new_version_that_exits_at_start_is_rolled_back_and_recording_resumes() {
    if std::env::consts::ARCH != "x86_64" || std::env::consts::OS != "linux" {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(H264_CLIP, 1);
    let cfg = write_config(dir.path(), "", &[("gate", sim.url(0), "")]);
    let key = dir.path().join("release.pk8");
    generate_key(&key).unwrap();
    let root = dir.path().join("root.json");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(init_root(&key, &root)).unwrap();
    let prefix = dir.path().join("opt");
    std::fs::create_dir_all(&prefix).unwrap();
    let good = sign(
        &dir.path().join("v9.0"),
        &root,
        &key,
        Path::new(env!("CARGO_BIN_EXE_candor")),
        1,
    );
    let (ok, out) = update(&cfg, &good, &root, &prefix, &[]);
    assert!(ok, "{out}");
    let broken = dir.path().join("broken");
    std::fs::write(&broken, "#!/bin/sh\necho 'broken release' >&2\nexit 3\n").unwrap();
    let repo = rt
        .block_on(publish(
            &root,
            &[&key],
            &[Release {
                version: "9.1.0",
                arch: ARCH,
                file: &broken,
            }],
            &dir.path().join("v9.1"),
            2,
            1,
        ))
        .unwrap();
    // The running build (0.x) installs 9.1.0 as newer; current → 9.1.0.
    let (ok, out) = update(&cfg, &repo, &root, &prefix, &[]);
    assert!(ok, "{out}");
    let link = |l: &str| std::fs::read_link(prefix.join(l)).unwrap();
    assert!(link("current").ends_with("9.1.0") && link("good").ends_with("9.0.0"));

    let password = "a long test password for the admin";
    assert!(user_add(&cfg, "admin", "admin", password).status.success());
    let (child, log) = spawn_supervise(&cfg, &prefix, "20");
    let last = dir.path().join("data/updates/last.json");
    wait_for("the rollback", Duration::from_secs(30), || last.exists());
    let record = read_json(&last);
    assert_eq!(
        (record["from"].as_str(), record["to"].as_str()),
        (Some("9.1.0"), Some("9.0.0"))
    );
    assert!(
        record["why"].as_str().unwrap().contains("3 times"),
        "{record}"
    );
    assert!(link("current").ends_with("9.0.0"));
    // What was rolled back here is not installed again.
    let (ok, out) = update(&cfg, &repo, &root, &prefix, &[]);
    assert!(
        !ok && out.contains("was rolled back on this recorder"),
        "{out}"
    );
    // The good version records again.
    wait_for(
        "recording after the rollback",
        Duration::from_secs(30),
        || recorded_secs(&cfg, "gate") >= 3.0,
    );
    // The System page and the audit log say what happened.
    let rec = RecorderProc {
        child,
        log: log.with_extension("err"),
    };
    let w = Web::login(&rec, dir.path(), "admin", password);
    let (code, _, v) = w.api("GET", "system", None);
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        (
            v["last_rollback"]["from"].as_str(),
            v["last_rollback"]["to"].as_str()
        ),
        (Some("9.1.0"), Some("9.0.0")),
        "{v}"
    );
    assert!(
        v["last_rollback"]["why"]
            .as_str()
            .unwrap()
            .contains("3 times")
    );
    for (action, says) in [
        ("update_installed", "candor 9.1.0 installed from"),
        ("update_rolled_back", "candor 9.1.0 exited 3 times"),
    ] {
        let (_, _, au) = w.api("GET", &format!("audit?action={action}"), None);
        assert!(au.to_string().contains(says), "{action}: {au}");
    }
    rec.stop();

    // A version that starts but never gets the cameras recording (here one
    // that only sleeps) is rolled back after --healthy-within-secs.
    let idle = dir.path().join("idle");
    std::fs::write(&idle, "#!/bin/sh\nexec sleep 600\n").unwrap();
    let repo = rt
        .block_on(publish(
            &root,
            &[&key],
            &[Release {
                version: "9.2.0",
                arch: ARCH,
                file: &idle,
            }],
            &dir.path().join("v9.2"),
            3,
            1,
        ))
        .unwrap();
    let (ok, out) = update(&cfg, &repo, &root, &prefix, &[]);
    assert!(ok, "{out}");
    std::fs::remove_file(&last).unwrap();
    let before = recorded_secs(&cfg, "gate");
    let (child, _log) = spawn_supervise(&cfg, &prefix, "5");
    wait_for("the second rollback", Duration::from_secs(30), || {
        last.exists()
    });
    let record = read_json(&last);
    assert_eq!(record["from"], "9.2.0", "{record}");
    assert!(
        record["why"]
            .as_str()
            .unwrap()
            .contains("did not get every camera recording"),
        "{record}"
    );
    assert!(link("current").ends_with("9.0.0"));
    wait_for("recording again", Duration::from_secs(30), || {
        recorded_secs(&cfg, "gate") >= before + 3.0
    });
    stop(child);

    // A new version that gets every camera recording becomes the good one
    // (the real binary again, as 9.3.0).
    let repo = rt
        .block_on(publish(
            &root,
            &[&key],
            &[Release {
                version: "9.3.0",
                arch: ARCH,
                file: Path::new(env!("CARGO_BIN_EXE_candor")),
            }],
            &dir.path().join("v9.3b"),
            4,
            1,
        ))
        .unwrap();
    let (ok, out) = update(&cfg, &repo, &root, &prefix, &[]);
    assert!(ok, "{out}");
    assert!(link("good").ends_with("9.0.0"));
    let (child, _log) = spawn_supervise(&cfg, &prefix, "60");
    wait_for("9.3.0 promoted", Duration::from_secs(40), || {
        link("good").ends_with("9.3.0")
    });
    assert!(link("current").ends_with("9.3.0"));
    stop(child);
}

fn spawn_supervise(cfg: &Path, prefix: &Path, within: &str) -> (std::process::Child, PathBuf) {
    let log = cfg.with_file_name("supervise.log");
    let child = Command::new(env!("CARGO_BIN_EXE_candor"))
        .arg("supervise")
        .arg("-c")
        .arg(cfg)
        .arg("--prefix")
        .arg(prefix)
        .arg("--healthy-within-secs")
        .arg(within)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
        .spawn()
        .unwrap();
    (child, log)
}

fn stop(mut child: std::process::Child) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let _ = child.wait();
}

/// `candor release` as a publisher runs it, with the project's root shape
/// (three root keys, two signatures needed; one key per other role).
struct Publisher {
    dir: PathBuf,
    root: PathBuf,
    repo: PathBuf,
}

impl Publisher {
    fn new(dir: &Path) -> Publisher {
        let dir = dir.join("publisher");
        std::fs::create_dir_all(&dir).unwrap();
        let p = |n: &str| dir.join(n).to_str().unwrap().to_owned();
        for k in ["r1", "r2", "r3", "targets", "snapshot", "timestamp"] {
            let o = candor(&["release", "key", &p(&format!("{k}.pk8"))]);
            assert!(o.status.success(), "{o:?}");
        }
        let root = dir.join("root.json");
        let o = candor(&[
            "release",
            "root",
            "--out",
            &p("root.json"),
            "--threshold",
            "2",
            "--root-key",
            &p("r1.pk8.pub"),
            "--root-key",
            &p("r2.pk8.pub"),
            "--root-key",
            &p("r3.pk8.pub"),
            "--targets-key",
            &p("targets.pk8.pub"),
            "--snapshot-key",
            &p("snapshot.pk8.pub"),
            "--timestamp-key",
            &p("timestamp.pk8.pub"),
        ]);
        assert!(o.status.success(), "{o:?}");
        for k in ["r1", "r3"] {
            let o = candor(&[
                "release",
                "sign-root",
                &p("root.json"),
                "--key",
                &p(&format!("{k}.pk8")),
            ]);
            assert!(o.status.success(), "{o:?}");
        }
        Publisher {
            repo: dir.join("repo"),
            root,
            dir,
        }
    }

    /// Stamps the real binary as `version` and signs it into the repository.
    fn release(&self, version: &str) {
        self.release_in_waves(version, None)
    }

    fn release_in_waves(&self, version: &str, waves: Option<&str>) {
        let p = |n: &str| self.dir.join(n).to_str().unwrap().to_owned();
        let notes = self.dir.join("notes.txt");
        std::fs::write(&notes, format!("Candor {version}: the test's release.")).unwrap();
        let (root, t, sn, ts) = (
            p("root.json"),
            p("targets.pk8"),
            p("snapshot.pk8"),
            p("timestamp.pk8"),
        );
        let mut args = vec![
            "release",
            "publish",
            "--root",
            &root,
            "--repo",
            self.repo.to_str().unwrap(),
            "--binary",
            env!("CARGO_BIN_EXE_candor"),
            "--version",
            version,
            "--arch",
            ARCH,
            "--notes",
            notes.to_str().unwrap(),
            "--key",
            &t,
            "--key",
            &sn,
            "--key",
            &ts,
        ];
        if let Some(w) = waves {
            args.extend(["--waves", w]);
        }
        let o = candor(&args);
        assert!(o.status.success(), "{o:?}");
    }
}

impl Publisher {
    /// `candor update` from this publisher's repository, trusting its root.
    fn update(&self, cfg: &Path, prefix: &Path, extra: &[&str]) -> (bool, String) {
        update(cfg, &self.repo, &self.root, prefix, extra)
    }

    /// The daily re-signing, nothing added: the snapshot and timestamp
    /// keys only (the targets key stays offline).
    fn refresh(&self) -> String {
        let p = |n: &str| self.dir.join(n).to_str().unwrap().to_owned();
        let o = candor(&[
            "release",
            "refresh",
            "--root",
            &p("root.json"),
            "--repo",
            self.repo.to_str().unwrap(),
            "--key",
            &p("snapshot.pk8"),
            "--key",
            &p("timestamp.pk8"),
        ]);
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

/// A JSON file the recorder or the supervisor wrote.
fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn health_version(cfg: &Path) -> Option<String> {
    let t = std::fs::read_to_string(cfg.with_file_name("data/updates/health.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&t).ok()?;
    v["version"].as_str().map(str::to_owned)
}

/// Issue 16's first acceptance point, end to end: a release published with
/// `candor release` (stamped with its version, signed under a 2-of-3 root)
/// is installed from the offline folder; under `candor supervise`, a second
/// release installed while it records is handed over to within seconds;
/// the new version reports its new version, becomes the good one, and the
/// index is undamaged. The footage lost in the handover is printed (the
/// figure BENCHMARKS.md reports comes from `bench_update_handover`).
#[test]
fn a_published_release_is_handed_over_to_while_recording_and_reports_its_version() {
    if std::env::consts::ARCH != "x86_64" || std::env::consts::OS != "linux" {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(H264_CLIP, 1);
    let cfg = write_config(dir.path(), "", &[("gate", sim.url(0), "")]);
    let publisher = Publisher::new(dir.path());
    let prefix = dir.path().join("opt");
    std::fs::create_dir_all(&prefix).unwrap();
    publisher.release("9.0.0");
    let (ok, out) = publisher.update(&cfg, &prefix, &[]);
    assert!(ok && out.contains("→ 9.0.0"), "{out}");

    let (child, log) = spawn_supervise(&cfg, &prefix, "60");
    wait_for("9.0.0 recording", Duration::from_secs(30), || {
        health_version(&cfg).as_deref() == Some("9.0.0") && recorded_secs(&cfg, "gate") >= 3.0
    });

    // The daily refresh re-signs what is there (metadata version 2), and
    // the recorder takes it: nothing newer to install.
    assert!(publisher.refresh().contains("version 2"));
    let (ok, out) = publisher.update(&cfg, &prefix, &["--check"]);
    assert!(
        !ok && out.contains("not newer than the running 9.0.0"),
        "{out}"
    );

    let gaps = handover(&cfg, &publisher, &prefix, "9.4.0");
    stop(child);
    // The new run begins where the old one ended (the simulator, like most
    // cameras, starts a new session with a key frame), so the spans join;
    // a gap, if any, is the restart and must be short.
    println!("footage gaps from the handover: {gaps:?} s");
    assert!(
        gaps.len() <= 1 && gaps.iter().all(|g| *g < 30.0),
        "{gaps:?}"
    );
    let v = Command::new(prefix.join("current/candor"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&v.stdout).trim(), "candor 9.4.0");
    let err = std::fs::read_to_string(log.with_extension("err")).unwrap();
    assert!(
        err.contains("candor 9.4.0 installed: candor 9.0.0 stopped in"),
        "{err}"
    );
    let check = candor(&["check", "-c", cfg.to_str().unwrap()]);
    assert!(check.status.success(), "{check:?}");
}

/// Installs `version` (published now) while the supervisor runs, waits
/// for the new version to record and be promoted, and returns the gaps in
/// the footage that appeared since (seconds).
fn handover(cfg: &Path, publisher: &Publisher, prefix: &Path, version: &str) -> Vec<f64> {
    publisher.release(version);
    let before = spans(cfg, "gate").len();
    let (ok, out) = publisher.update(cfg, prefix, &[]);
    assert!(ok && out.contains(&format!("→ {version}")), "{out}");
    let good = || std::fs::read_link(prefix.join("good")).is_ok_and(|l| l.ends_with(version));
    wait_for("the new version promoted", Duration::from_secs(60), || {
        health_version(cfg).as_deref() == Some(version) && good()
    });
    // Recording continues past the handover.
    let at = recorded_secs(cfg, "gate");
    wait_for(
        "recording after the handover",
        Duration::from_secs(30),
        || recorded_secs(cfg, "gate") >= at + 3.0,
    );
    let s = spans(cfg, "gate");
    s.windows(2)
        .skip(before.saturating_sub(1))
        .map(|w| (w[1].start - w[0].end).as_secs_f64())
        .filter(|g| *g > 0.0)
        .collect()
}

/// The recording gap across successful updates (issue 16, acceptance 3),
/// for BENCHMARKS.md: five handovers in a row under `candor supervise`,
/// each a release stamped and signed with `candor release`.
/// `cargo test --release -p candor --test update bench_update_handover -- --ignored --nocapture`
#[test]
#[ignore]
fn bench_update_handover() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(H264_CLIP, 1);
    let cfg = write_config(dir.path(), "", &[("gate", sim.url(0), "")]);
    let publisher = Publisher::new(dir.path());
    let prefix = dir.path().join("opt");
    std::fs::create_dir_all(&prefix).unwrap();
    publisher.release("9.0.0");
    let (ok, out) = publisher.update(&cfg, &prefix, &[]);
    assert!(ok, "{out}");
    let (child, log) = spawn_supervise(&cfg, &prefix, "60");
    wait_for("recording", Duration::from_secs(30), || {
        recorded_secs(&cfg, "gate") >= 5.0
    });
    let mut all = Vec::new();
    for minor in 1..=5 {
        let gaps = handover(&cfg, &publisher, &prefix, &format!("9.{minor}.0"));
        println!("9.{minor}.0: gaps {gaps:?} s");
        all.extend(gaps);
    }
    stop(child);
    // From the supervisor's log (the recorders log to it too): SIGTERM to
    // the old version (its "stopped in N ms" line, minus N) to the new
    // version's first frame ("streaming").
    let err = std::fs::read_to_string(log.with_extension("err")).unwrap();
    let at = |l: &str| {
        let i = l.find("202")?;
        candor_media::Time90k::parse_rfc3339(l.get(i..i + 27)?).ok()
    };
    let mut down = Vec::new();
    let mut lines = err.lines();
    while let Some(l) = lines.by_ref().find(|l| l.contains(" stopped in ")) {
        let ms: f64 = l
            .split(" stopped in ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .unwrap()
            .parse()
            .unwrap();
        let stopped = at(l).unwrap();
        let streaming = lines
            .by_ref()
            .find(|l| l.contains("streaming"))
            .and_then(at)
            .unwrap();
        down.push(ms + (streaming - stopped).as_secs_f64() * 1000.0);
    }
    down.sort_by(f64::total_cmp);
    println!(
        "handovers: {}; SIGTERM to the new version's first frame: {down:.0?} ms; footage gaps in the index: {all:?}",
        down.len()
    );
    let check = candor(&["check", "-c", cfg.to_str().unwrap()]);
    assert!(check.status.success(), "{check:?}");
    println!(
        "candor check: {}",
        String::from_utf8_lossy(&check.stdout).trim()
    );
}

/// Waves (issue 16): a release rolled out to a share of recorders reaches
/// this one only when the share in force passes its seed; its turn is
/// named; a halted release reaches no one; an admin may install anyway.
#[test]
fn a_release_in_waves_waits_for_this_recorders_turn_and_a_halt_stops_it() {
    if std::env::consts::ARCH != "x86_64" || std::env::consts::OS != "linux" {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "",
        &[("gate", "rtsp://127.0.0.1:9/x".into(), "")],
    );
    let publisher = Publisher::new(dir.path());
    let prefix = dir.path().join("opt");
    std::fs::create_dir_all(&prefix).unwrap();
    publisher.release("9.0.0");
    let (ok, out) = publisher.update(&cfg, &prefix, &[]);
    assert!(ok, "{out}");
    // This recorder's place in every rollout: drawn at the first check.
    let seed = dir.path().join("data/updates/seed");
    let drawn: f64 = std::fs::read_to_string(&seed)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((0.0..1.0).contains(&drawn));
    std::fs::write(&seed, "0.3\n").unwrap();

    // 40 % now, everyone in an hour: a recorder at 0.3 is in the first wave.
    publisher.release_in_waves("9.6.0", Some("0:40,1:100"));
    let (ok, out) = publisher.update(&cfg, &prefix, &["--check"]);
    assert!(ok && out.contains("→ 9.6.0"), "{out}");
    // One at 0.5 waits for the second, and is told when.
    std::fs::write(&seed, "0.5\n").unwrap();
    let (ok, out) = publisher.update(&cfg, &prefix, &["--check"]);
    assert!(
        !ok && out.contains("hasn't reached this recorder yet (its turn comes at"),
        "{out}"
    );
    // Halted: no one who hasn't installed it will, and nothing is installed.
    let p = |n: &str| publisher.dir.join(n).to_str().unwrap().to_owned();
    let o = candor(&[
        "release",
        "halt",
        "--root",
        &p("root.json"),
        "--repo",
        publisher.repo.to_str().unwrap(),
        "--version",
        "9.6.0",
        "--arch",
        ARCH,
        "--key",
        &p("targets.pk8"),
        "--key",
        &p("snapshot.pk8"),
        "--key",
        &p("timestamp.pk8"),
    ]);
    assert!(o.status.success(), "{o:?}");
    std::fs::write(&seed, "0.0\n").unwrap();
    let (ok, out) = publisher.update(&cfg, &prefix, &[]);
    assert!(!ok && out.contains("the release is halted"), "{out}");
    assert!(!prefix.join("versions/9.6.0").exists());
    // An admin may still install it, knowingly.
    let (ok, out) = publisher.update(&cfg, &prefix, &["--check", "--ignore-waves"]);
    assert!(ok && out.contains("→ 9.6.0"), "{out}");
}

/// Online checks (issue 16): with `[updates]` set, `candor run` reads the
/// signed repository from a plain web server (Python's, serving the
/// publisher's folder), says which release is there for it with its notes
/// (`<data>/updates/available.json`, the System page), and each request is
/// an egress-ledger row of kind `update`, before it is sent. A repository
/// signed by other keys is refused, with nothing offered.
#[test]
fn an_online_check_finds_the_release_and_every_request_is_in_the_ledger() {
    if std::env::consts::ARCH != "x86_64" || std::env::consts::OS != "linux" {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let publisher = Publisher::new(dir.path());
    publisher.release("9.0.0");
    let (mut server, port) = serve(&publisher.dir);
    let cfg = write_config(
        dir.path(),
        "",
        &[("gate", "rtsp://127.0.0.1:9/x".into(), "")],
    );
    let with_updates = |root: &Path| with_updates(&cfg, port, root, "");
    with_updates(&publisher.root);
    let available = dir.path().join("data/updates/available.json");
    let rec = start_recorder(&cfg);
    wait_for("the first check", Duration::from_secs(30), || {
        available.exists()
    });
    let found = read_json(&available);
    assert_eq!(found["available"], "9.0.0", "{found}");
    assert!(
        found["notes"]
            .as_str()
            .unwrap()
            .contains("the test's release"),
        "{found}"
    );
    let o = candor(&[
        "egress",
        "-c",
        cfg.to_str().unwrap(),
        "--kind",
        "update",
        "--csv",
    ]);
    let csv = String::from_utf8_lossy(&o.stdout);
    let dest = format!("127.0.0.1:{port}");
    for file in [
        "timestamp.json",
        "1.snapshot.json",
        "1.targets.json",
        "2.root.json",
    ] {
        assert!(
            csv.lines().any(|l| l.contains(&dest) && l.contains(file)),
            "{file} not in the ledger:\n{csv}"
        );
    }
    rec.stop();

    // Another publisher's root: the same server's repository is refused.
    let other = Publisher::new(&dir.path().join("other"));
    with_updates(&other.root);
    std::fs::remove_file(&available).unwrap();
    let _ = std::fs::remove_dir_all(dir.path().join("data/updates/tuf"));
    let rec = start_recorder(&cfg);
    wait_for("the second check", Duration::from_secs(30), || {
        available.exists()
    });
    let found = read_json(&available);
    assert!(found["available"].is_null(), "{found}");
    assert!(
        found["message"]
            .as_str()
            .unwrap()
            .contains("not validly signed"),
        "{found}"
    );
    rec.stop();
    let _ = server.kill();
    let _ = server.wait();
}

/// Python's web server serving `dir` on a free loopback port.
fn serve(dir: &Path) -> (std::process::Child, u16) {
    let port = free_port();
    let server = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the web server", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (server, port)
}

/// Sets `[updates]` (replacing any) to the repository served on `port`.
fn with_updates(cfg: &Path, port: u16, root: &Path, extra: &str) {
    let text = std::fs::read_to_string(cfg).unwrap();
    let text = text.split("\n[updates]").next().unwrap().to_owned();
    std::fs::write(
        cfg,
        format!(
            "{text}\n[updates]\nrepository = \"http://127.0.0.1:{port}/repo/\"\nroot = \"{}\"\ncheck_every = \"1h\"\n{extra}",
            root.display()
        ),
    )
    .unwrap();
}

/// The System page's Install (issue 16): under `candor supervise`, the
/// release the online check found is installed when an admin asks,
/// downloaded through the recorder's ledgered client, verified, and
/// handed over to. Scheduling and cancelling work; an operator, a version
/// not offered and a time too far ahead are refused; the audit log and the
/// egress ledger say what happened.
#[test]
fn an_admin_installs_the_offered_release_from_the_system_page() {
    if std::env::consts::ARCH != "x86_64" || std::env::consts::OS != "linux" {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(H264_CLIP, 1);
    let cfg = write_config(dir.path(), "", &[("gate", sim.url(0), "")]);
    // A fixed web port: the new version serves where the old one did.
    let web = free_port();
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("127.0.0.1:0", &format!("127.0.0.1:{web}")),
    )
    .unwrap();
    let publisher = Publisher::new(dir.path());
    let prefix = dir.path().join("opt");
    std::fs::create_dir_all(&prefix).unwrap();
    publisher.release("9.0.0");
    let (ok, out) = publisher.update(&cfg, &prefix, &[]);
    assert!(ok && out.contains("→ 9.0.0"), "{out}");
    publisher.release("9.4.0");
    let (mut server, port) = serve(&publisher.dir);
    with_updates(&cfg, port, &publisher.root, "");
    let password = "a long test password for the admin";
    assert!(user_add(&cfg, "admin", "admin", password).status.success());
    assert!(user_add(&cfg, "op", "operator", password).status.success());

    let (child, log) = spawn_supervise(&cfg, &prefix, "60");
    let rec = RecorderProc {
        child,
        log: log.with_extension("err"),
    };
    let available = dir.path().join("data/updates/available.json");
    wait_for(
        "9.0.0 recording and the check",
        Duration::from_secs(60),
        || {
            health_version(&cfg).as_deref() == Some("9.0.0")
                && available.exists()
                && read_json(&available)["available"] == "9.4.0"
        },
    );
    let w = Web::login(&rec, dir.path(), "admin", password);
    let (code, _, v) = w.api("GET", "system/update", None);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["version"], "9.0.0", "{v}");
    assert_eq!(v["update_check"]["available"], "9.4.0", "{v}");
    assert_eq!(
        (
            v["update_install"]["state"].as_str(),
            v["update_install"]["supervised"].as_bool()
        ),
        (Some("idle"), Some(true)),
        "{v}"
    );

    // Refused: an operator; a version the check did not offer; too far
    // ahead; a field the API does not know.
    let op = Web::login(&rec, dir.path(), "op", password);
    let (code, _, v) = op.api("POST", "system/update", Some(r#"{"version":"9.4.0"}"#));
    assert_eq!(code, 403, "{v}");
    let (code, _, v) = w.api("POST", "system/update", Some(r#"{"version":"9.9.9"}"#));
    assert_eq!(
        (code, v["code"].as_str()),
        (409, Some("not_offered")),
        "{v}"
    );
    let far = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 40)).to_string();
    let (code, _, v) = w.api(
        "POST",
        "system/update",
        Some(&serde_json::json!({"version": "9.4.0", "at": far}).to_string()),
    );
    assert_eq!((code, v["code"].as_str()), (400, Some("bad_time")), "{v}");
    let (code, _, _) = w.api(
        "POST",
        "system/update",
        Some(r#"{"version":"9.4.0","prefix":"/tmp/evil"}"#),
    );
    assert!((400..500).contains(&code), "{code}");

    // Scheduled for later, then cancelled: nothing installed.
    let later = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)).to_string();
    let (code, _, v) = w.api(
        "POST",
        "system/update",
        Some(&serde_json::json!({"version": "9.4.0", "at": later}).to_string()),
    );
    assert_eq!((code, v["state"].as_str()), (202, Some("scheduled")), "{v}");
    assert!(dir.path().join("data/updates/scheduled.json").exists());
    let (code, _, v) = w.api("DELETE", "system/update", None);
    assert_eq!((code, v["state"].as_str()), (200, Some("idle")), "{v}");
    let (code, _, _) = w.api("DELETE", "system/update", None);
    assert_eq!(code, 404);
    assert!(!dir.path().join("data/updates/scheduled.json").exists());
    assert_eq!(
        std::fs::read_link(prefix.join("current")).unwrap(),
        Path::new("versions/9.0.0")
    );

    // Now: downloaded, verified, installed, handed over.
    let (code, _, v) = w.api("POST", "system/update", Some(r#"{"version":"9.4.0"}"#));
    assert_eq!(code, 202, "{v}");
    wait_for("9.4.0 recording", Duration::from_secs(120), || {
        health_version(&cfg).as_deref() == Some("9.4.0")
    });
    let w = Web::login(&rec, dir.path(), "admin", password);
    let (code, _, v) = w.api("GET", "system/update", None);
    assert_eq!((code, v["version"].as_str()), (200, Some("9.4.0")), "{v}");
    for (action, says) in [
        ("update_requested", "candor 9.4.0 now"),
        (
            "update_installed",
            "candor 9.4.0 installed from 127.0.0.1 (signed, verified; was 9.0.0); asked by admin",
        ),
        ("update_cancelled", "the scheduled install"),
    ] {
        let (_, _, au) = w.api("GET", &format!("audit?action={action}"), None);
        assert!(au.to_string().contains(says), "{action}: {au}");
    }
    // The download went through the recorder's ledgered client.
    let o = candor(&[
        "egress",
        "-c",
        cfg.to_str().unwrap(),
        "--kind",
        "update",
        "--csv",
    ]);
    let csv = String::from_utf8_lossy(&o.stdout);
    assert!(
        csv.lines()
            .any(|l| l.contains("/repo/targets/") && l.contains("9.4.0")),
        "no download in the ledger:\n{csv}"
    );
    rec.stop();
    let _ = server.kill();
    let _ = server.wait();
}
