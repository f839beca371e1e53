//! Candor's detector on raw 300×300 RGB frames, timed (bench/objects.py).
//! Usage: detect_frames LIBONNXRUNTIME FRAMES.rgb MIN_SCORE PASSES
//! Prints JSON: the median ms per frame (normalisation, inference and
//! post-processing: everything `Ssd::detect` does) and detections per pass.

use candor_detect::{INPUT, Label, Runtime, Ssd};
use std::time::Instant;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let [_, lib, frames, min_score, passes] = &a[..] else {
        eprintln!("usage: detect_frames LIBONNXRUNTIME FRAMES.rgb MIN_SCORE PASSES");
        std::process::exit(2);
    };
    let raw = std::fs::read(frames).expect("frames");
    let min_score: f32 = min_score.parse().expect("min score");
    let passes: usize = passes.parse().expect("passes");
    let rt = Runtime::load(std::path::Path::new(lib)).expect("runtime");
    let mut ssd = Ssd::built_in(&rt).expect("model");
    // Warm-up, as the reference does.
    for f in raw.chunks(INPUT * INPUT * 3).take(3) {
        ssd.detect(f, &Label::ALL, min_score).expect("detect");
    }
    let (mut ms, mut found) = (Vec::new(), 0usize);
    for _ in 0..passes {
        for f in raw.chunks(INPUT * INPUT * 3) {
            let t = Instant::now();
            found += ssd.detect(f, &Label::ALL, min_score).expect("detect").len();
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "{{\"median_ms\": {:.3}, \"frames\": {}, \"detections\": {}}}",
        ms[ms.len() / 2],
        ms.len(),
        found
    );
}
