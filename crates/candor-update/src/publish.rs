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
/// `targets/`): metadata version `version`, the timestamp expiring in
/// `timestamp_days`, snapshot in 14, targets in 90.
pub async fn publish(
    root: &Path,
    key: &Path,
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
        std::fs::copy(r.file, &name).map_err(fail("copying a release"))?;
        editor
            .add_target_path(&name)
            .await
            .map_err(fail("adding a release"))?;
    }
    let signed = editor
        .sign(&[source(key)])
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
