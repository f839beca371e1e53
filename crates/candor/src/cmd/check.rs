//! `candor check`: do the index and the segment files agree? Read-only.

use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(short, long)]
    config: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let store = super::open_store(&a.config)?;
    let problems = store.check()?;
    for p in &problems {
        println!("{p}");
    }
    anyhow::ensure!(problems.is_empty(), "{} problem(s) found", problems.len());
    println!("index and segment files agree");
    Ok(())
}
