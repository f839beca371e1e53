//! `candor update --from DIR`: install a newer release from a folder (a
//! USB stick holding a copy of the release repository), with no network.
//! Everything is verified (docs/design/updates.md) before anything is made
//! executable; the new version goes under the install prefix and `current`
//! points at it. `candor supervise` notices and hands over to it.

use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The recorder's config file (the update state lives in its data
    /// directory).
    #[arg(short, long)]
    pub config: PathBuf,
    /// A folder holding a copy of the release repository (`metadata/` and
    /// `targets/`).
    #[arg(long)]
    pub from: PathBuf,
    /// The trusted root.json: the public part of the release keys. Only a
    /// repository signed through it is accepted. Default: the root built
    /// into this binary (official builds).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// The install prefix holding `versions/`, `current` and `good`.
    #[arg(long)]
    pub prefix: PathBuf,
    /// Say what would be installed, and install nothing.
    #[arg(long)]
    pub check: bool,
    /// Accept metadata that has expired (an old copy), knowingly: this
    /// gives up the protection against a stale repository replayed; a
    /// release older than the running one is still refused.
    #[arg(long)]
    pub allow_expired: bool,
    /// Install the newest release even if its rollout (waves) hasn't
    /// reached this recorder yet, or was halted.
    #[arg(long)]
    pub ignore_waves: bool,
}

pub fn run(a: Args) -> Result<()> {
    let cfg = candor_recorder::Config::load(&a.config)?;
    let state = cfg.storage.path.join("updates");
    let root = candor_update::trusted_root(a.root.as_deref())?;
    // One update at a time: the recorder's own install uses the same
    // datastore and staging area.
    let _lock = candor_update::lock_state(&state)?;
    let layout = candor_update::Layout::new(&a.prefix);
    let running = layout.floor(candor_wire::version());
    let arch = format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS);
    super::runtime()?.block_on(async {
        let repo =
            candor_update::load_dir(&root, &a.from, &state.join("tuf"), a.allow_expired).await?;
        let offered = if a.ignore_waves {
            candor_update::newest(&repo, &arch, &running)?
        } else {
            let seed = candor_update::seed(&state)?;
            candor_update::newest_in_turn(&repo, &arch, &running, seed, jiff::Timestamp::now())?
        };
        if let Some(why) = candor_update::rolled_back(&state, &offered.version) {
            anyhow::bail!(
                "candor {} was rolled back on this recorder ({why}); not installing it again",
                offered.version
            );
        }
        if a.check {
            println!(
                "candor {running} → {}: {} ({} bytes), signed; not installed (--check)",
                offered.version, offered.name, offered.length
            );
            return Ok(());
        }
        let staged = candor_update::stage(&repo, &offered, &state.join("staging")).await?;
        let bin = layout.install(&staged, &offered.version)?;
        super::supervise::audit(
            &cfg.storage.path,
            "update_installed",
            format!(
                "candor {} installed from {} (signed, verified; was {running})",
                offered.version,
                a.from.display()
            ),
        );
        println!(
            "candor {running} → {}: verified and installed as {}; `current` points at it. A running `candor supervise` hands over to it within a second; a recorder started by hand runs it at its next start.",
            offered.version,
            bin.display()
        );
        Ok::<_, anyhow::Error>(())
    })
}
