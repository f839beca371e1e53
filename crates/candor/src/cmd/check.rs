//! `candor check`: do the index and the segment files agree? Read-only.

use anyhow::Result;

pub use super::ConfigArg as Args;

pub fn run(a: Args) -> Result<()> {
    let cfg = candor_recorder::Config::load(&a.config)?;
    cfg.check_cloud_ca()
        .map_err(|message| candor_recorder::ConfigError::Invalid {
            path: a.config.clone(),
            message,
        })?;
    let store = candor_storage::Store::open_read_only(&cfg.storage.path)?;
    let problems = store.check()?;
    for p in &problems {
        println!("{p}");
    }
    anyhow::ensure!(problems.is_empty(), "{} problem(s) found", problems.len());
    println!("index and segment files agree");
    Ok(())
}
