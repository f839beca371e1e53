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

/// The watchdog's rule, without I/O: a version on trial (not yet `good`:
/// it never had every camera recording) that exits, or can't be started,
/// [`TRIES`] times is rolled back, however long each run lasted; a good
/// version is restarted however often it exits.
pub fn on_exit(on_trial: bool, failures: &mut u32) -> Next {
    if !on_trial {
        return Next::Restart;
    }
    *failures += 1;
    if *failures >= TRIES {
        *failures = 0;
        Next::RollBack
    } else {
        Next::Restart
    }
}

/// The trial's failures so far, kept on disk: a new version that takes
/// the supervisor down with it (out of memory, a reboot) doesn't get a
/// fresh count each time.
fn load_failures(state: &std::path::Path, version: &semver::Version) -> u32 {
    std::fs::read_to_string(state.join("trial.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .filter(|v| v["version"].as_str() == Some(&version.to_string()))
        .and_then(|v| v["failures"].as_u64())
        .map_or(0, |n| n.min(u64::from(TRIES)) as u32)
}

fn save_failures(state: &std::path::Path, version: &semver::Version, failures: u32) {
    let v = serde_json::json!({ "version": version.to_string(), "failures": failures });
    if let Err(e) = std::fs::write(state.join("trial.json"), v.to_string()) {
        tracing::warn!("writing the trial's state: {e}");
    }
}

pub fn run(a: Args) -> Result<()> {
    super::private_server();
    super::runtime()?.block_on(supervise(a))
}

async fn supervise(a: Args) -> Result<()> {
    let layout = Layout::new(&a.prefix);
    let data = candor_recorder::Config::load(&a.config)?.storage.path;
    let state = data.join("updates");
    std::fs::create_dir_all(&state).with_context(|| format!("creating {}", state.display()))?;
    let healthy_within = Duration::from_secs(a.healthy_within_secs);
    // One listener for the whole run: one made per turn could miss a
    // signal that arrives between turns.
    let signal = super::shutdown_signal();
    tokio::pin!(signal);
    loop {
        // An unreadable `current` (an install cut short) falls back to the
        // good version.
        let current = match layout.points_at("current") {
            Some(c) => c,
            None => {
                let good = layout.points_at("good").context(
                    "no `current` or `good` version under the prefix: install one with `candor update`",
                )?;
                layout.point("current", &good)?;
                good
            }
        };
        // `candor update` made the first version installed the good one;
        // without a good version there is nothing to go back to, and the
        // current one is not on trial.
        let on_trial = layout.points_at("good").is_some_and(|g| g != current);
        let mut failures = if on_trial {
            load_failures(&state, &current)
        } else {
            0
        };
        // The version's own path, not the `current` link: what runs is the
        // version the watchdog judges, even if `current` moves meanwhile.
        let bin = a
            .prefix
            .join("versions")
            .join(current.to_string())
            .join("candor");
        tracing::info!(
            "starting candor {current}{}",
            if on_trial { " (new: on trial)" } else { "" }
        );
        // A token only this start knows: the recorder writes it into its
        // health report, so an old report (or a reused pid) promotes nothing.
        let token = format!("{:032x}", rand::random::<u128>());
        let _ = std::fs::remove_file(state.join("health.json"));
        let started = Instant::now();
        let spawned = tokio::process::Command::new(&bin)
            .arg("run")
            .arg("-c")
            .arg(&a.config)
            .env(HEALTH_TOKEN_ENV, &token)
            // Where an install asked for in the web app goes (the System
            // page's Install): this supervisor then hands over to it.
            .env(candor_recorder::updates::PREFIX_ENV, &a.prefix)
            // Its own process group: the supervisor stops the recorder and
            // whatever it started, not just the first process.
            .process_group(0)
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("starting {}: {e}", bin.display());
                if on_exit(on_trial, &mut failures) == Next::RollBack {
                    roll_back(
                        &layout,
                        &state,
                        &current,
                        &format!("candor {current} could not be started ({e}) {TRIES} times"),
                    )?;
                } else if on_trial {
                    save_failures(&state, &current, failures);
                } else {
                    // The good version itself can't start: nothing to go
                    // back to; wait and try again.
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut healthy = !on_trial;
        let pid = child.id();
        let mut check = tokio::time::interval(Duration::from_secs(1));
        let mut watch = tokio::time::interval(HANDOVER_POLL);
        let status = loop {
            tokio::select! {
                s = child.wait() => break Some(s?),
                _ = &mut signal => {
                    stop(pid, &mut child).await;
                    return Ok(());
                }
                _ = watch.tick() => {
                    // `candor update` (or the web app) installed another
                    // version: hand over to it. The data directory has one
                    // writer at a time (its lock), so the old recorder
                    // closes its segments first and the new one starts
                    // as soon as it has exited; the gap is that restart
                    // (BENCHMARKS.md, "Updates").
                    let now = layout.points_at("current");
                    if now.as_ref().is_some_and(|v| *v != current) {
                        let t = Instant::now();
                        stop(pid, &mut child).await;
                        let new = now.unwrap_or(current.clone());
                        tracing::info!(
                            "candor {new} installed: candor {current} stopped in {} ms, starting the new version",
                            t.elapsed().as_millis()
                        );
                        audit(&data, "update_started", format!(
                            "candor {current} handed over to candor {new} (on trial until every camera records)"
                        ));
                        break None;
                    }
                }
                _ = check.tick(), if !healthy => {
                    if reports_health(&state, &token) {
                        healthy = true;
                        layout.point("good", &current)?;
                        let _ = std::fs::remove_file(state.join("trial.json"));
                        tracing::info!("candor {current} records every camera: it is the good version now");
                        audit(&data, "update_good", format!(
                            "candor {current} had every camera recording {} s after its start: it is the good version now",
                            started.elapsed().as_secs()
                        ));
                    } else if started.elapsed() > healthy_within {
                        tracing::error!("candor {current} did not get every camera recording within {healthy_within:?}");
                        stop(pid, &mut child).await;
                        roll_back(&layout, &state, &current, &format!(
                            "candor {current} did not get every camera recording within {healthy_within:?}"
                        ))?;
                        break None;
                    }
                }
            }
        };
        let Some(status) = status else {
            continue;
        };
        // Whatever it left behind in its group goes too.
        terminate(pid);
        let ran = started.elapsed();
        tracing::warn!("candor {current} exited ({status}) after {ran:?}");
        match on_exit(on_trial && !healthy, &mut failures) {
            Next::Restart if on_trial && !healthy => save_failures(&state, &current, failures),
            Next::Restart => {}
            Next::RollBack => roll_back(
                &layout,
                &state,
                &current,
                &format!(
                    "candor {current} exited {TRIES} times before it had every camera recording (last: {status})"
                ),
            )?,
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The environment variable carrying the health token to `candor run`.
pub const HEALTH_TOKEN_ENV: &str = "CANDOR_HEALTH_TOKEN";

/// How often the supervisor looks whether another version was installed.
const HANDOVER_POLL: Duration = Duration::from_millis(250);

/// How long a recorder gets to close its segments before it is killed.
const STOP_WITHIN: Duration = Duration::from_secs(30);

/// A signal to the recorder's process group (it and what it started).
fn signal_group(pid: Option<u32>, sig: rustix::process::Signal) {
    if let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
        let _ = rustix::process::kill_process_group(pid, sig);
    }
}

fn terminate(pid: Option<u32>) {
    signal_group(pid, rustix::process::Signal::TERM);
}

/// Stops the recorder: SIGTERM (it closes its segments and the index),
/// then SIGKILL to the group if it hasn't exited within [`STOP_WITHIN`],
/// so that the next start finds the data directory's lock free.
async fn stop(pid: Option<u32>, child: &mut tokio::process::Child) {
    terminate(pid);
    if tokio::time::timeout(STOP_WITHIN, child.wait())
        .await
        .is_err()
    {
        tracing::error!("the recorder did not stop within {STOP_WITHIN:?}: killed");
        signal_group(pid, rustix::process::Signal::KILL);
        let _ = child.wait().await;
    }
}

/// Whether this start's recorder wrote that every camera records.
fn reports_health(state: &std::path::Path, token: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(state.join("health.json")) else {
        return false;
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["token"].as_str() == Some(token)
}

/// Points `current` back at `good` and records why (`last.json`, which the
/// System page will show).
fn roll_back(
    layout: &Layout,
    state: &std::path::Path,
    current: &semver::Version,
    why: &str,
) -> Result<()> {
    let data = state.parent().unwrap_or(state);
    let good = layout
        .points_at("good")
        .context("no good version to go back to")?;
    // `candor update` may have installed another version meanwhile: that
    // one is started next (on trial) instead of undoing its install.
    if layout.points_at("current").as_ref() != Some(current) {
        tracing::warn!(
            "candor {current} failed, but another version was installed meanwhile: not rolling back"
        );
        return Ok(());
    }
    layout.point("current", &good)?;
    let why = format!("{why}; back to {good}");
    tracing::error!("{why}");
    let record = serde_json::json!({
        "at": jiff::Timestamp::now().to_string(),
        "from": current.to_string(),
        "to": good.to_string(),
        "why": &why,
    });
    std::fs::write(state.join("last.json"), record.to_string())
        .with_context(|| format!("writing {}", state.join("last.json").display()))?;
    audit(data, "update_rolled_back", why);
    Ok(())
}

/// An entry in the recorder's audit log (the System page shows the last
/// rollback too). The supervisor may be an older version than a recorder
/// that upgraded the accounts file: then it can't write there, and says so
/// in its log, which is all it can do.
pub fn audit(data: &std::path::Path, action: &str, detail: String) {
    let r = candor_web::accounts::Accounts::open(data)
        .map_err(|e| e.to_string())
        .and_then(|a| a.audit(None, action, &detail).map_err(|e| e.to_string()));
    if let Err(e) = r {
        tracing::warn!("audit log: could not record {action} ({detail}): {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_version_failing_three_times_is_rolled_back_a_good_one_never() {
        let mut f = 0;
        assert_eq!(on_exit(true, &mut f), Next::Restart);
        assert_eq!(on_exit(true, &mut f), Next::Restart);
        assert_eq!(on_exit(true, &mut f), Next::RollBack);
        assert_eq!(f, 0);
        // A good version is restarted however often it exits.
        for _ in 0..10 {
            assert_eq!(on_exit(false, &mut f), Next::Restart);
        }
        assert_eq!(f, 0);
    }
}
