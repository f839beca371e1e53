//! Runs motion detection over an MP4 clip as fast as it can and reports the
//! cost, for `bench/motion_cpu.py`:
//!
//!     cargo run --release -p candor-motion --example scan -- CLIP [FPS]
//!
//! Prints one JSON line: frames, analysed frames, events, CPU seconds used
//! (this process, user + system) and the clip's duration.

use candor_motion::{ScanEvent, Scanner, Settings};

fn cpu_secs() -> f64 {
    // utime and stime, fields 14 and 15 of /proc/self/stat, in 1/100 s.
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / 100.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: scan CLIP.mp4 [FPS]");
    let fps: f32 = args.next().map(|v| v.parse().expect("FPS")).unwrap_or(5.0);
    let data = std::fs::read(&path).expect("reading the clip");
    let clip = candor_media::mp4::read::parse(&data).expect("parsing the clip");
    let mut s = Scanner::new(&clip.config, Settings::default(), fps, 90_000 * 5).expect("decoder");
    let (mut events, t0, c0) = (0, std::time::Instant::now(), cpu_secs());
    for smp in &clip.samples {
        let b = &data[smp.offset as usize..smp.offset as usize + smp.size as usize];
        if let Ok(Some(ScanEvent::Start { .. })) = s.push(smp.time_90k, b, smp.key) {
            events += 1;
        }
    }
    let st = s.stats();
    println!(
        "{{\"clip\":{path:?},\"width\":{},\"height\":{},\"frames\":{},\"decoded\":{},\"analysed\":{},\"events\":{events},\"cpu_s\":{:.3},\"wall_s\":{:.3},\"duration_s\":{:.3}}}",
        clip.width,
        clip.height,
        clip.samples.len(),
        st.decoded,
        st.analysed,
        cpu_secs() - c0,
        t0.elapsed().as_secs_f64(),
        clip.duration_90k() as f64 / 90_000.0
    );
}
