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
//!
//! `SINK_SHAPE` adds parts of `ingest`'s shape, to price them one at a
//! time: `timeout` (a stall timeout and a shutdown watch around each
//! frame), `send` (each frame handed to a thread that drains its queue
//! every 25 ms and frees it there, as the writer did before its 200 ms batches), or both
//! (`timeout,send`). The draining thread runs in every shape (idle unless
//! `send`), so that the shapes differ only in what the sessions do.
//!
//! `write` (with `SINK_OUT=DIR`) appends each frame as a segment-file
//! record (16-byte header with CRC-32, one `writev`) to a file per camera:
//! on the session's own task, with an `fdatasync` every 5 s as the floor
//! and the recorder's default have; or with `send` on the draining thread,
//! which is the writer's shape (without the `fdatasync`). The two price
//! writing in place against handing frames to a writer thread. `write`
//! alone is the least a recorder on retina can spend that writes what
//! Candor writes: `bench/record_vs_ffmpeg.py --pairs --retina-sink` runs it.
//!
//! `packets,write` skips retina's depacketizer: it reads retina's RTP
//! packet stream (`Session<Playing>` as a `Stream`) and writes each access
//! unit (the packets up to the RTP marker) as one record, its payloads
//! passed to one `writev` as they arrived, FU-A headers and all. No
//! depacketizer can cost less, so this prices the hybrid of retina's
//! session with a depacketizer of Candor's own (`--packets` in the bench).

use futures::StreamExt;
use retina::client::{PlayOptions, Session, SessionOptions, SetupOptions, Transport};
use retina::codec::{CodecItem, FrameFormat};
use std::num::NonZeroU32;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(addr), Some(n)) = (
        args.get(1),
        args.get(2).and_then(|n| n.parse::<usize>().ok()),
    ) else {
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
    let name = url.path().trim_start_matches('/').replace('/', "_");
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
        .play(
            PlayOptions::default()
                .enforce_timestamps_with_max_jump_secs(NonZeroU32::new(10).expect("non-zero")),
        )
        .await?;
    let shaped = std::env::var("SINK_SHAPE").unwrap_or_default();
    if shaped.contains("packets") {
        let dir = std::env::var("SINK_OUT").map_err(|_| "SINK_SHAPE=packets needs SINK_OUT")?;
        let file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(std::path::Path::new(&dir).join(name))?;
        return packets(playing, file).await;
    }
    let mut demuxed = playing.demuxed()?;
    let (_stop, mut stop_rx) = tokio::sync::watch::channel(false);
    let tx = SINK.get_or_init(napper).clone();
    let out = if shaped.contains("write") {
        let dir = std::env::var("SINK_OUT").map_err(|_| "SINK_SHAPE=write needs SINK_OUT")?;
        Some(std::sync::Arc::new(
            std::fs::File::options()
                .create(true)
                .append(true)
                .open(std::path::Path::new(&dir).join(name))?,
        ))
    } else {
        None
    };
    let mut synced = std::time::Instant::now();
    loop {
        let item = if shaped.contains("timeout") {
            tokio::select! {
                r = tokio::time::timeout(std::time::Duration::from_secs(20), demuxed.next()) => r?,
                _ = stop_rx.changed() => return Ok(()),
            }
        } else {
            demuxed.next().await
        };
        let Some(item) = item else { break };
        if let CodecItem::VideoFrame(f) = item? {
            let (pts, key) = (f.timestamp().elapsed() as u32, f.is_random_access_point());
            let data = f.into_data();
            if shaped.contains("send") {
                tx.send((out.clone(), pts, key, data)).await?;
            } else if let Some(file) = &out {
                write_record(file, pts, key, &data)?;
                // fdatasync every 5 s, as the recorder's default and the floor do.
                if synced.elapsed() >= std::time::Duration::from_secs(5) {
                    file.sync_data()?;
                    synced = std::time::Instant::now();
                }
            } else {
                // As `ingest` does, take the frame's bytes; then drop them.
                std::hint::black_box(data);
            }
        }
    }
    Ok(())
}

/// SINK_SHAPE=packets: see the module's comment.
async fn packets(
    mut playing: Session<retina::client::Playing>,
    file: std::fs::File,
) -> Result<(), Error> {
    let mut pieces: Vec<bytes::Bytes> = Vec::new();
    let mut synced = std::time::Instant::now();
    while let Some(item) = playing.next().await {
        let retina::client::PacketItem::Rtp(pkt) = item? else {
            continue;
        };
        let (mark, pts) = (pkt.mark(), pkt.timestamp().elapsed() as u32);
        pieces.push(pkt.into_payload_bytes());
        if !mark {
            continue;
        }
        write_pieces(&file, pts, false, &pieces)?;
        pieces.clear();
        if synced.elapsed() >= std::time::Duration::from_secs(5) {
            file.sync_data()?;
            synced = std::time::Instant::now();
        }
    }
    Ok(())
}

/// Candor's record over a frame in pieces: the CRC runs over each piece,
/// and one `writev` takes them all (at this clip's frame sizes).
fn write_pieces<P: AsRef<[u8]>>(
    mut file: &std::fs::File,
    pts: u32,
    key: bool,
    pieces: &[P],
) -> std::io::Result<()> {
    use std::io::{IoSlice, Write};
    let h = candor_storage::segfile::record_header_pieces(pieces, pts, key);
    let mut iov = Vec::with_capacity(pieces.len() + 1);
    iov.push(IoSlice::new(&h));
    iov.extend(pieces.iter().map(|p| IoSlice::new(p.as_ref())));
    // A frame of more than IOV_MAX (1,024) pieces, or a short write, takes
    // more than one call.
    let mut rest = &mut iov[..];
    while !rest.is_empty() {
        let n = file.write_vectored(rest)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

type Sent = (Option<std::sync::Arc<std::fs::File>>, u32, bool, Vec<u8>);
static SINK: std::sync::OnceLock<tokio::sync::mpsc::Sender<Sent>> = std::sync::OnceLock::new();

fn write_record(file: &std::fs::File, pts: u32, key: bool, data: &[u8]) -> std::io::Result<()> {
    write_pieces(file, pts, key, &[data])
}

/// SINK_SHAPE=send: frames go to a thread that drains them every 25 ms, as
/// the writer did before its 200 ms batches (and drops them there).
fn napper() -> tokio::sync::mpsc::Sender<Sent> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Sent>(4096);
    std::thread::spawn(move || {
        loop {
            match rx.try_recv() {
                Ok((Some(file), pts, key, data)) => {
                    if let Err(e) = write_record(&file, pts, key, &data) {
                        eprintln!("retina_sink: {e}");
                        std::process::exit(1);
                    }
                }
                Ok((None, _, _, f)) => drop(std::hint::black_box(f)),
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                    std::thread::sleep(std::time::Duration::from_millis(25))
                }
                Err(_) => return,
            }
        }
    });
    tx
}
