//! `candor supervise`: start `<prefix>/current/candor run`, keep it running,
//! and after an update go back to the last good version when the new one
//! fails (docs/design/updates.md). systemd starts this (from `good`, the
//! last good version), so a new version that can't start can't break its
//! own way back.
//!
//! This is the one place Candor starts a process: a fixed path under the
//! install prefix (put there by `candor update` after verification) with
//! fixed arguments; nothing from the network or a request chooses it.

use anyhow::{Context, Result};
use candor_update::Layout;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// The recorder's config file, passed to `candor run`.
    #[arg(short, long)]
    pub config: PathBuf,
    /// The install prefix holding `versions/`, `current` and `good`.
    #[arg(long)]
    pub prefix: PathBuf,
    /// A new version that stays up this many seconds is the good one.
    #[arg(long, default_value_t = 600)]
    pub healthy_after_secs: u64,
}

/// A run shorter than this counts as a failed start.
const QUICK_EXIT: Duration = Duration::from_secs(60);
/// Failed starts of a new version before going back to the good one.
const TRIES: u32 = 3;

/// What the watchdog decides when the recorder exits.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// Start it again (after a pause).
    Restart,
    /// Point `current` back at `good` and start that.
    RollBack,
}

/// The watchdog's rule, without I/O: a version on trial (not yet `good`)
/// that exits within [`QUICK_EXIT`] of its start [`TRIES`] times is rolled
/// back; anything else is restarted.
pub fn on_exit(on_trial: bool, ran: Duration, failures: &mut u32) -> Next {
    if !on_trial {
        return Next::Restart;
    }
    if ran < QUICK_EXIT {
        *failures += 1;
    }
    if *failures >= TRIES {
        *failures = 0;
        Next::RollBack
    } else {
        Next::Restart
    }
}

pub fn run(a: Args) -> Result<()> {
    super::private_server();
    super::runtime()?.block_on(supervise(a))
}

async fn supervise(a: Args) -> Result<()> {
    let layout = Layout::new(&a.prefix);
    let state = candor_recorder::Config::load(&a.config)?
        .storage
        .path
        .join("updates");
    std::fs::create_dir_all(&state).with_context(|| format!("creating {}", state.display()))?;
    let healthy_after = Duration::from_secs(a.healthy_after_secs);
    let mut failures = 0;
    loop {
        let current = layout
            .points_at("current")
            .context("no `current` version under the prefix: install one with `candor update`")?;
        // `candor update` made the first version installed the good one;
        // without a good version there is nothing to go back to, and the
        // current one is not on trial.
        let on_trial = layout.points_at("good").is_some_and(|g| g != current);
        let bin = a.prefix.join("current/candor");
        tracing::info!(
            "starting candor {current}{}",
            if on_trial { " (new: on trial)" } else { "" }
        );
        let started = Instant::now();
        let mut child = tokio::process::Command::new(&bin)
            .arg("run")
            .arg("-c")
            .arg(&a.config)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut healthy = !on_trial;
        let status = loop {
            tokio::select! {
                s = child.wait() => break s?,
                _ = super::shutdown_signal() => {
                    // Let the recorder close its segments.
                    if let Some(pid) = child.id().and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
                        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                    }
                    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
                    return Ok(());
                }
                _ = tokio::time::sleep(healthy_after.saturating_sub(started.elapsed())), if !healthy => {
                    healthy = true;
                    layout.point("good", &current)?;
                    failures = 0;
                    tracing::info!("candor {current} is up for {healthy_after:?}: it is the good version now");
                }
            }
        };
        let ran = started.elapsed();
        tracing::warn!("candor {current} exited ({status}) after {ran:?}");
        match on_exit(on_trial && !healthy, ran, &mut failures) {
            Next::Restart => {}
            Next::RollBack => {
                let good = layout.points_at("good").context("no good version")?;
                layout.point("current", &good)?;
                let why = format!(
                    "candor {current} exited within {QUICK_EXIT:?} of its start {TRIES} times (last: {status}); back to {good}"
                );
                tracing::error!("{why}");
                let record = serde_json::json!({
                    "at": jiff::Timestamp::now().to_string(),
                    "from": current.to_string(),
                    "to": good.to_string(),
                    "why": why,
                });
                std::fs::write(state.join("last.json"), record.to_string())
                    .with_context(|| format!("writing {}", state.join("last.json").display()))?;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_version_failing_to_start_three_times_is_rolled_back_a_good_one_never() {
        let quick = Duration::from_secs(1);
        let mut f = 0;
        assert_eq!(on_exit(true, quick, &mut f), Next::Restart);
        assert_eq!(on_exit(true, quick, &mut f), Next::Restart);
        assert_eq!(on_exit(true, quick, &mut f), Next::RollBack);
        assert_eq!(f, 0);
        // A good version is restarted however often it exits.
        for _ in 0..10 {
            assert_eq!(on_exit(false, quick, &mut f), Next::Restart);
        }
        // A long run on trial is not a failed start.
        assert_eq!(
            on_exit(true, Duration::from_secs(120), &mut f),
            Next::Restart
        );
        assert_eq!(f, 0);
    }
}
