//! `candor spans`: a camera's recorded spans and the gaps between them.

use super::{open_camera, parse_opt_time};
use anyhow::Result;
use candor_media::Time90k;
use candor_wire::{Span, Spans};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(short, long)]
    config: PathBuf,
    #[arg(long)]
    camera: String,
    /// RFC 3339; default: everything.
    #[arg(long)]
    from: Option<String>,
    #[arg(long)]
    to: Option<String>,
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let (store, id) = open_camera(&a.config, &a.camera)?;
    let from = parse_opt_time(a.from.as_deref(), "from")?.unwrap_or(Time90k(i64::MIN / 2));
    let to = parse_opt_time(a.to.as_deref(), "to")?.unwrap_or(Time90k(i64::MAX / 2));
    let spans = candor_storage::export::spans(&store, id, from, to)?;
    let out =
        |a: Time90k, b: Time90k| Span::new(a.to_string(), b.to_string(), (b - a).as_secs_f64());
    let recorded: Vec<Span> = spans.iter().map(|s| out(s.start, s.end)).collect();
    let gaps: Vec<Span> = spans
        .windows(2)
        .map(|w| out(w[0].end, w[1].start))
        .collect();
    let camera = &a.camera;
    if a.json {
        let all = Spans {
            camera: camera.clone(),
            spans: recorded,
            gaps,
        };
        println!("{}", serde_json::to_string(&all)?);
        return Ok(());
    }
    if spans.is_empty() {
        println!("no footage recorded for {camera} in that range");
        return Ok(());
    }
    for (i, s) in recorded.iter().enumerate() {
        println!("recorded  {}  {}  ({:.1} s)", s.start, s.end, s.seconds);
        if let Some(g) = gaps.get(i) {
            println!("gap       {}  {}  ({:.1} s)", g.start, g.end, g.seconds);
        }
    }
    Ok(())
}
