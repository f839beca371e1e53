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
    /// A new version must have every camera recording within this many
    /// seconds of its start, or it is rolled back.
    #[arg(long, default_value_t = 600)]
    pub healthy_within_secs: u64,
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
    let healthy_within = Duration::from_secs(a.healthy_within_secs);
    let mut failures = 0;
    // One listener for the whole run: one made per turn could miss a
    // signal that arrives between turns.
    let signal = super::shutdown_signal();
    tokio::pin!(signal);
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
        let pid = child.id();
        let mut check = tokio::time::interval(Duration::from_secs(1));
        let status = loop {
            tokio::select! {
                s = child.wait() => break Some(s?),
                _ = &mut signal => {
                    // Let the recorder close its segments.
                    terminate(pid);
                    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
                    return Ok(());
                }
                _ = check.tick(), if !healthy => {
                    if reports_health(&state, pid) {
                        healthy = true;
                        layout.point("good", &current)?;
                        failures = 0;
                        tracing::info!("candor {current} records every camera: it is the good version now");
                    } else if started.elapsed() > healthy_within {
                        tracing::error!("candor {current} did not get every camera recording within {healthy_within:?}");
                        terminate(pid);
                        let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
                        roll_back(&layout, &state, &current, &format!(
                            "candor {current} did not get every camera recording within {healthy_within:?}"
                        ))?;
                        failures = 0;
                        break None;
                    }
                }
            }
        };
        let Some(status) = status else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let ran = started.elapsed();
        tracing::warn!("candor {current} exited ({status}) after {ran:?}");
        match on_exit(on_trial && !healthy, ran, &mut failures) {
            Next::Restart => {}
            Next::RollBack => roll_back(
                &layout,
                &state,
                &current,
                &format!(
                    "candor {current} exited within {QUICK_EXIT:?} of its start {TRIES} times (last: {status})"
                ),
            )?,
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn terminate(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
}

/// Whether the recorder started as `pid` wrote that every camera records.
fn reports_health(state: &std::path::Path, pid: Option<u32>) -> bool {
    let Ok(text) = std::fs::read_to_string(state.join("health.json")) else {
        return false;
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    pid.is_some() && v["pid"].as_u64() == pid.map(u64::from)
}

/// Points `current` back at `good` and records why (`last.json`, which the
/// System page will show).
fn roll_back(
    layout: &Layout,
    state: &std::path::Path,
    current: &semver::Version,
    why: &str,
) -> Result<()> {
    let good = layout
        .points_at("good")
        .context("no good version to go back to")?;
    layout.point("current", &good)?;
    let why = format!("{why}; back to {good}");
    tracing::error!("{why}");
    let record = serde_json::json!({
        "at": jiff::Timestamp::now().to_string(),
        "from": current.to_string(),
        "to": good.to_string(),
        "why": why,
    });
    std::fs::write(state.join("last.json"), record.to_string())
        .with_context(|| format!("writing {}", state.join("last.json").display()))
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
