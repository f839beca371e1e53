//! `candor camsim`: simulated RTSP (and optionally ONVIF) cameras looping
//! an MP4 clip, for tests, demos and benchmarks.

use super::{DEMO_CLIP, read_password, runtime, shutdown_signal};
use anyhow::{Context, Result};
use candor_camsim::{CamSim, Source};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "127.0.0.1:8554")]
    listen: SocketAddr,
    #[arg(long, default_value_t = 4)]
    cameras: usize,
    /// H.264 or H.265 MP4 clip (default: the built-in 768x576 H.264 clip).
    #[arg(long)]
    source: Option<PathBuf>,
    /// Also serve ONVIF device/media services over HTTP here.
    #[arg(long)]
    onvif: Option<SocketAddr>,
    /// And answer WS-Discovery probes on this UDP address.
    #[arg(long, default_value = "127.0.0.1:3702")]
    discovery: SocketAddr,
    /// ONVIF user (its password is read from standard input).
    #[arg(long, default_value = "admin")]
    onvif_user: String,
    /// Seconds the simulated cameras' clocks are off (clients must correct for it).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    onvif_clock_offset: i64,
    /// Pace every stream from its PLAY exactly (by default each starts at a
    /// random point within one frame interval, as independent cameras do).
    #[arg(long)]
    aligned_phases: bool,
}

pub fn run(a: Args) -> Result<()> {
    let password = match a.onvif {
        Some(_) => Some(read_password()?),
        None => None,
    };
    runtime()?.block_on(camsim(a, password))
}

async fn camsim(a: Args, password: Option<String>) -> Result<()> {
    let (listen, cameras) = (a.listen, a.cameras);
    let bytes = match &a.source {
        Some(p) => std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        None => DEMO_CLIP.to_vec(),
    };
    let src = Arc::new(Source::from_mp4(&bytes).context("preparing the clip")?);
    let sim = CamSim::start(listen, cameras, src.clone())
        .await
        .with_context(|| format!("listening on {listen}"))?;
    sim.align_phases(a.aligned_phases);
    let _onvif = match (a.onvif, password) {
        (Some(http), Some(password)) => {
            let cfg = candor_camsim::onvif::OnvifConfig {
                username: a.onvif_user,
                password,
                clock_offset_secs: a.onvif_clock_offset,
                cameras,
                rtsp_base: format!("rtsp://{}", sim.local_addr()),
            };
            let o = candor_camsim::onvif::OnvifSim::start(http, a.discovery, cfg, src.clone())
                .await
                .with_context(|| format!("serving ONVIF on {http} / {}", a.discovery))?;
            eprintln!(
                "camsim: ONVIF devices at http://{}/onvif/camN/device_service; WS-Discovery on udp://{}",
                o.http, o.discovery
            );
            Some(o)
        }
        _ => None,
    };
    eprintln!(
        "camsim: serving {} camera(s) at {} … {} ({} {:.0} kbit/s, {} frames looping every {:.1} s); Ctrl-C stops",
        cameras,
        sim.url(0),
        sim.url(cameras.saturating_sub(1)),
        src.codec().as_str(),
        src.bitrate() as f64 / 1e3,
        src.frame_count(),
        src.duration_secs()
    );
    shutdown_signal().await;
    Ok(())
}
