//! One module per `candor` subcommand. Each owns its arguments (`Args`)
//! and a `run` that does the work through the library crates. What several
//! commands share (the runtime, private files, reading a password, parsing
//! a time) lives here, once.

pub mod camsim;
pub mod check;
pub mod cloud;
pub mod demo;
pub mod discover;
pub mod egress;
pub mod events;
pub mod export;
pub mod release;
pub mod run;
pub mod spans;
pub mod supervise;
pub mod update;
pub mod user;

use anyhow::{Context, Result};
use candor_media::Time90k;
use candor_storage::Store;
use std::path::Path;

/// The arguments of the commands that take only a config file (`run`,
/// `cloud`, `check`).
#[derive(clap::Args)]
pub struct ConfigArg {
    #[arg(short, long)]
    pub config: std::path::PathBuf,
}

/// The clip the demo and `camsim` loop by default: 10 s of a real static
/// surveillance camera (OpenCV's vtest, re-encoded like an IP camera).
pub static DEMO_CLIP: &[u8] = include_bytes!("../../../../assets/clips/vtest-h264-10s.mp4");

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// For the long-running servers: everything they create (footage, index,
/// snapshots, keys, config) is owner-only, and their descriptors are not
/// capped at the usual soft limit of 1,024 (connections must never take
/// the ones that recording needs).
pub fn private_server() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    match candor_auth::conn::raise_nofile_limit() {
        Ok(n) => tracing::debug!("open file limit: {n}"),
        Err(e) => tracing::warn!("could not raise the open file limit: {e}"),
    }
}

/// Secrets in a config readable by others: say so at start (not fatal: an
/// owner may have reasons, but rarely good ones).
pub fn warn_if_readable(config: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(config)
        && m.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            "{} is readable by other users (mode {:o}) and may hold camera passwords; run `chmod 600 {}`",
            config.display(),
            m.permissions().mode() & 0o777,
            config.display()
        );
    }
}

/// A password: prompted twice without echo on a terminal, else the first
/// line of standard input (for scripts).
pub fn read_password() -> Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let p = rpassword::prompt_password("Password: ")?;
        anyhow::ensure!(
            p == rpassword::prompt_password("Again: ")?,
            "the passwords differ"
        );
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// A time argument (`--from`, `--to`, `--since`), parsed by one function so
/// that every command accepts and refuses the same spellings.
pub fn parse_time(s: &str, what: &str) -> Result<Time90k> {
    Time90k::parse_rfc3339(s).map_err(|e| {
        anyhow::anyhow!("--{what} {s:?} is not an RFC 3339 time like 2026-11-27T10:00:00Z: {e}")
    })
}

pub fn parse_opt_time(s: Option<&str>, what: &str) -> Result<Option<Time90k>> {
    s.map(|s| parse_time(s, what)).transpose()
}

/// The index of a config's recorder, read-only (safe beside a running one).
pub fn open_store(config: &Path) -> Result<Store> {
    let cfg = candor_recorder::Config::load(config)?;
    Ok(Store::open_read_only(&cfg.storage.path)?)
}

pub fn open_camera(config: &Path, camera: &str) -> Result<(Store, i64)> {
    let store = open_store(config)?;
    let id = store.camera_id(camera)?.ok_or_else(|| {
        let known: Vec<String> = store
            .cameras()
            .map(|c| c.into_iter().map(|(_, n)| n).collect())
            .unwrap_or_default();
        anyhow::anyhow!(
            "no recordings for camera {camera:?}; cameras with recordings: {}",
            known.join(", ")
        )
    })?;
    Ok((store, id))
}

/// The error and its causes on one line. Many errors already quote their
/// cause in their own message (`reading x.toml: No such file…`), so a cause
/// whose text the line already holds is not repeated.
pub fn report(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line += ": ";
        }
        line += &text;
    }
    line
}

/// Exit codes, the same for every command: 2 when a config file can't be
/// read or is invalid (as for a wrong argument), 1 for any other failure.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    let config = e.chain().any(|c| {
        c.downcast_ref::<candor_recorder::ConfigError>().is_some()
            || c.downcast_ref::<candor_cloud::CloudError>()
                .is_some_and(candor_cloud::CloudError::is_config)
    });
    if config { 2 } else { 1 }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "No such file or directory (os error 2)",
        );
        let e = candor_recorder::ConfigError::Read {
            path: "nonexist.toml".into(),
            source: io,
        };
        let e = anyhow::Error::new(e);
        assert_eq!(
            super::report(&e),
            "can't read config file nonexist.toml: No such file or directory (os error 2)"
        );
        assert_eq!(super::exit_code(&e), 2);
        let e = anyhow::anyhow!("inner cause").context("outer");
        assert_eq!(super::report(&e), "outer: inner cause");
        assert_eq!(super::exit_code(&e), 1);
    }
}
