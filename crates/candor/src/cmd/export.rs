//! `candor export`: a time range of one camera as an MP4 file, without
//! transcoding, with progress on the terminal.

use super::{open_camera, parse_time};
use anyhow::{Context, Result};
use candor_storage::{Export, ExportError};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(short, long)]
    config: PathBuf,
    #[arg(long)]
    camera: String,
    /// Start, RFC 3339 (e.g. 2026-11-27T10:00:00Z).
    #[arg(long)]
    from: String,
    /// End, RFC 3339.
    #[arg(long)]
    to: String,
    #[arg(short, long)]
    output: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let (camera, output) = (&a.camera, &a.output);
    let (store, id) = open_camera(&a.config, camera)?;
    let (from, to) = (parse_time(&a.from, "from")?, parse_time(&a.to, "to")?);
    let export = match Export::plan(&store, id, from, to) {
        Ok(e) => e,
        Err(e @ (ExportError::NoFootage { .. } | ExportError::BadRange { .. })) => {
            anyhow::bail!("{e}")
        }
        Err(e) => return Err(e).context("planning the export"),
    };
    let total = export.total_len();
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template"),
    );
    // Written beside the output and renamed at the end: a failed or
    // interrupted export never leaves a file that looks complete.
    let mut partial = output.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let r = export.write_to(&mut w, |n| bar.set_position(n));
    bar.finish_and_clear();
    if let Err(e) = r {
        let _ = std::fs::remove_file(&partial);
        return Err(e).context("exporting");
    }
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    std::fs::rename(&partial, output)?;
    eprintln!(
        "exported {} {} … {} ({:.3} s, {} frames, {}, {:.1} MB) to {}",
        camera,
        export.from,
        export.to,
        (export.to - export.from).as_secs_f64(),
        export.frames(),
        export.codec,
        total as f64 / 1e6,
        output.display()
    );
    if export.from > from || export.to < to {
        eprintln!(
            "note: footage covers only part of the requested range; the file holds what exists"
        );
    }
    for g in &export.gaps {
        eprintln!(
            "note: gap in footage {} … {} (the last frame before it is held)",
            g.start, g.end
        );
    }
    Ok(())
}
