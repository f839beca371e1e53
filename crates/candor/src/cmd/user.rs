//! `candor user`: accounts for headless and air-gapped installs.

use anyhow::Result;
use candor_web::accounts::{Accounts, Role};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum Args {
    /// Add a user. The password is read from standard input (hidden on a terminal).
    Add {
        name: String,
        #[arg(long, value_parser = ["admin", "operator", "viewer"])]
        role: String,
        /// Cameras a viewer or operator may see: names separated by commas,
        /// or `all`. Default: none (grant them later in the web app).
        #[arg(long)]
        cameras: Option<String>,
        #[arg(short, long)]
        config: PathBuf,
    },
}

pub fn run(a: Args) -> Result<()> {
    let Args::Add {
        name,
        role,
        cameras,
        config,
    } = a;
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cfg = candor_recorder::Config::load(&config)?;
    let password = super::read_password()?;
    let accounts = Accounts::open(&cfg.storage.path)?;
    let role = Role::parse(&role).expect("clap checked the role");
    accounts.add_user_scoped(
        &name,
        role,
        &password,
        camera_scope(role, cameras.as_deref()).as_deref(),
    )?;
    eprintln!("added {} user {name:?}", role.as_str());
    Ok(())
}

/// Least privilege: no camera unless named (admins see all).
fn camera_scope(role: Role, cameras: Option<&str>) -> Option<Vec<String>> {
    match cameras {
        _ if role == Role::Admin => None,
        Some("all") => None,
        Some(list) => Some(
            list.split(',')
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect(),
        ),
        None => Some(Vec::new()),
    }
}
