//! `candor update --from DIR` against the real binary: a repository the
//! test signs (candor_update::publish, tough's editor) offering the real
//! `candor` binary as a newer release is verified and installed under a
//! prefix; a tampered one and an expired one are refused with a clear
//! message and nothing installed. (The supervisor that restarts into it
//! and rolls back is the next step: docs/design/updates.md.)

mod common;
use candor_update::publish::{Release, generate_key, init_root, publish};
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

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
        key,
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
    let installed = prefix.join("current/candor");
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(&bin).unwrap()
    );
    let v = Command::new(&installed).arg("--version").output().unwrap();
    assert!(
        String::from_utf8_lossy(&v.stdout).starts_with("candor "),
        "{v:?}"
    );
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
