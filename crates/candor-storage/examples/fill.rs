//! Benchmark helper: writes `SECONDS` of footage for camera `NAME` into a
//! store, looping an MP4 clip, through the real writer, as fast as the disk
//! allows, with timestamps ending now. The export benchmark needs an hour
//! of footage without recording for an hour.
//!
//! cargo run --release -p candor-storage --example fill -- DIR NAME CLIP.mp4 SECONDS

use candor_media::Time90k;
use candor_storage::Store;
use candor_storage::writer::{IngestFrame, Msg, SampleEntry, Writer, WriterOptions};
use std::sync::Arc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, name, clip, seconds] = &args[..] else {
        eprintln!("usage: fill DIR CAMERA CLIP.mp4 SECONDS");
        std::process::exit(2);
    };
    let seconds: i64 = seconds.parse().expect("SECONDS");
    let data = std::fs::read(clip).expect("reading clip");
    let c = candor_media::mp4::read::parse(&data).expect("parsing clip");
    let (store, _) = Store::open(std::path::Path::new(dir)).expect("opening store");
    let store = Arc::new(store);
    let camera_id = store.ensure_camera(name).expect("camera");
    let writer = Writer::spawn(
        store.clone(),
        WriterOptions {
            fsync_interval: std::time::Duration::from_secs(1),
            on_write_error: None,
            segment_target_90k: 60 * 90_000,
        },
    );
    let tx = writer.sender();
    let entry = Arc::new(SampleEntry {
        codec: c.config.codec,
        width: c.width,
        height: c.height,
        data: c.sample_entry.clone(),
    });
    let clip_len = c.duration_90k();
    let total = seconds * 90_000;
    let start = Time90k::now().0 - total;
    let mut first = true;
    let (mut loop_base, mut written) = (0i64, 0u64);
    'outer: loop {
        for s in &c.samples {
            let ts = loop_base + s.time_90k;
            if ts >= total {
                break 'outer;
            }
            let frame = IngestFrame {
                camera_id,
                media_ts: ts,
                key: s.key,
                data: data[s.offset as usize..s.offset as usize + s.size as usize].to_vec(),
                recv_wall: Time90k(start + ts),
                recv_mono: ts,
                new_run: first,
                entry: first.then(|| entry.clone()),
            };
            first = false;
            written += u64::from(s.size);
            tx.blocking_send(Msg::Frame(frame)).expect("writer alive");
        }
        loop_base += clip_len;
    }
    drop(tx);
    writer.shutdown();
    eprintln!(
        "wrote {seconds} s, {:.1} MB, for camera {name:?}",
        written as f64 / 1e6
    );
}
