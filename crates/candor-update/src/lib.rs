//! Signed updates (docs/design/updates.md), the verifier: a TUF repository
//! (a folder here; online later) is loaded with `tough` against a trusted
//! root, the newest release for this machine is chosen, and its binary is
//! read into a staging file, checked against its signed length and
//! SHA-256 as it streams, and made executable only once whole and right.
//!
//! Nothing here installs or restarts anything: the swap and the watchdog
//! are the next steps.

use futures::StreamExt;
use semver::Version;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;
use tough::{ExpirationEnforcement, FilesystemTransport, Limits, Repository, RepositoryLoader};

/// Why an update was not taken, for people (the CLI and the System page
/// show it as is) and for callers that branch on the kind.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("{0}: not a repository folder (it needs metadata/ and targets/)")]
    NotARepository(PathBuf),
    #[error(
        "the repository's metadata has expired ({0}): it may be an old copy replayed; get a fresh copy, or accept it knowingly with --allow-expired"
    )]
    Expired(String),
    #[error(
        "this machine's clock is behind the last update check ({0}): set the clock, then try again"
    )]
    ClockBehind(String),
    #[error("the repository's metadata is not validly signed by Candor's keys: {0}")]
    Untrusted(String),
    #[error("the repository offers no release for {arch}")]
    NoRelease { arch: String },
    #[error(
        "the repository's newest release is {offered}, not newer than the running {running}: nothing installed"
    )]
    NotNewer { offered: Version, running: Version },
    #[error("the release {name} does not match its signed length and hash: {why}; nothing staged")]
    BadTarget { name: String, why: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> UpdateError {
    let what = what.into();
    move |source| UpdateError::Io { what, source }
}

/// A release the repository offers this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offered {
    /// The target's name, `candor-<version>-<arch>`.
    pub name: String,
    pub version: Version,
    /// Bytes, as signed.
    pub length: u64,
}

/// What the metadata may weigh: tough's defaults, and few root rotations
/// (each is a new key set; 16 is years of them).
fn limits() -> Limits {
    Limits {
        max_root_updates: 16,
        ..Limits::default()
    }
}

/// Loads and verifies the repository in `dir` (`metadata/`, `targets/`)
/// against `root` (the trusted root.json). `datastore` keeps the newest
/// metadata versions seen, so an older copy is refused later.
/// `allow_expired`: the admin accepted expired metadata for this install
/// (the freeze protection is given up, knowingly; the version checks
/// still hold).
pub async fn load_dir(
    root: &[u8],
    dir: &Path,
    datastore: &Path,
    allow_expired: bool,
) -> Result<Repository, UpdateError> {
    let metadata = dir.join("metadata");
    let targets = dir.join("targets");
    if !metadata.is_dir() || !targets.is_dir() {
        return Err(UpdateError::NotARepository(dir.to_owned()));
    }
    let url = |p: &Path| {
        let p = p
            .canonicalize()
            .map_err(io(format!("reading {}", p.display())))?;
        url::Url::from_directory_path(&p).map_err(|()| UpdateError::NotARepository(p.clone()))
    };
    tokio::fs::create_dir_all(datastore)
        .await
        .map_err(io(format!("creating {}", datastore.display())))?;
    private(datastore).await?;
    RepositoryLoader::new(&root, url(&metadata)?, url(&targets)?)
        .transport(FilesystemTransport)
        .datastore(datastore)
        .limits(limits())
        .expiration_enforcement(if allow_expired {
            ExpirationEnforcement::Unsafe
        } else {
            ExpirationEnforcement::Safe
        })
        .load()
        .await
        .map_err(classify)
}

async fn private(dir: &Path) -> Result<(), UpdateError> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .await
        .map_err(io(format!("making {} private", dir.display())))
}

/// tough's error, as what it means to the owner.
fn classify(e: tough::error::Error) -> UpdateError {
    use tough::error::Error as E;
    match &e {
        E::ExpiredMetadata { role, .. } => UpdateError::Expired(format!("{role} metadata")),
        E::SystemTimeSteppedBackward {
            latest_known_time, ..
        } => UpdateError::ClockBehind(latest_known_time.to_string()),
        _ => UpdateError::Untrusted(e.to_string()),
    }
}

/// The newest release for `arch` in the repository, if it is newer than
/// `running`. A validly signed older release is not an update: going back
/// is the watchdog's job, never the repository's.
pub fn newest(repo: &Repository, arch: &str, running: &Version) -> Result<Offered, UpdateError> {
    let suffix = format!("-{arch}");
    let best = repo
        .all_targets()
        .filter_map(|(name, t)| {
            let v = name.raw().strip_prefix("candor-")?.strip_suffix(&suffix)?;
            Some(Offered {
                name: name.raw().to_owned(),
                version: Version::parse(v).ok()?,
                length: t.length,
            })
        })
        .max_by(|a, b| a.version.cmp(&b.version))
        .ok_or_else(|| UpdateError::NoRelease {
            arch: arch.to_owned(),
        })?;
    if best.version <= *running {
        return Err(UpdateError::NotNewer {
            offered: best.version,
            running: running.clone(),
        });
    }
    Ok(best)
}

/// Reads the release into `staging/<name>` (0600, in a 0700 directory);
/// tough checks the signed length (it stops reading past it) and SHA-256
/// as the bytes stream. Only when all is right is the file made
/// executable; on any error it is removed. Returns its path.
pub async fn stage(
    repo: &Repository,
    offered: &Offered,
    staging: &Path,
) -> Result<PathBuf, UpdateError> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::create_dir_all(staging)
        .await
        .map_err(io(format!("creating {}", staging.display())))?;
    private(staging).await?;
    let bad = |why: String| UpdateError::BadTarget {
        name: offered.name.clone(),
        why,
    };
    let name = tough::TargetName::new(offered.name.as_str()).map_err(|e| bad(e.to_string()))?;
    let mut stream = repo
        .read_target(&name)
        .await
        .map_err(classify)?
        .ok_or_else(|| bad("not in the repository".into()))?;
    let path = staging.join(&offered.name);
    let partial = staging.join(format!("{}.partial", offered.name));
    let result = async {
        let mut f = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .await
            .map_err(io(format!("creating {}", partial.display())))?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| bad(e.to_string()))?;
            f.write_all(&chunk)
                .await
                .map_err(io(format!("writing {}", partial.display())))?;
        }
        f.sync_all()
            .await
            .map_err(io(format!("writing {}", partial.display())))?;
        Ok::<_, UpdateError>(())
    }
    .await;
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(e);
    }
    tokio::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))
        .await
        .map_err(io(format!("making {} executable", partial.display())))?;
    tokio::fs::rename(&partial, &path)
        .await
        .map_err(io(format!("moving {} into place", path.display())))?;
    Ok(path)
}
