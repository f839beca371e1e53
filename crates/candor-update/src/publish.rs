//! Making and signing a repository, with tough's editor: the base of
//! `candor release` (docs/design/updates.md), and what the tests use to
//! build the repositories they attack. Keys are Ed25519, PKCS#8 (DER)
//! files, as tough reads them.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use tough::editor::RepositoryEditor;
use tough::editor::signed::{PathExists, SignedRole};
use tough::key_source::{KeySource, LocalKeySource};
use tough::schema::{KeyHolder, RoleKeys, RoleType, Root};
use tough::sign::Sign;

/// Publishing failed: what, and why (tough's words).
#[derive(Debug, thiserror::Error)]
#[error("{what}: {why}")]
pub struct PublishError {
    what: String,
    why: String,
}

fn fail<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> PublishError + '_ {
    move |e| PublishError {
        what: what.to_owned(),
        why: e.to_string(),
    }
}

/// Writes a fresh Ed25519 key to `path` (0600).
pub fn generate_key(path: &Path) -> Result<(), PublishError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let der = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(fail("generating a key"))?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(der.as_ref()))
        .map_err(fail("writing the key"))
}

fn source(path: &Path) -> Box<dyn KeySource> {
    Box::new(LocalKeySource {
        path: path.to_owned(),
    })
}

/// Now plus `days` (negative: in the past).
pub fn in_days(days: i64) -> jiff::Timestamp {
    jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24 * days))
        .unwrap_or(jiff::Timestamp::MAX)
}

/// A signed root (version 1, a year) trusting `key` for every role, with
/// threshold 1, written to `out`. (The project's own root uses separate
/// keys and a threshold of 2 for root: the design's table.)
pub async fn init_root(key: &Path, out: &Path) -> Result<(), PublishError> {
    let pem = std::fs::read(key).map_err(fail("reading the key"))?;
    let tuf_key = tough::sign::parse_keypair(&pem)
        .map_err(fail("reading the key"))?
        .tuf_key();
    let id = tuf_key.key_id().map_err(fail("the key's id"))?;
    let role = || RoleKeys {
        keyids: vec![id.clone()],
        threshold: NonZeroU64::MIN,
        _extra: HashMap::new(),
    };
    let root = Root {
        spec_version: "1.0.0".into(),
        consistent_snapshot: true,
        version: NonZeroU64::MIN,
        expires: in_days(365),
        keys: HashMap::from([(id.clone(), tuf_key)]),
        roles: [
            RoleType::Root,
            RoleType::Snapshot,
            RoleType::Targets,
            RoleType::Timestamp,
        ]
        .into_iter()
        .map(|r| (r, role()))
        .collect(),
        _extra: HashMap::new(),
    };
    let signed = SignedRole::new(
        root.clone(),
        &KeyHolder::Root(root),
        &[source(key)],
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .await
    .map_err(fail("signing the root"))?;
    std::fs::write(out, signed.buffer()).map_err(fail("writing the root"))
}

/// What to publish.
pub struct Release<'a> {
    /// The semver version.
    pub version: &'a str,
    /// e.g. `x86_64-linux`.
    pub arch: &'a str,
    /// The binary.
    pub file: &'a Path,
}

/// Signs a repository offering `releases` into `out` (`metadata/`,
/// `targets/`) with `keys` (one key may hold every role, as [`init_root`]
/// makes it): metadata version `version`, the timestamp expiring in
/// `timestamp_days`, snapshot in 14, targets in 90.
pub async fn publish(
    root: &Path,
    keys: &[&Path],
    releases: &[Release<'_>],
    out: &Path,
    version: u64,
    timestamp_days: i64,
) -> Result<PathBuf, PublishError> {
    let inputs = out.join("inputs");
    std::fs::create_dir_all(&inputs).map_err(fail("creating the inputs"))?;
    let mut editor = RepositoryEditor::new(root)
        .await
        .map_err(fail("reading the root"))?;
    let v = NonZeroU64::new(version).unwrap_or(NonZeroU64::MIN);
    editor
        .targets_version(v)
        .map_err(fail("targets"))?
        .targets_expires(in_days(90))
        .map_err(fail("targets"))?
        .snapshot_version(v)
        .snapshot_expires(in_days(14))
        .timestamp_version(v)
        .timestamp_expires(in_days(timestamp_days));
    for r in releases {
        let name = inputs.join(format!("candor-{}-{}", r.version, r.arch));
        // A Candor binary is stamped with its version, as `candor release`
        // does; a stand-in without the slot is copied as it is.
        let mut bytes = std::fs::read(r.file).map_err(fail("reading a release"))?;
        if candor_wire::version::stamped(&bytes).is_ok() {
            candor_wire::version::stamp(&mut bytes, r.version)
                .map_err(fail("stamping a release"))?;
        }
        std::fs::write(&name, &bytes).map_err(fail("copying a release"))?;
        editor
            .add_target_path(&name)
            .await
            .map_err(fail("adding a release"))?;
    }
    let signed = editor
        .sign(&keys.iter().map(|k| source(k)).collect::<Vec<_>>())
        .await
        .map_err(fail("signing the repository"))?;
    let repo = out.join("repo");
    signed
        .write(repo.join("metadata"))
        .await
        .map_err(fail("writing the metadata"))?;
    signed
        .copy_targets(&inputs, repo.join("targets"), PathExists::Replace)
        .await
        .map_err(fail("writing the targets"))?;
    Ok(repo)
}

/// The public half of a key file, as a root lists it (TUF's key JSON).
pub fn public_key(key: &Path) -> Result<tough::schema::key::Key, PublishError> {
    let der = std::fs::read(key).map_err(fail("reading the key"))?;
    Ok(tough::sign::parse_keypair(&der)
        .map_err(fail("reading the key"))?
        .tuf_key())
}

/// Reads a key file: a private key (PKCS#8, as `candor release key` writes)
/// or a public one (the `.pub` JSON beside it).
pub fn read_public(path: &Path) -> Result<tough::schema::key::Key, PublishError> {
    let bytes = std::fs::read(path).map_err(fail("reading a key"))?;
    match serde_json::from_slice(&bytes) {
        Ok(k) => Ok(k),
        Err(_) => public_key(path),
    }
}

/// Who holds which role in a root: several root keys with a threshold
/// (separate people, offline), one key for each other role.
pub struct RootKeys {
    pub root: Vec<tough::schema::key::Key>,
    pub threshold: NonZeroU64,
    pub targets: tough::schema::key::Key,
    pub snapshot: tough::schema::key::Key,
    pub timestamp: tough::schema::key::Key,
}

/// A root listing `keys`, version `version`, expiring in `days`; with no
/// signature yet: the root key holders sign it in turn ([`sign_root`]).
pub fn new_root(
    keys: RootKeys,
    version: NonZeroU64,
    days: i64,
) -> Result<tough::schema::Signed<Root>, PublishError> {
    if keys.root.len() < keys.threshold.get() as usize {
        return Err(PublishError {
            what: "making the root".into(),
            why: format!(
                "a threshold of {} needs at least that many root keys (given {})",
                keys.threshold,
                keys.root.len()
            ),
        });
    }
    // Each root key counts once toward the threshold, and no root key
    // doubles as an online one (snapshot, timestamp): a stolen release
    // machine must not hold a root signature.
    let id = |k: &tough::schema::key::Key| k.key_id().map_err(fail("a key's id"));
    let root_ids = keys.root.iter().map(id).collect::<Result<Vec<_>, _>>()?;
    let online = [id(&keys.snapshot)?, id(&keys.timestamp)?];
    let distinct: std::collections::HashSet<_> = root_ids.iter().collect();
    if distinct.len() != root_ids.len() || root_ids.iter().any(|r| online.contains(r)) {
        return Err(PublishError {
            what: "making the root".into(),
            why: "each root key must be a different key, and none may be the snapshot or timestamp key".into(),
        });
    }
    let mut all = HashMap::new();
    let mut ids = |ks: &[tough::schema::key::Key]| -> Result<Vec<_>, PublishError> {
        ks.iter()
            .map(|k| {
                let id = k.key_id().map_err(fail("a key's id"))?;
                all.insert(id.clone(), k.clone());
                Ok(id)
            })
            .collect()
    };
    let role = |keyids, threshold| RoleKeys {
        keyids,
        threshold,
        _extra: HashMap::new(),
    };
    let roles = HashMap::from([
        (RoleType::Root, role(ids(&keys.root)?, keys.threshold)),
        (
            RoleType::Targets,
            role(ids(std::slice::from_ref(&keys.targets))?, NonZeroU64::MIN),
        ),
        (
            RoleType::Snapshot,
            role(ids(std::slice::from_ref(&keys.snapshot))?, NonZeroU64::MIN),
        ),
        (
            RoleType::Timestamp,
            role(ids(std::slice::from_ref(&keys.timestamp))?, NonZeroU64::MIN),
        ),
    ]);
    Ok(tough::schema::Signed {
        signed: Root {
            spec_version: "1.0.0".into(),
            consistent_snapshot: true,
            version,
            expires: in_days(days),
            keys: all,
            roles,
            _extra: HashMap::new(),
        },
        signatures: Vec::new(),
    })
}

/// Adds the signature of `key` (a root key holder's) to `root`, keeping
/// the others. A new root (a rotation) must be signed by a threshold of
/// the keys of the root before it as well as its own: with `previous`,
/// `key` must be one of those.
pub async fn sign_root(
    root: tough::schema::Signed<Root>,
    key: &Path,
    previous: Option<&Root>,
) -> Result<tough::schema::Signed<Root>, PublishError> {
    if let Some(p) = previous
        && root.signed.version.get() != p.version.get() + 1
    {
        return Err(PublishError {
            what: "signing the root".into(),
            why: format!(
                "a rotation's root is the previous one's version plus 1 ({}), not {}",
                p.version.get() + 1,
                root.signed.version
            ),
        });
    }
    let signer = previous.unwrap_or(&root.signed);
    let id = public_key(key)?.key_id().map_err(fail("the key's id"))?;
    if !signer
        .roles
        .get(&RoleType::Root)
        .is_some_and(|r| r.keyids.contains(&id))
    {
        return Err(PublishError {
            what: "signing the root".into(),
            why: format!(
                "this key is not a root key of {}",
                if previous.is_some() {
                    "the previous root"
                } else {
                    "this root"
                }
            ),
        });
    }
    let holder = KeyHolder::Root(signer.clone());
    let signed = SignedRole::new(
        root.signed.clone(),
        &holder,
        &[source(key)],
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .await
    .map_err(fail("signing the root"))?;
    let merged = signed
        .add_old_signatures(root.signatures)
        .map_err(fail("signing the root"))?;
    Ok(merged.signed().clone())
}

/// What [`sign_repository`] did.
pub struct Published {
    /// The release added, `candor-<version>-<arch>`.
    pub name: Option<String>,
    /// The repository's new metadata version.
    pub version: u64,
    /// Something the publisher should act on (e.g. targets about to expire).
    pub warning: Option<String>,
}

/// Parses a rollout written as `HOURS:PERCENT,…` (e.g. `0:1,24:10,72:50,168:100`),
/// hours from `now`.
pub fn parse_waves(text: &str, now: jiff::Timestamp) -> Result<Vec<crate::Wave>, PublishError> {
    let bad = || PublishError {
        what: "the waves".into(),
        why: format!("{text:?}: write HOURS:PERCENT pairs, e.g. 0:1,24:10,72:50,168:100"),
    };
    let waves: Vec<crate::Wave> = text
        .split(',')
        .map(|pair| {
            let (h, p) = pair.trim().split_once(':').ok_or_else(bad)?;
            let h: i64 = h.trim().trim_end_matches('h').parse().map_err(|_| bad())?;
            let p: f64 = p.trim().trim_end_matches('%').parse().map_err(|_| bad())?;
            if !(0..=24 * 365).contains(&h) || !(0.0..=100.0).contains(&p) {
                return Err(bad());
            }
            Ok(crate::Wave {
                start: now
                    .checked_add(jiff::SignedDuration::from_hours(h))
                    .map_err(|_| bad())?,
                percent: p,
            })
        })
        .collect::<Result<_, _>>()?;
    // A rollout only grows: later starts, shares that don't shrink.
    if waves
        .windows(2)
        .any(|w| w[1].start <= w[0].start || w[1].percent < w[0].percent)
    {
        return Err(PublishError {
            what: "the waves".into(),
            why: format!("{text:?}: hours must increase and percentages must not decrease"),
        });
    }
    Ok(waves)
}

/// A release to add: a Candor binary and what to call it.
pub struct NewRelease<'a> {
    pub file: &'a Path,
    /// Semver: what the binary will report, and how recorders order it.
    pub version: &'a str,
    /// e.g. `x86_64-linux`.
    pub arch: &'a str,
    /// Release notes (the System page shows them).
    pub notes: &'a str,
    /// Its rollout (`None`: every recorder at once).
    pub waves: Option<&'a [crate::Wave]>,
}

/// What [`sign_repository`] changes.
pub enum Change<'a> {
    /// Add a release.
    Add(NewRelease<'a>),
    /// Halt a release's rollout: its waves emptied, so no recorder that
    /// hasn't installed it yet will (it stays listed, visibly halted).
    Halt { version: &'a str, arch: &'a str },
    /// Nothing: the daily refresh of snapshot and timestamp.
    Refresh,
}

fn waves_json(waves: &[crate::Wave]) -> serde_json::Value {
    waves
        .iter()
        // Canonical JSON (what TUF signs) has no floats: hundredths of a
        // percent, as an integer.
        .map(|w| {
            serde_json::json!({
                "start": w.start.to_string(),
                "basis_points": (w.percent * 100.0).round() as u64,
            })
        })
        .collect()
}

/// Signs the repository in `repo` (made if absent) anew: targets,
/// snapshot and timestamp each one version up with fresh expiries (90,
/// 14 and 1 days), signed with `keys` (each role's key among them), the
/// releases already there kept. With `release`, a copy of its binary is
/// stamped with its version (what it will report), named
/// `candor-<version>-<arch>`, given its notes in its custom metadata and
/// added. Without, this is the daily refresh of the timestamp.
pub async fn sign_repository(
    root: &Path,
    repo: &Path,
    change: Change<'_>,
    keys: &[PathBuf],
) -> Result<Published, PublishError> {
    if let Change::Add(r) = &change {
        semver::Version::parse(r.version).map_err(fail("the version"))?;
        if r.arch.is_empty()
            || !r
                .arch
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        {
            return Err(PublishError {
                what: "the architecture".into(),
                why: "letters, digits, '_' and '-' only (e.g. x86_64-linux)".into(),
            });
        }
    }
    // One publisher at a time per repository: a refresh racing a halt
    // could otherwise sign the halt away.
    std::fs::create_dir_all(repo).map_err(fail("creating the repository"))?;
    let lock = std::fs::File::create(repo.join(".lock")).map_err(fail("locking the repository"))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |_| PublishError {
            what: "locking the repository".into(),
            why: format!("another `candor release` is working on {}", repo.display()),
        },
    )?;
    let metadata = repo.join("metadata");
    let (mut editor, next) = if metadata.is_dir() {
        // The publisher's own repository: its metadata is read as is
        // (expired or not) to carry its targets over.
        let store = tempfile_dir(repo)?;
        let url = |p: &Path| {
            p.canonicalize()
                .ok()
                .and_then(|p| url::Url::from_directory_path(p).ok())
                .ok_or_else(|| PublishError {
                    what: "reading the repository".into(),
                    why: format!("{} is not a folder", p.display()),
                })
        };
        let root_bytes = std::fs::read(root).map_err(fail("reading the root"))?;
        let existing =
            tough::RepositoryLoader::new(&root_bytes, url(&metadata)?, url(&repo.join("targets"))?)
                .transport(tough::FilesystemTransport)
                .datastore(&store)
                .expiration_enforcement(tough::ExpirationEnforcement::Unsafe)
                .load()
                .await
                .map_err(fail("reading the repository"));
        let _ = std::fs::remove_dir_all(&store);
        let existing = existing?;
        // Each role one up from where it is: a timestamp re-signed more
        // often than the rest (or by another tool) must not go back.
        let next = (
            existing.targets().signed.version.get() + 1,
            existing
                .snapshot()
                .signed
                .version
                .get()
                .max(existing.timestamp().signed.version.get())
                + 1,
        );
        let halted = match &change {
            Change::Refresh => return refresh(root, repo, &existing, next.1, keys).await,
            Change::Halt { version, arch } => {
                let name = format!("candor-{version}-{arch}");
                let (n, t) = existing
                    .targets()
                    .signed
                    .targets
                    .iter()
                    .find(|(n, _)| n.raw() == name)
                    .ok_or_else(|| PublishError {
                        what: "halting".into(),
                        why: format!("{name} is not in the repository"),
                    })?;
                let mut t = t.clone();
                t.custom.insert("waves".into(), serde_json::json!([]));
                Some((n.clone(), t))
            }
            Change::Add(r) => {
                // A version's bytes never change once published: recorders
                // may have installed it. A fix is a new version.
                let name = format!("candor-{}-{}", r.version, r.arch);
                if existing
                    .targets()
                    .signed
                    .targets
                    .keys()
                    .any(|n| n.raw() == name)
                {
                    return Err(PublishError {
                        what: "publishing".into(),
                        why: format!("{name} is already in the repository: publish a new version"),
                    });
                }
                None
            }
        };
        let mut editor = RepositoryEditor::from_repo(root, existing)
            .await
            .map_err(fail("reading the repository"))?;
        if let Some((n, t)) = halted {
            editor.add_target(n, t).map_err(fail("halting"))?;
        }
        (editor, next)
    } else {
        if !matches!(change, Change::Add(_)) {
            return Err(PublishError {
                what: "signing".into(),
                why: format!(
                    "no repository in {} yet: publish a release first",
                    repo.display()
                ),
            });
        }
        let editor = RepositoryEditor::new(root)
            .await
            .map_err(fail("reading the root"))?;
        (editor, (1, 1))
    };
    let targets = repo.join("targets");
    std::fs::create_dir_all(&targets).map_err(fail("creating targets/"))?;
    let inputs = repo.join(".inputs");
    let mut added = None;
    if let Change::Add(r) = &change {
        let name = format!("candor-{}-{}", r.version, r.arch);
        std::fs::create_dir_all(&inputs).map_err(fail("creating the inputs"))?;
        let input = inputs.join(&name);
        let mut bytes = std::fs::read(r.file).map_err(fail("reading the binary"))?;
        candor_wire::version::stamp(&mut bytes, r.version).map_err(fail("stamping the binary"))?;
        std::fs::write(&input, &bytes).map_err(fail("writing the stamped binary"))?;
        let (target_name, mut target) = RepositoryEditor::build_target(&input)
            .await
            .map_err(fail("adding the release"))?;
        target
            .custom
            .insert("notes".into(), serde_json::Value::String(r.notes.into()));
        if let Some(w) = r.waves {
            target.custom.insert("waves".into(), waves_json(w));
        }
        editor
            .add_target(target_name, target)
            .map_err(fail("adding the release"))?;
        added = Some((name, input));
    }
    let v = |n: u64| NonZeroU64::new(n).unwrap_or(NonZeroU64::MIN);
    // Targets are signed anew only when a release is added (or the
    // repository is new): the daily refresh needs no targets key, which
    // stays offline.
    if !matches!(change, Change::Refresh) || next.0 == 1 {
        editor
            .targets_version(v(next.0))
            .map_err(fail("targets"))?
            .targets_expires(in_days(90))
            .map_err(fail("targets"))?;
    }
    editor
        .snapshot_version(v(next.1))
        .snapshot_expires(in_days(14))
        .timestamp_version(v(next.1))
        .timestamp_expires(in_days(1));
    let sources: Vec<_> = keys.iter().map(|k| source(k)).collect();
    let signed = editor.sign(&sources).await.map_err(fail(
        "signing (each of targets, snapshot and timestamp needs its key)",
    ))?;
    // The release before the metadata naming it: a mirror copying the
    // folder meanwhile never serves metadata for a missing file.
    if let Some((_, input)) = &added {
        signed
            .copy_target(input, &targets, PathExists::Replace, None)
            .await
            .map_err(fail("writing the release"))?;
        let _ = std::fs::remove_dir_all(&inputs);
    }
    signed
        .write(&metadata)
        .await
        .map_err(fail("writing the metadata"))?;
    Ok(Published {
        name: added.map(|(n, _)| n),
        version: next.1,
        warning: None,
    })
}

/// The daily refresh: snapshot and timestamp signed anew (version
/// `version`, 14 days and 1 day) over the repository's targets as they
/// are, so only the online keys are needed; the targets key stays offline.
async fn refresh(
    root: &Path,
    repo: &Path,
    existing: &tough::Repository,
    version: u64,
    keys: &[PathBuf],
) -> Result<Published, PublishError> {
    use tough::schema::{Hashes, Metafile, Signed, Snapshot, Timestamp};
    let root: Signed<Root> =
        serde_json::from_slice(&std::fs::read(root).map_err(fail("reading the root"))?)
            .map_err(fail("reading the root"))?;
    let consistent = root.signed.consistent_snapshot;
    let holder = KeyHolder::Root(root.signed);
    let sources: Vec<_> = keys.iter().map(|k| source(k)).collect();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let v = NonZeroU64::new(version).unwrap_or(NonZeroU64::MIN);
    let mut snapshot: Snapshot = existing.snapshot().signed.clone();
    snapshot.version = v;
    snapshot.expires = in_days(14);
    let snapshot = SignedRole::new(snapshot, &holder, &sources, &rng)
        .await
        .map_err(fail("signing the snapshot (its key is needed)"))?;
    let mut timestamp = Timestamp::new("1.0.0".into(), v, in_days(1));
    timestamp.meta.insert(
        "snapshot.json".into(),
        Metafile {
            length: Some(*snapshot.length()),
            hashes: Some(Hashes {
                sha256: snapshot.sha256().to_vec().into(),
                _extra: HashMap::new(),
            }),
            version: v,
            _extra: HashMap::new(),
        },
    );
    let timestamp = SignedRole::new(timestamp, &holder, &sources, &rng)
        .await
        .map_err(fail("signing the timestamp (its key is needed)"))?;
    let metadata = repo.join("metadata");
    // The snapshot first: the timestamp names it.
    snapshot
        .write(&metadata, consistent)
        .await
        .map_err(fail("writing the snapshot"))?;
    timestamp
        .write(&metadata, consistent)
        .await
        .map_err(fail("writing the timestamp"))?;
    // A refresh doesn't extend the targets' expiry (that needs the offline
    // key): say so while there is time to publish or halt.
    let expires = existing.targets().signed.expires;
    let warning = (expires < in_days(14)).then(|| {
        format!(
            "the targets metadata expires at {expires}: sign it again with the targets key (publish or halt) before then, or recorders will refuse the repository"
        )
    });
    Ok(Published {
        name: None,
        version,
        warning,
    })
}

fn tempfile_dir(near: &Path) -> Result<PathBuf, PublishError> {
    let dir = near.join(format!(".datastore-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(fail("creating a scratch folder"))?;
    Ok(dir)
}
