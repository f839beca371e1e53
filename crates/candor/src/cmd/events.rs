//! `candor events`: events, newest first, as text or as the same JSON the
//! API and MQTT send ([`candor_wire::Event`]).

use super::{open_store, parse_opt_time};
use anyhow::{Context, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(short, long)]
    config: PathBuf,
    #[arg(long)]
    camera: Option<String>,
    /// RFC 3339: events still going on at or after this instant.
    #[arg(long)]
    since: Option<String>,
    /// Object events of this label only (person, bicycle, car, motorcycle, bus, truck).
    #[arg(long)]
    label: Option<String>,
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let store = open_store(&a.config)?;
    let camera_id = match &a.camera {
        Some(c) => Some(
            store
                .camera_id(c)?
                .with_context(|| format!("no camera named {c:?} in the index"))?,
        ),
        None => None,
    };
    let list = store.events(&candor_storage::events::EventFilter {
        camera_id,
        since: parse_opt_time(a.since.as_deref(), "since")?,
        label: a.label.clone(),
        ..Default::default()
    })?;
    if a.json {
        let v: Vec<candor_wire::Event> = list.iter().map(Into::into).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if list.is_empty() {
        eprintln!("no events");
    }
    for e in &list {
        println!(
            "{:>6}  {:<12} {:<7} {}  {}  {}",
            e.id,
            e.camera,
            e.label.as_deref().unwrap_or(&e.kind),
            e.start,
            e.end.map_or("ongoing".to_string(), |t| t.to_string()),
            e.score.map_or(String::new(), |s| format!("score {s:.2}"))
        );
    }
    Ok(())
}
