//! `candor cloud`: the optional cloud (owner accounts, pairing, the
//! recorders' link, status and alarms).

use super::{private_server, runtime, shutdown_signal, warn_if_readable};
use anyhow::Result;

pub use super::ConfigArg as Args;

pub fn run(a: Args) -> Result<()> {
    private_server();
    warn_if_readable(&a.config);
    let cfg = candor_cloud::Config::load(&a.config)?;
    runtime()?.block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        });
        candor_cloud::run(cfg, stop_rx).await
    })?;
    Ok(())
}
