//! `ORT_LIB=…/libonnxruntime.so.1.x bench-ort MODEL SIZE [RUNS]`: median
//! and best ms per inference.
use ort::session::{Session, builder::GraphOptimizationLevel};
use ort::value::Tensor;

/// The same synthetic image in every contender (a repeatable pattern;
/// the speed of these convolutional models does not depend on content).
fn input(size: usize) -> Vec<f32> {
    (0..size * size * 3)
        .map(|i| {
            let (c, x, y) = (i % 3, (i / 3) % size, i / 3 / size);
            ((x * 7 + y * 3 + c * 11) % 255) as f32
        })
        .collect()
}

fn report(who: &str, path: &str, mut v: Vec<f64>) {
    v.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{path}: {who}, 1 thread: median {:.1} ms, min {:.1} ms over {} runs",
        v[v.len() / 2],
        v[0],
        v.len()
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (path, size) = (&args[1], args[2].parse::<usize>()?);
    let runs: usize = args.get(3).map_or(Ok(20), |r| r.parse())?;
    let env = ort::init_from(std::env::var("ORT_LIB")?)?.build()?;
    let mut s = Session::builder(&env)?
        .with_optimization_level(GraphOptimizationLevel::Level3)?
        .with_intra_threads(1)?
        .with_inter_threads(1)?
        .commit_from_file(path)?;
    let data = input(size);
    let mut v = Vec::new();
    for i in 0..runs + 3 {
        let t = Tensor::from_array(([1usize, size, size, 3], data.clone()))?;
        let t0 = std::time::Instant::now();
        let out = s.run(ort::inputs![t])?;
        drop(out);
        if i >= 3 {
            v.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    report("ort 2.0.0-rc.15 + libonnxruntime (PyPI)", path, v);
    Ok(())
}
