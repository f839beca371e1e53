//! Retina alone, for the recording benchmark (`bench/record_vs_ffmpeg.py
//! --retina-sink`): N RTSP sessions over TCP, set up as `ingest` sets up a
//! camera, every frame demuxed and dropped. Nothing is written, checked or
//! indexed, so its CPU is the least a recorder built on retina can spend:
//! what stands between Candor and the floor before Candor does any work of
//! its own.
//!
//! ```sh
//! cargo build --release -p candor-recorder --example retina_sink
//! retina_sink 127.0.0.1:8554 64    # cameras rtsp://127.0.0.1:8554/cam0 … cam63
//! ```

use futures::StreamExt;
use retina::client::{PlayOptions, Session, SessionOptions, SetupOptions, Transport};
use retina::codec::{CodecItem, FrameFormat};
use std::num::NonZeroU32;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(addr), Some(n)) = (args.get(1), args.get(2).and_then(|n| n.parse::<usize>().ok()))
    else {
        eprintln!("usage: retina_sink HOST:PORT CAMERAS");
        std::process::exit(2);
    };
    // The runtime `candor run` uses (cmd::runtime): multi-threaded, default size.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let code = rt.block_on(async {
        let sessions: Vec<_> = (0..n)
            .map(|i| tokio::spawn(session(format!("rtsp://{addr}/cam{i}"))))
            .collect();
        for s in sessions {
            match s.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    eprintln!("retina_sink: {e}");
                    return 1;
                }
                Err(e) => {
                    eprintln!("retina_sink: {e}");
                    return 1;
                }
            }
        }
        0
    });
    std::process::exit(code);
}

async fn session(url: String) -> Result<(), Error> {
    let url = url::Url::parse(&url)?;
    let mut session = Session::describe(url, SessionOptions::default()).await?;
    let video = session
        .streams()
        .iter()
        .position(|s| s.media() == "video")
        .ok_or("no video stream")?;
    session
        .setup(
            video,
            SetupOptions::default()
                .transport(Transport::Tcp(Default::default()))
                .frame_format(FrameFormat::MP4),
        )
        .await?;
    let playing = session
        .play(PlayOptions::default().enforce_timestamps_with_max_jump_secs(
            NonZeroU32::new(10).expect("non-zero"),
        ))
        .await?;
    let mut demuxed = playing.demuxed()?;
    while let Some(item) = demuxed.next().await {
        if let CodecItem::VideoFrame(f) = item? {
            // As `ingest` does, take the frame's bytes; then drop them.
            std::hint::black_box(f.into_data());
        }
    }
    Ok(())
}
