//! `candor release`: the publisher's side of signed updates
//! (docs/design/updates.md, "The repository and its roles"). Keys are
//! made and kept by their holders; the root is made from public keys and
//! signed by each root key holder in turn (threshold signing, and root
//! rotation: a new root is signed by a threshold of the old root's keys and
//! its own); a release is stamped with its version and signed into the
//! repository with the targets, snapshot and timestamp keys. The same
//! repository is readable by `tuftool`.

use anyhow::{Context, Result};
use candor_update::publish;
use candor_update::tough;
use std::num::NonZeroU64;
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum Args {
    /// Make a new Ed25519 key: FILE (private, 0600) and FILE.pub (public).
    Key { file: PathBuf },
    /// Make a root listing the role keys (public `.pub` files or private
    /// keys), unsigned: each root key holder then signs it with `sign-root`.
    Root {
        /// Where to write root.json.
        #[arg(long)]
        out: PathBuf,
        /// The root's version: 1 for a new repository, the previous one's
        /// plus 1 for a rotation.
        #[arg(long, default_value_t = 1)]
        version: u64,
        /// A root key (repeat: e.g. three, held by separate people).
        #[arg(long = "root-key", required = true)]
        root_keys: Vec<PathBuf>,
        /// Root signatures needed (e.g. 2 of 3).
        #[arg(long, default_value_t = 1)]
        threshold: u64,
        #[arg(long)]
        targets_key: PathBuf,
        #[arg(long)]
        snapshot_key: PathBuf,
        #[arg(long)]
        timestamp_key: PathBuf,
        /// Days until the root expires.
        #[arg(long, default_value_t = 365)]
        expires_days: i64,
    },
    /// Add a root key holder's signature to root.json (in place).
    SignRoot {
        root: PathBuf,
        /// The holder's private key.
        #[arg(long)]
        key: PathBuf,
        /// For a rotation: the root this one replaces (the key must be one
        /// of its root keys; a threshold of them and of the new root's
        /// keys must sign).
        #[arg(long)]
        previous: Option<PathBuf>,
    },
    /// Stamp a Candor binary with its version and sign it into the
    /// repository (made if absent), keeping the releases already there.
    Publish {
        /// The repository's root.json (signed).
        #[arg(long)]
        root: PathBuf,
        /// The repository folder (metadata/ and targets/), to copy to the
        /// web server or a USB stick.
        #[arg(long)]
        repo: PathBuf,
        /// The Candor binary to release.
        #[arg(long)]
        binary: PathBuf,
        /// Its version (semver): what it will report, and how recorders
        /// order releases.
        #[arg(long)]
        version: String,
        /// What it runs on.
        #[arg(long, default_value_t = format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS))]
        arch: String,
        /// A file of release notes (shown on the System page).
        #[arg(long)]
        notes: Option<PathBuf>,
        /// Roll it out in waves: HOURS:PERCENT pairs from now, e.g.
        /// `0:1,24:10,72:50,168:100` (1 % of recorders at once, all after a
        /// week). Without: every recorder at once.
        #[arg(long)]
        waves: Option<String>,
        /// The targets, snapshot and timestamp keys (repeat).
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
    },
    /// Halt a release's rollout: recorders that haven't installed it won't
    /// (its waves are emptied; it stays listed). Publish a fixed release
    /// to move on.
    Halt {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        repo: PathBuf,
        #[arg(long)]
        version: String,
        #[arg(long, default_value_t = format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS))]
        arch: String,
        /// The targets, snapshot and timestamp keys (repeat).
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
    },
    /// Sign the repository anew with fresh expiries and nothing added: the
    /// timestamp lasts a day, so this runs daily (recorders refuse
    /// metadata once it has expired).
    Refresh {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        repo: PathBuf,
        /// The targets, snapshot and timestamp keys (repeat).
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
    },
}

pub fn run(a: Args) -> Result<()> {
    match a {
        Args::Key { file } => {
            publish::generate_key(&file)?;
            let public = publish::public_key(&file)?;
            let pub_path = PathBuf::from(format!("{}.pub", file.display()));
            std::fs::write(&pub_path, serde_json::to_vec_pretty(&public)?)
                .with_context(|| format!("writing {}", pub_path.display()))?;
            println!(
                "key {} written to {} (keep it offline) and {}",
                hex(&public),
                file.display(),
                pub_path.display()
            );
        }
        Args::Root {
            out,
            version,
            root_keys,
            threshold,
            targets_key,
            snapshot_key,
            timestamp_key,
            expires_days,
        } => {
            let keys = publish::RootKeys {
                root: root_keys
                    .iter()
                    .map(|k| publish::read_public(k))
                    .collect::<Result<_, _>>()?,
                threshold: NonZeroU64::new(threshold).context("the threshold is at least 1")?,
                targets: publish::read_public(&targets_key)?,
                snapshot: publish::read_public(&snapshot_key)?,
                timestamp: publish::read_public(&timestamp_key)?,
            };
            let version = NonZeroU64::new(version).context("versions start at 1")?;
            let root = publish::new_root(keys, version, expires_days)?;
            write_new(&out, &serde_json::to_vec_pretty(&root)?)?;
            println!(
                "root version {version} written to {}; it needs {threshold} root key signature(s): candor release sign-root {} --key …",
                out.display(),
                out.display()
            );
        }
        Args::SignRoot {
            root,
            key,
            previous,
        } => {
            let read = |p: &PathBuf| -> Result<tough::schema::Signed<tough::schema::Root>> {
                serde_json::from_slice(
                    &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
                )
                .with_context(|| format!("{} is not a root.json", p.display()))
            };
            let current = read(&root)?;
            let previous = previous.as_ref().map(read).transpose()?;
            let signed = super::runtime()?.block_on(publish::sign_root(
                current,
                &key,
                previous.as_ref().map(|p| &p.signed),
            ))?;
            let tmp = root.with_extension("json.new");
            std::fs::write(&tmp, serde_json::to_vec_pretty(&signed)?)
                .with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &root)
                .with_context(|| format!("replacing {}", root.display()))?;
            println!(
                "{} now has {} signature(s)",
                root.display(),
                signed.signatures.len()
            );
        }
        Args::Publish {
            root,
            repo,
            binary,
            version,
            arch,
            notes,
            waves,
            keys,
        } => {
            let notes = match notes {
                Some(p) => std::fs::read_to_string(&p)
                    .with_context(|| format!("reading {}", p.display()))?,
                None => String::new(),
            };
            let waves = waves
                .map(|w| publish::parse_waves(&w, jiff::Timestamp::now()))
                .transpose()?;
            let release = publish::NewRelease {
                file: &binary,
                version: &version,
                arch: &arch,
                notes: &notes,
                waves: waves.as_deref(),
            };
            let done = super::runtime()?.block_on(publish::sign_repository(
                &root,
                &repo,
                publish::Change::Add(release),
                &keys,
            ))?;
            println!(
                "{} signed into {} (metadata version {}); recorders see it once the folder is served or copied",
                done.name.unwrap_or_default(),
                repo.display(),
                done.version
            );
        }
        Args::Halt {
            root,
            repo,
            version,
            arch,
            keys,
        } => {
            let change = publish::Change::Halt {
                version: &version,
                arch: &arch,
            };
            let done = super::runtime()?
                .block_on(publish::sign_repository(&root, &repo, change, &keys))?;
            println!(
                "candor-{version}-{arch} halted in {} (metadata version {}): recorders that haven't installed it won't",
                repo.display(),
                done.version
            );
        }
        Args::Refresh { root, repo, keys } => {
            let done = super::runtime()?.block_on(publish::sign_repository(
                &root,
                &repo,
                publish::Change::Refresh,
                &keys,
            ))?;
            println!(
                "{} signed anew (snapshot and timestamp version {}); the timestamp expires in a day",
                repo.display(),
                done.version
            );
            if let Some(w) = done.warning {
                eprintln!("warning: {w}");
            }
        }
    }
    Ok(())
}

fn hex(k: &tough::schema::key::Key) -> String {
    k.key_id()
        .map(|id| id.iter().map(|b| format!("{b:02x}")).collect())
        .unwrap_or_default()
}

/// Writes a file that must not exist yet (a root is not overwritten by
/// mistake).
fn write_new(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .with_context(|| format!("writing {} (it must not exist yet)", path.display()))
}
