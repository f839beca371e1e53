//! What every handler shares: [`AppState`].

use crate::accounts::Accounts;
use crate::{auth, footage, live};
use std::sync::Arc;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    pub accounts: Arc<Accounts>,
    pub limiter: Arc<auth::Limiter>,
    /// Bounds concurrent argon2 work (logins, password changes, new users).
    pub hashing: Arc<candor_auth::HashGate>,
    /// Signs the device cookies of browsers that signed in before.
    pub device_key: Arc<candor_auth::DeviceKey>,
    /// Exports running per user (see [`footage::MAX_EXPORTS_PER_USER`]).
    pub exports: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    pub footage: Option<Arc<footage::Footage>>,
    pub metrics: Arc<live::LiveMetrics>,
    pub started: std::time::Instant,
}

impl AppState {
    /// Appends to the audit log on the blocking pool (each row is an fsync'd
    /// SQLite write). A failed write is logged as an error, never dropped
    /// silently: the audit trail is a promise to the owner.
    pub async fn audit(&self, user: Option<&str>, action: &'static str, detail: String) {
        let accounts = self.accounts.clone();
        let user = user.map(str::to_owned);
        let r =
            tokio::task::spawn_blocking(move || accounts.audit(user.as_deref(), action, &detail))
                .await;
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("audit log: could not record {action}: {e}"),
            Err(e) => tracing::error!("audit log: could not record {action}: {e}"),
        }
    }
}

/// The client's address, attached per connection by [`serve`].
#[derive(Clone, Copy)]
pub struct PeerIp(pub std::net::IpAddr);

/// The handlers' shared state.
pub(crate) fn state(accounts: Arc<Accounts>, footage: Option<footage::Footage>) -> AppState {
    let device_key = match accounts.device_key() {
        Ok(k) => k,
        Err(e) => {
            // Without a stored key, device cookies last until the restart.
            tracing::error!("device cookie key: {e}; using a temporary one");
            candor_auth::DeviceKey::random()
        }
    };
    AppState {
        accounts,
        limiter: Arc::new(auth::Limiter::default()),
        hashing: Arc::new(candor_auth::HashGate::default()),
        device_key: Arc::new(device_key),
        exports: Default::default(),
        footage: footage.map(Arc::new),
        metrics: Arc::new(live::LiveMetrics::default()),
        started: std::time::Instant::now(),
    }
}
