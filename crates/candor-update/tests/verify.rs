//! The verifier against TUF repositories this test builds and signs with
//! tough's own editor (a root, targets, snapshot and timestamp, Ed25519):
//! a newer release is staged, and each attack of issue 16's list is
//! refused with a clear message and nothing staged.

use candor_update::publish::{Release, generate_key, init_root, publish};
use candor_update::{UpdateError, load_dir, newest, stage};
use semver::Version;
use std::path::{Path, PathBuf};

const ARCH: &str = "x86_64-linux";

fn key(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(format!("{name}.pk8"));
    generate_key(&p).unwrap();
    p
}

async fn root(dir: &Path, key: &Path) -> PathBuf {
    let p = dir.join("root.json");
    init_root(key, &p).await.unwrap();
    p
}

struct Repo {
    dir: PathBuf,
}

/// A repository in `dir` offering `releases` (version, bytes), signed
/// with `key`, the timestamp expiring in `timestamp_days`, at metadata
/// version `version`.
async fn repo(
    dir: &Path,
    root: &Path,
    key: &Path,
    releases: &[(&str, &[u8])],
    timestamp_days: i64,
    version: u64,
) -> Repo {
    let files: Vec<(String, PathBuf)> = releases
        .iter()
        .map(|(v, bytes)| {
            let f = dir.join(format!("bin-{v}"));
            std::fs::write(&f, bytes).unwrap();
            (v.to_string(), f)
        })
        .collect();
    let rel: Vec<Release> = files
        .iter()
        .map(|(v, f)| Release {
            version: v,
            arch: ARCH,
            file: f,
        })
        .collect();
    let out = dir.join("published");
    let dir = publish(root, &[key], &rel, &out, version, timestamp_days)
        .await
        .unwrap();
    Repo { dir }
}

fn running() -> Version {
    Version::new(0, 2, 0)
}

#[tokio::test(flavor = "current_thread")]
async fn a_newer_signed_release_is_staged_and_executable() {
    let d = tempfile::tempdir().unwrap();
    let k = key(d.path(), "release");
    let root = root(d.path(), &k).await;
    let r = repo(
        d.path(),
        &root,
        &k,
        &[("0.1.0", b"old"), ("0.3.0", b"#!/bin/sh\necho v3\n")],
        1,
        1,
    )
    .await;
    let trusted = std::fs::read(&root).unwrap();
    let repo = load_dir(&trusted, &r.dir, &d.path().join("tuf"), false)
        .await
        .unwrap();
    let o = newest(&repo, ARCH, &running()).unwrap();
    assert_eq!(o.version, Version::new(0, 3, 0));
    let staged = stage(&repo, &o, &d.path().join("staging")).await.unwrap();
    assert_eq!(std::fs::read(&staged).unwrap(), b"#!/bin/sh\necho v3\n");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&staged).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755);
    let dmode = std::fs::metadata(d.path().join("staging"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dmode, 0o700);
}

#[tokio::test(flavor = "current_thread")]
async fn a_tampered_or_over_long_release_is_not_staged() {
    let d = tempfile::tempdir().unwrap();
    let k = key(d.path(), "release");
    let root = root(d.path(), &k).await;
    let r = repo(d.path(), &root, &k, &[("0.3.0", b"the real release")], 1, 1).await;
    let trusted = std::fs::read(&root).unwrap();
    let target = std::fs::read_dir(r.dir.join("targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.to_string_lossy()
                .ends_with(&format!("candor-0.3.0-{ARCH}"))
        })
        .unwrap();
    let staging = d.path().join("staging");
    for (what, bytes) in [
        ("tampered", b"the fake release".to_vec()),
        // Endless data: the signed length is 16 bytes; this is 64 MiB.
        ("over-long", vec![b'x'; 64 << 20]),
    ] {
        std::fs::write(&target, &bytes).unwrap();
        let repo = load_dir(&trusted, &r.dir, &d.path().join("tuf"), false)
            .await
            .unwrap();
        let o = newest(&repo, ARCH, &running()).unwrap();
        let e = stage(&repo, &o, &staging).await.unwrap_err();
        assert!(matches!(e, UpdateError::BadTarget { .. }), "{what}: {e}");
        assert!(e.to_string().contains("nothing staged"), "{what}: {e}");
        assert_eq!(
            std::fs::read_dir(&staging).unwrap().count(),
            0,
            "{what}: nothing left in staging"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn metadata_signed_by_another_key_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let ours = key(d.path(), "ours");
    let theirs = key(d.path(), "theirs");
    let trusted = std::fs::read(root(d.path(), &ours).await).unwrap();
    // An attacker's own repository: its own root and key, a newer release.
    let e = tempfile::tempdir().unwrap();
    let their_root = root(e.path(), &theirs).await;
    let r = repo(e.path(), &their_root, &theirs, &[("9.9.9", b"evil")], 1, 1).await;
    let err = load_dir(&trusted, &r.dir, &d.path().join("tuf"), false)
        .await
        .unwrap_err();
    assert!(matches!(err, UpdateError::Untrusted(_)), "{err}");
    assert!(err.to_string().contains("not validly signed"), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn an_older_release_offered_as_new_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let k = key(d.path(), "release");
    let root = root(d.path(), &k).await;
    // Build metadata doesn't make a release newer; pre-releases are not
    // offered.
    let r = repo(
        d.path(),
        &root,
        &k,
        &[
            ("0.1.0", b"old"),
            ("0.2.0+rebuilt", b"same"),
            ("9.0.0-rc1", b"pre"),
        ],
        1,
        1,
    )
    .await;
    let loaded = load_dir(
        &std::fs::read(&root).unwrap(),
        &r.dir,
        &d.path().join("tuf"),
        false,
    )
    .await
    .unwrap();
    let e = newest(&loaded, ARCH, &running()).unwrap_err();
    assert!(matches!(e, UpdateError::NotNewer { .. }), "{e}");
    assert!(e.to_string().contains("nothing installed"), "{e}");
}

#[tokio::test(flavor = "current_thread")]
async fn stale_metadata_is_refused_unless_knowingly_accepted() {
    let d = tempfile::tempdir().unwrap();
    let k = key(d.path(), "release");
    let root = root(d.path(), &k).await;
    let trusted = std::fs::read(&root).unwrap();
    let datastore = d.path().join("tuf");
    // Expired yesterday: an old copy, replayed.
    let old = tempfile::tempdir().unwrap();
    let r = repo(old.path(), &root, &k, &[("0.3.0", b"v3")], -1, 1).await;
    let e = load_dir(&trusted, &r.dir, &datastore, false)
        .await
        .unwrap_err();
    assert!(matches!(e, UpdateError::Expired(_)), "{e}");
    assert!(e.to_string().contains("--allow-expired"), "{e}");
    // The admin accepts it knowingly (an air-gapped site's months-old stick).
    let loaded = load_dir(&trusted, &r.dir, &datastore, true).await.unwrap();
    assert_eq!(
        newest(&loaded, ARCH, &running()).unwrap().version,
        Version::new(0, 3, 0)
    );
    // Once version 2 of the metadata was seen, version 1 is refused even
    // unexpired: the datastore remembers.
    let newer = tempfile::tempdir().unwrap();
    let r2 = repo(newer.path(), &root, &k, &[("0.3.0", b"v3")], 1, 2).await;
    load_dir(&trusted, &r2.dir, &datastore, false)
        .await
        .unwrap();
    let older = tempfile::tempdir().unwrap();
    let r1 = repo(older.path(), &root, &k, &[("0.3.0", b"v3")], 1, 1).await;
    let e = load_dir(&trusted, &r1.dir, &datastore, false)
        .await
        .unwrap_err();
    assert!(matches!(e, UpdateError::Untrusted(_)), "{e}");
}

#[test]
fn installing_swaps_current_atomically_and_keeps_good_and_three_versions() {
    use candor_update::Layout;
    let d = tempfile::tempdir().unwrap();
    let layout = Layout::new(d.path());
    let stage_file = |v: &str| {
        let p = d.path().join(format!("staged-{v}"));
        std::fs::write(&p, format!("binary {v}")).unwrap();
        p
    };
    let v = |s: &str| Version::parse(s).unwrap();
    layout.install(&stage_file("0.1.0"), &v("0.1.0")).unwrap();
    layout.point("good", &v("0.1.0")).unwrap();
    for ver in ["0.2.0", "0.3.0", "0.4.0", "0.5.0"] {
        let bin = layout.install(&stage_file(ver), &v(ver)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&bin).unwrap(),
            format!("binary {ver}")
        );
        assert_eq!(layout.points_at("current"), Some(v(ver)));
        // What `current` resolves to is the new binary.
        assert_eq!(
            std::fs::read_to_string(d.path().join("current/candor")).unwrap(),
            format!("binary {ver}")
        );
    }
    // The good one stays (the watchdog's way back), as does the running
    // one; three versions in all.
    assert_eq!(layout.points_at("good"), Some(v("0.1.0")));
    assert_eq!(layout.installed(), [v("0.1.0"), v("0.4.0"), v("0.5.0")]);
    // Going back is pointing `current` at an installed version; never at
    // one that isn't there.
    layout.point("current", &v("0.1.0")).unwrap();
    assert_eq!(
        std::fs::read_to_string(d.path().join("current/candor")).unwrap(),
        "binary 0.1.0"
    );
    assert!(layout.point("current", &v("0.3.0")).is_err());
    assert_eq!(layout.points_at("current"), Some(v("0.1.0")));
}

#[tokio::test(flavor = "current_thread")]
async fn staging_refuses_a_directory_linked_elsewhere() {
    let d = tempfile::tempdir().unwrap();
    let k = key(d.path(), "release");
    let root = root(d.path(), &k).await;
    let r = repo(d.path(), &root, &k, &[("0.3.0", b"v3")], 1, 1).await;
    let trusted = std::fs::read(&root).unwrap();
    let loaded = load_dir(&trusted, &r.dir, &d.path().join("tuf"), false)
        .await
        .unwrap();
    let o = newest(&loaded, ARCH, &running()).unwrap();
    // Someone links the staging directory to another place (here a
    // directory whose mode would be changed, and where a file would land).
    let elsewhere = d.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let staging = d.path().join("staging");
    std::os::unix::fs::symlink(&elsewhere, &staging).unwrap();
    let e = stage(&loaded, &o, &staging).await.unwrap_err();
    assert!(
        e.to_string().contains("not a directory of this user"),
        "{e}"
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

/// The project's root shape: three root keys, two needed, and a key per
/// other role. A root with one signature is not trusted; with two it is.
/// A rotation to a new root (version 2, three new root keys) is followed
/// by a recorder that trusts version 1 only when two of the old root keys
/// signed it as well as two of the new; a key outside the old root can't
/// sign for it.
#[tokio::test(flavor = "current_thread")]
async fn a_two_of_three_root_is_needed_and_its_rotation_is_followed() {
    use candor_update::publish::{RootKeys, new_root, read_public, sign_root};
    use candor_update::tough;
    use std::num::NonZeroU64;
    let d = tempfile::tempdir().unwrap();
    let k = |n: &str| key(d.path(), n);
    let (r1, r2, r3, n1, n2, n3) = (k("r1"), k("r2"), k("r3"), k("n1"), k("n2"), k("n3"));
    let (t, s, ts) = (k("targets"), k("snapshot"), k("timestamp"));
    let keys = |root: [&PathBuf; 3]| RootKeys {
        root: root.iter().map(|p| read_public(p).unwrap()).collect(),
        threshold: NonZeroU64::new(2).unwrap(),
        targets: read_public(&t).unwrap(),
        snapshot: read_public(&s).unwrap(),
        timestamp: read_public(&ts).unwrap(),
    };
    let write = |name: &str, root: &tough::schema::Signed<tough::schema::Root>| {
        let p = d.path().join(name);
        std::fs::write(&p, serde_json::to_vec_pretty(root).unwrap()).unwrap();
        p
    };
    let signing = [t.as_path(), s.as_path(), ts.as_path()];
    let publish_with = |root: PathBuf, name: &'static str, v: &'static str, meta: u64| {
        let out = d.path().join(name);
        let bin = d.path().join(format!("bin-{v}"));
        std::fs::write(&bin, v).unwrap();
        async move {
            publish(
                &root,
                &signing,
                &[Release {
                    version: v,
                    arch: ARCH,
                    file: &bin,
                }],
                &out,
                meta,
                1,
            )
            .await
        }
    };

    // The same key twice doesn't make two signatures, and an online key
    // can't be a root key.
    assert!(new_root(keys([&r1, &r1, &r3]), NonZeroU64::MIN, 365).is_err());
    assert!(new_root(keys([&r1, &r2, &ts]), NonZeroU64::MIN, 365).is_err());
    let v1 = new_root(keys([&r1, &r2, &r3]), NonZeroU64::MIN, 365).unwrap();
    let one = sign_root(v1, &r1, None).await.unwrap();
    let one_path = write("root-one.json", &one);
    // The editor itself won't sign a repository under a root short of its
    // threshold; a recorder given that root trusts nothing.
    let short = publish_with(one_path.clone(), "short", "9.0.0", 1).await;
    if let Ok(repo) = short {
        let err = load_dir(
            &std::fs::read(&one_path).unwrap(),
            &repo,
            &d.path().join("tuf-short"),
            false,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, UpdateError::Untrusted(_)), "{err}");
    }
    let two = sign_root(one, &r2, None).await.unwrap();
    assert_eq!(two.signatures.len(), 2);
    let trusted = std::fs::read(write("root-v1.json", &two)).unwrap();
    let repo = publish_with(d.path().join("root-v1.json"), "a", "9.0.0", 1)
        .await
        .unwrap();
    let store = d.path().join("tuf");
    let r = load_dir(&trusted, &repo, &store, false).await.unwrap();
    assert_eq!(
        newest(&r, ARCH, &running()).unwrap().version,
        Version::new(9, 0, 0)
    );

    // Rotation: version 2 with new root keys, signed by two of its own
    // keys and only one of the old: not followed.
    let skip = new_root(keys([&n1, &n2, &n3]), NonZeroU64::new(3).unwrap(), 365).unwrap();
    let err = sign_root(skip, &r1, Some(&two.signed)).await.unwrap_err();
    assert!(err.to_string().contains("plus 1"), "{err}");
    let v2 = new_root(keys([&n1, &n2, &n3]), NonZeroU64::new(2).unwrap(), 365).unwrap();
    let err = sign_root(v2.clone(), &n1, Some(&two.signed))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("not a root key of the previous root"),
        "{err}"
    );
    let mut v2 = sign_root(v2, &n1, None).await.unwrap();
    v2 = sign_root(v2, &n2, None).await.unwrap();
    v2 = sign_root(v2, &r1, Some(&two.signed)).await.unwrap();
    let half = publish_with(write("root-v2-half.json", &v2), "b", "9.1.0", 2)
        .await
        .unwrap();
    let err = load_dir(&trusted, &half, &d.path().join("tuf-half"), false)
        .await
        .unwrap_err();
    assert!(matches!(err, UpdateError::Untrusted(_)), "{err}");
    // The second old key's signature completes it: followed from version 1.
    v2 = sign_root(v2, &r3, Some(&two.signed)).await.unwrap();
    assert_eq!(v2.signatures.len(), 4);
    let rotated = publish_with(write("root-v2.json", &v2), "c", "9.1.0", 3)
        .await
        .unwrap();
    let r = load_dir(&trusted, &rotated, &store, false).await.unwrap();
    assert_eq!(r.root().signed.version.get(), 2);
    assert_eq!(
        newest(&r, ARCH, &running()).unwrap().version,
        Version::new(9, 1, 0)
    );
    // The repository from before (older metadata) is not taken back.
    let err = load_dir(&trusted, &repo, &store, false).await.unwrap_err();
    assert!(matches!(err, UpdateError::Untrusted(_)), "{err}");
}
