//! `candor demo`: the camera simulator with a few cameras, recorded by a
//! recorder whose config is written for the occasion. Nothing to set up.

use super::{DEMO_CLIP, private_server, runtime};
use anyhow::{Context, Result};
use candor_camsim::{CamSim, Source};
use candor_media::{Duration90k, Time90k};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use toml_edit::{ArrayOfTables, Item, Table, value};

#[derive(clap::Args)]
pub struct Args {
    /// Where to keep the demo's recordings.
    #[arg(long, default_value = "candor-demo-data")]
    data: PathBuf,
    #[arg(long, default_value_t = 4)]
    cameras: usize,
    /// RTSP port for the simulator (falls back to a free port if taken).
    #[arg(long, default_value_t = 8554)]
    port: u16,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    seconds: Option<u64>,
}

pub fn run(a: Args) -> Result<()> {
    private_server();
    runtime()?.block_on(demo(a))
}

/// The demo's `candor.toml`: typed TOML values, validated like any config
/// before it is written (owner-only: it will hold secrets once cameras with
/// passwords are added).
fn write_config(path: &Path, web: SocketAddr, cameras: &[String]) -> Result<()> {
    let _ = std::fs::remove_file(path);
    candor_recorder::config_edit::create(path, |doc| {
        let mut storage = Table::new();
        storage["path"] = value(".");
        storage["max_bytes"] = value("2GB");
        storage.decor_mut().set_prefix(
            "# Written by `candor demo`; use it with `candor spans`, `export` and `run`.\n",
        );
        doc["storage"] = Item::Table(storage);
        let mut w = Table::new();
        w["listen"] = value(web.to_string());
        doc["web"] = Item::Table(w);
        let mut cams = ArrayOfTables::new();
        for (i, url) in cameras.iter().enumerate() {
            let mut t = Table::new();
            t["name"] = value(format!("cam{i}"));
            t["url"] = value(url.as_str());
            t["max_age"] = value("1d");
            let mut motion = Table::new();
            motion["enabled"] = value(true);
            t["motion"] = Item::Table(motion);
            cams.push(t);
        }
        doc["cameras"] = Item::ArrayOfTables(cams);
    })?;
    Ok(())
}

async fn demo(a: Args) -> Result<()> {
    let Args {
        data,
        cameras,
        port,
        seconds,
    } = a;
    let source = Arc::new(Source::from_mp4(DEMO_CLIP).context("loading the built-in clip")?);
    let sim = match CamSim::start(
        SocketAddr::from(([127, 0, 0, 1], port)),
        cameras,
        source.clone(),
    )
    .await
    {
        Ok(s) => s,
        Err(_) => {
            CamSim::start(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                cameras,
                source.clone(),
            )
            .await?
        }
    };
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let data = std::fs::canonicalize(&data)?;
    let config_path = data.join("candor.toml");
    let web_port = if std::net::TcpListener::bind(("127.0.0.1", 8443)).is_ok() {
        8443
    } else {
        0
    };
    let urls: Vec<String> = (0..cameras).map(|i| sim.url(i)).collect();
    write_config(
        &config_path,
        SocketAddr::from(([127, 0, 0, 1], web_port)),
        &urls,
    )?;
    let cfg = candor_recorder::Config::load(&config_path)?;
    let exe = std::env::args().next().unwrap_or_else(|| "candor".into());
    let start = Time90k::now();
    eprintln!("Candor demo");
    eprintln!(
        "  camera simulator: {} … cam{} ({:.0} kbit/s H.264 each, looping a {:.0} s clip)",
        sim.url(0),
        cameras.saturating_sub(1),
        source.bitrate() as f64 / 1e3,
        source.duration_secs()
    );
    eprintln!("  recording into:   {}", data.display());
    eprintln!("  config:           {}", config_path.display());
    eprintln!(
        "  web app:          https://127.0.0.1:{web_port}/ (first time: open the #setup= link logged below)"
    );
    eprintln!("  after a minute, list what was recorded and export 30 s of it:");
    eprintln!("    {exe} spans -c {} --camera cam0", config_path.display());
    eprintln!(
        "    {exe} export -c {} --camera cam0 --from {} --to {} -o cam0.mp4",
        config_path.display(),
        start + Duration90k(5 * 90_000),
        start + Duration90k(35 * 90_000)
    );
    eprintln!("  Ctrl-C stops (footage is kept).");
    super::run::record(cfg, config_path, seconds.map(Duration::from_secs)).await?;
    drop(sim);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_demo_config_is_valid_private_and_says_what_it_is() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("candor.toml");
        let urls = [
            "rtsp://127.0.0.1:8554/cam0".to_owned(),
            "rtsp://127.0.0.1:8554/cam1".to_owned(),
        ];
        super::write_config(&p, "127.0.0.1:8443".parse().unwrap(), &urls).unwrap();
        let cfg = candor_recorder::Config::load(&p).unwrap();
        assert_eq!(cfg.cameras.len(), 2);
        assert_eq!(cfg.cameras[1].name.get_ref().0, "cam1");
        assert!(cfg.cameras[0].motion.enabled);
        assert_eq!(cfg.web.listen.port(), 8443);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("# Written by `candor demo`"), "{text}");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
