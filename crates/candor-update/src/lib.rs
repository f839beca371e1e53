//! Signed updates (docs/design/updates.md), the verifier: a TUF repository
//! (a folder here; online later) is loaded with `tough` against a trusted
//! root, the newest release for this machine is chosen, and its binary is
//! read into a staging file, checked against its signed length and
//! SHA-256 as it streams, and made executable only once whole and right.
//!
//! Nothing here installs or restarts anything: the swap and the watchdog
//! are the next steps.

pub mod publish;

/// The TUF library, for the publisher's command (its schema types).
pub use tough;

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
    #[error(
        "candor {offered} is being rolled out in waves and hasn't reached this recorder yet{}; nothing installed (an admin may install it now with --ignore-waves)",
        match from { Some(t) => format!(" (its turn comes at {t})"), None => " (the release is halted, or its waves don't reach this recorder)".into() }
    )]
    NotYet {
        offered: Version,
        from: Option<String>,
    },
    #[error("the release {name} does not match its signed length and hash: {why}; nothing staged")]
    BadTarget { name: String, why: String },
    #[error(
        "this build has no release root built in (official builds carry the project's): name the trusted root.json with --root FILE, or [updates] root"
    )]
    NoRoot,
    #[error(
        "another update is under way on this recorder (`candor update`, or the recorder's own check or install); try again when it is done"
    )]
    Busy,
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
    /// The version as the signed name spells it (build metadata kept):
    /// what the binary's stamp must say.
    pub signed_version: String,
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

/// Loads and verifies the repository at `repository` (a URL holding
/// `metadata/` and `targets/`) through `transport`, with expiry enforced
/// and the same datastore as [`load_dir`].
pub async fn load_url(
    root: &[u8],
    repository: &str,
    transport: impl tough::Transport + 'static,
    datastore: &Path,
) -> Result<Repository, UpdateError> {
    let base = url::Url::parse(repository)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| UpdateError::NotARepository(PathBuf::from(repository)))?;
    let base = if base.path().ends_with('/') {
        base
    } else {
        url::Url::parse(&format!("{base}/"))
            .map_err(|_| UpdateError::NotARepository(PathBuf::from(repository)))?
    };
    let join = |p: &str| {
        base.join(p)
            .map_err(|_| UpdateError::NotARepository(PathBuf::from(repository)))
    };
    tokio::fs::create_dir_all(datastore)
        .await
        .map_err(io(format!("creating {}", datastore.display())))?;
    private(datastore).await?;
    RepositoryLoader::new(&root, join("metadata/")?, join("targets/")?)
        .transport(transport)
        .datastore(datastore)
        .limits(limits())
        .expiration_enforcement(ExpirationEnforcement::Safe)
        .load()
        .await
        .map_err(classify)
}

/// The release root this build carries (`CANDOR_RELEASE_ROOT` at build
/// time: official builds), if any.
pub fn built_in_root() -> Option<&'static [u8]> {
    let root: &'static [u8] = include_bytes!(concat!(env!("OUT_DIR"), "/release-root.json"));
    (!root.is_empty()).then_some(root)
}

/// The trusted root: the file given (`--root`, `[updates] root`), else the
/// one built in.
pub fn trusted_root(given: Option<&Path>) -> Result<Vec<u8>, UpdateError> {
    match (given, built_in_root()) {
        (Some(p), _) => {
            std::fs::read(p).map_err(io(format!("reading the trusted root {}", p.display())))
        }
        (None, Some(r)) => Ok(r.to_vec()),
        (None, None) => Err(UpdateError::NoRoot),
    }
}

/// A release's notes, from its signed custom metadata.
pub fn notes(repo: &Repository, offered: &Offered) -> Option<String> {
    repo.all_targets()
        .find(|(n, _)| n.raw() == offered.name)
        .and_then(|(_, t)| t.custom.get("notes")?.as_str().map(str::to_owned))
        .filter(|n| !n.is_empty())
}

async fn private(dir: &Path) -> Result<(), UpdateError> {
    use std::os::unix::fs::PermissionsExt;
    owned_dir(dir)?;
    tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .await
        .map_err(io(format!("making {} private", dir.display())))
}

/// `dir` is a directory (not a symlink to one) owned by this process's
/// user: what update state and installed versions live in. Another user
/// who could swap or link things in it could get an unsigned file staged,
/// installed or chmodded.
pub fn owned_dir(dir: &Path) -> Result<(), UpdateError> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(dir).map_err(io(format!("reading {}", dir.display())))?;
    let me = rustix::process::geteuid().as_raw();
    if !m.file_type().is_dir() || m.uid() != me {
        return Err(UpdateError::Io {
            what: format!("{}", dir.display()),
            source: std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "not a directory of this user (uid {me}): run the update as the user that owns it, and don't link it elsewhere"
                ),
            ),
        });
    }
    Ok(())
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
    let best = releases(repo, arch)
        .into_iter()
        .map(|(o, _)| o)
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

/// The releases for `arch` (pre-releases left out; build metadata doesn't
/// order), with their signed target entries.
fn releases<'a>(repo: &'a Repository, arch: &str) -> Vec<(Offered, &'a tough::schema::Target)> {
    let suffix = format!("-{arch}");
    repo.all_targets()
        .filter_map(|(name, t)| {
            let v = name.raw().strip_prefix("candor-")?.strip_suffix(&suffix)?;
            let signed_version = v.to_owned();
            let mut version = Version::parse(v).ok()?;
            if !version.pre.is_empty() {
                return None;
            }
            version.build = semver::BuildMetadata::EMPTY;
            Some((
                Offered {
                    name: name.raw().to_owned(),
                    version,
                    signed_version,
                    length: t.length,
                },
                t,
            ))
        })
        .collect()
}

/// One step of a release's rollout (docs/design/updates.md, "Waves"): from
/// `start`, recorders whose seed is below `percent`/100 may install it.
/// The waves are in the target's signed custom metadata, so only the
/// targets key can change them.
#[derive(Clone, Debug, PartialEq)]
pub struct Wave {
    pub start: jiff::Timestamp,
    pub percent: f64,
}

/// A release's waves: `None` when it has none (every recorder at once); an
/// empty list is a halted release (no recorder). Malformed waves halt it
/// too: a rollout the recorder can't read is not one it joins.
pub fn waves_of(t: &tough::schema::Target) -> Option<Vec<Wave>> {
    let v = t.custom.get("waves")?;
    let parsed: Option<Vec<Wave>> = v.as_array().and_then(|a| {
        a.iter()
            .map(|w| {
                Some(Wave {
                    start: w.get("start")?.as_str()?.parse().ok()?,
                    // Hundredths of a percent (canonical JSON has no floats).
                    percent: w.get("basis_points")?.as_u64().filter(|b| *b <= 10_000)? as f64
                        / 100.0,
                })
            })
            .collect()
    });
    Some(parsed.unwrap_or_default())
}

/// When a recorder with `seed` (in [0, 1)) gets a release rolled out in
/// `waves`.
#[derive(Clone, Debug, PartialEq)]
pub enum Turn {
    Now,
    From(jiff::Timestamp),
    Never,
}

pub fn turn(waves: &[Wave], seed: f64, now: jiff::Timestamp) -> Turn {
    let mut w = waves.to_vec();
    w.sort_by_key(|w| w.start);
    let in_force = w
        .iter()
        .rfind(|w| w.start <= now)
        .map_or(0.0, |w| w.percent);
    if in_force / 100.0 > seed {
        return Turn::Now;
    }
    w.iter()
        .find(|w| w.start > now && w.percent / 100.0 > seed)
        .map_or(Turn::Never, |w| Turn::From(w.start))
}

/// This recorder's place in every rollout: a number in [0, 1) drawn once
/// and kept in `<state>/seed` (0600), so the same recorders go first in
/// every release's waves and a recorder's turn doesn't change.
pub fn seed(state: &Path) -> Result<f64, UpdateError> {
    let path = state.join("seed");
    match std::fs::read_to_string(&path) {
        Ok(t) => {
            // A seed that is there but unreadable is not redrawn (that
            // would move this recorder's turn): the check waits for it to
            // be fixed or removed.
            return t
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| (0.0..1.0).contains(s))
                .ok_or_else(|| UpdateError::Io {
                    what: format!("{}", path.display()),
                    source: std::io::Error::other(
                        "not a rollout seed (a number in [0, 1)): remove it to draw a new one",
                    ),
                });
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(UpdateError::Io {
                what: format!("reading {}", path.display()),
                source: e,
            });
        }
        Err(_) => {}
    }
    let mut b = [0u8; 8];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| UpdateError::Io {
        what: "drawing the rollout seed".into(),
        source: std::io::Error::other("no randomness"),
    })?;
    let s = (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64;
    std::fs::create_dir_all(state).map_err(io(format!("creating {}", state.display())))?;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // Whole or absent: a new file, synced, then renamed into place.
    let tmp = state.join(".seed.new");
    let _ = std::fs::remove_file(&tmp);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            writeln!(f, "{s}")?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(io(format!("writing {}", path.display())))?;
    Ok(s)
}

/// [`newest`], as the rollout allows it for this recorder (`seed`, at
/// `now`): the newest release newer than `running` whose waves have
/// reached it. When newer ones exist but none has, says when its turn for
/// the newest comes (or that it was halted).
pub fn newest_in_turn(
    repo: &Repository,
    arch: &str,
    running: &Version,
    seed: f64,
    now: jiff::Timestamp,
) -> Result<Offered, UpdateError> {
    let top = newest(repo, arch, running)?;
    let mut newer: Vec<(Offered, Turn)> = releases(repo, arch)
        .into_iter()
        .filter(|(o, _)| o.version > *running)
        .map(|(o, t)| {
            let turn = waves_of(t).map_or(Turn::Now, |w| turn(&w, seed, now));
            (o, turn)
        })
        .collect();
    newer.sort_by(|a, b| b.0.version.cmp(&a.0.version));
    if let Some((o, _)) = newer.iter().find(|(_, t)| *t == Turn::Now) {
        return Ok(o.clone());
    }
    let when = newer
        .iter()
        .find(|(o, _)| o.version == top.version)
        .and_then(|(_, t)| match t {
            Turn::From(at) => Some(*at),
            _ => None,
        });
    Err(UpdateError::NotYet {
        offered: top.version,
        from: when.map(|t| t.to_string()),
    })
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
    stage_with_progress(repo, offered, staging, &|_| {}).await
}

/// [`stage`], telling `progress` the bytes read so far (of
/// `offered.length`) as they arrive: the System page's progress bar.
pub async fn stage_with_progress(
    repo: &Repository,
    offered: &Offered,
    staging: &Path,
    progress: &(dyn Fn(u64) + Sync),
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
        // A leftover from an interrupted run goes first; then a file made
        // new here, never one found (or a link) in its place.
        let _ = tokio::fs::remove_file(&partial).await;
        let mut f = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&partial)
            .await
            .map_err(io(format!("creating {}", partial.display())))?;
        let mut read = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| bad(e.to_string()))?;
            f.write_all(&chunk)
                .await
                .map_err(io(format!("writing {}", partial.display())))?;
            read += chunk.len() as u64;
            progress(read);
        }
        f.sync_all()
            .await
            .map_err(io(format!("writing {}", partial.display())))?;
        Ok::<_, UpdateError>(())
    }
    .await;
    let result = match result {
        Ok(()) => check_stamp(&partial, offered).await,
        Err(e) => Err(e),
    };
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

/// A Candor binary says which version it is (`candor release` stamps it
/// when it signs): one that says another version than it is signed as, or
/// none (published unstamped, e.g. by another tool), would report the
/// wrong version once installed, so it is refused. A file without the
/// stamp's slot at all (not a Candor build: the tests' stand-ins for
/// broken releases) is taken on its signature alone.
async fn check_stamp(file: &Path, offered: &Offered) -> Result<(), UpdateError> {
    let bytes = tokio::fs::read(file)
        .await
        .map_err(io(format!("reading {}", file.display())))?;
    let signed = &offered.signed_version;
    let bad = |why: String| {
        Err(UpdateError::BadTarget {
            name: offered.name.clone(),
            why,
        })
    };
    match candor_wire::version::stamped(&bytes) {
        Ok(Some(v)) if v == *signed => Ok(()),
        Ok(Some(v)) => bad(format!(
            "the binary says it is version {v}, but it is signed as {signed}"
        )),
        Ok(None) => bad(format!(
            "the binary carries no version stamp (publish it with `candor release publish`), so it would not report {signed}"
        )),
        Err(candor_wire::version::StampError::NoSlot) => Ok(()),
        Err(e) => bad(e.to_string()),
    }
}

/// Holds the update state (`<data>/updates`: the metadata datastore and
/// the staging area) for one user at a time, across processes: `candor
/// update` and the recorder's own checks and installs. Released when the
/// returned file is dropped.
pub fn lock_state(state: &Path) -> Result<std::fs::File, UpdateError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(state).map_err(io(format!("creating {}", state.display())))?;
    let path = state.join(".lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&path)
        .map_err(io(format!("opening {}", path.display())))?;
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => return Err(UpdateError::Busy),
        Err(e) => return Err(io(format!("locking {}", path.display()))(e.into())),
    }
    Ok(f)
}

/// A version the watchdog rolled back on this recorder is not taken
/// again: `Some(why)` if `version` is the last one rolled back
/// (`<state>/last.json`, written by `candor supervise`).
pub fn rolled_back(state: &Path, version: &Version) -> Option<String> {
    let text = std::fs::read_to_string(state.join("last.json")).ok()?;
    let r: serde_json::Value = serde_json::from_str(&text).ok()?;
    (r["from"].as_str() == Some(&version.to_string()))
        .then(|| r["why"].as_str().unwrap_or("").to_owned())
}

/// Installed versions kept under the prefix: the one running, the last
/// good one, and one more to go back to by hand.
pub const KEEP_VERSIONS: usize = 3;

/// Where versions live under an install prefix (docs/design/updates.md):
/// `versions/<version>/candor`, and the symlinks `current` (what the
/// supervisor starts) and `good` (the last version that reached "recording
/// all cameras").
#[derive(Clone, Debug)]
pub struct Layout {
    pub prefix: PathBuf,
}

impl Layout {
    pub fn new(prefix: impl Into<PathBuf>) -> Layout {
        Layout {
            prefix: prefix.into(),
        }
    }

    fn versions(&self) -> PathBuf {
        self.prefix.join("versions")
    }

    /// The version a symlink (`current` or `good`) points at, if any.
    /// What an install must be newer than: the running binary, and the
    /// installed `current` and `good` (an older binary run after a
    /// rollback installs nothing old).
    pub fn floor(&self, running: &str) -> Version {
        [
            Version::parse(running).ok(),
            self.points_at("current"),
            self.points_at("good"),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or_else(|| Version::new(0, 0, 0))
    }

    pub fn points_at(&self, link: &str) -> Option<Version> {
        let target = std::fs::read_link(self.prefix.join(link)).ok()?;
        Version::parse(target.file_name()?.to_str()?).ok()
    }

    /// Moves a staged, verified binary into `versions/<version>/candor`
    /// (0755, fsynced), then points `current` at it by renaming a new
    /// symlink over the old one (atomic: a crash leaves the old or the new,
    /// never neither). `good` is left alone (but for the first install):
    /// the watchdog moves it once the new version is healthy. Versions beyond [`KEEP_VERSIONS`] are
    /// removed, never the one `current` or `good` points at.
    pub fn install(&self, staged: &Path, version: &Version) -> Result<PathBuf, UpdateError> {
        owned_dir(&self.prefix)?;
        std::fs::create_dir_all(self.versions())
            .map_err(io(format!("creating {}", self.versions().display())))?;
        owned_dir(&self.versions())?;
        let dir = self.versions().join(version.to_string());
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        owned_dir(&dir)?;
        let bin = dir.join("candor");
        // The staging area (in the data directory) may be on another
        // filesystem than the prefix: then copy (keeping the mode) to a
        // temporary name and rename, so `candor` is whole or absent.
        if let Err(e) = std::fs::rename(staged, &bin) {
            if e.kind() != std::io::ErrorKind::CrossesDevices {
                return Err(UpdateError::Io {
                    what: format!("moving into {}", bin.display()),
                    source: e,
                });
            }
            let tmp = dir.join(".candor.new");
            std::fs::copy(staged, &tmp).map_err(io(format!("copying into {}", tmp.display())))?;
            std::fs::rename(&tmp, &bin).map_err(io(format!("moving into {}", bin.display())))?;
            let _ = std::fs::remove_file(staged);
        }
        std::fs::File::open(&bin)
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::File::open(&dir)?.sync_all())
            .map_err(io(format!("syncing {}", bin.display())))?;
        self.point("current", version)?;
        // The first version installed is the good one: there is nothing
        // else to go back to.
        if self.points_at("good").is_none() {
            self.point("good", version)?;
        }
        self.prune()?;
        Ok(bin)
    }

    /// Points `link` (`current` or `good`) at an installed version, atomically.
    pub fn point(&self, link: &str, version: &Version) -> Result<(), UpdateError> {
        let target = Path::new("versions").join(version.to_string());
        if !self.prefix.join(&target).join("candor").is_file() {
            return Err(UpdateError::Io {
                what: format!("pointing {link} at {version}"),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "not installed"),
            });
        }
        let tmp = self.prefix.join(format!(".{link}.new"));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target, &tmp)
            .map_err(io(format!("creating {}", tmp.display())))?;
        std::fs::rename(&tmp, self.prefix.join(link)).map_err(io(format!("replacing {link}")))?;
        // The rename is durable once the directory is.
        std::fs::File::open(&self.prefix)
            .and_then(|d| d.sync_all())
            .map_err(io(format!("syncing {}", self.prefix.display())))
    }

    /// Installed versions, oldest first.
    pub fn installed(&self) -> Vec<Version> {
        let mut v: Vec<Version> = std::fs::read_dir(self.versions())
            .into_iter()
            .flatten()
            .filter_map(|e| Version::parse(e.ok()?.file_name().to_str()?).ok())
            .collect();
        v.sort();
        v
    }

    fn prune(&self) -> Result<(), UpdateError> {
        let keep = [self.points_at("current"), self.points_at("good")];
        let all = self.installed();
        let extra = all.len().saturating_sub(KEEP_VERSIONS);
        for v in all
            .into_iter()
            .filter(|v| !keep.contains(&Some(v.clone())))
            .take(extra)
        {
            let dir = self.versions().join(v.to_string());
            std::fs::remove_dir_all(&dir).map_err(io(format!("removing {}", dir.display())))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: i64) -> jiff::Timestamp {
        jiff::Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_hours(h)
    }

    #[test]
    fn a_recorder_joins_the_first_wave_whose_share_passes_its_seed() {
        let waves = [
            Wave {
                start: at(10),
                percent: 1.0,
            },
            Wave {
                start: at(34),
                percent: 10.0,
            },
            Wave {
                start: at(178),
                percent: 100.0,
            },
        ];
        assert_eq!(turn(&waves, 0.005, at(9)), Turn::From(at(10)));
        assert_eq!(turn(&waves, 0.005, at(10)), Turn::Now);
        assert_eq!(turn(&waves, 0.05, at(20)), Turn::From(at(34)));
        assert_eq!(turn(&waves, 0.05, at(40)), Turn::Now);
        assert_eq!(turn(&waves, 0.999, at(100)), Turn::From(at(178)));
        assert_eq!(turn(&waves, 0.999, at(178)), Turn::Now);
        // Halted (no waves left) or never reaching this seed.
        assert_eq!(turn(&[], 0.0, at(100)), Turn::Never);
        assert_eq!(turn(&waves[..2], 0.5, at(100)), Turn::Never);
    }

    #[test]
    fn the_rollout_text_is_parsed_or_refused() {
        let w = publish::parse_waves("0:1, 24h:10,168:100%", at(0)).unwrap();
        assert_eq!(
            w,
            [
                Wave {
                    start: at(0),
                    percent: 1.0
                },
                Wave {
                    start: at(24),
                    percent: 10.0
                },
                Wave {
                    start: at(168),
                    percent: 100.0
                }
            ]
        );
        for bad in ["", "1", "x:1", "1:101", "-1:5", "1:-5"] {
            assert!(publish::parse_waves(bad, at(0)).is_err(), "{bad:?}");
        }
    }
}
