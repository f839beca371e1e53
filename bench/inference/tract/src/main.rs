//! `bench-tract MODEL SIZE [RUNS]`: median and best ms per inference.
use tract_onnx::prelude::*;

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

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let (path, size) = (&args[1], args[2].parse::<usize>()?);
    let runs: usize = args.get(3).map_or(Ok(20), |r| r.parse())?;
    let model = tract_onnx::onnx()
        .model_for_path(path)?
        .with_input_fact(0, f32::fact([1, size, size, 3]).into())?
        .into_optimized()?
        .into_runnable()?;
    let t: Tensor = tract_ndarray::Array4::from_shape_vec((1, size, size, 3), input(size))?.into();
    let mut v = Vec::new();
    for i in 0..runs + 3 {
        let t0 = std::time::Instant::now();
        model.run(tvec!(t.clone().into()))?;
        if i >= 3 {
            v.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    report("tract-onnx 0.23.9", path, v);
    Ok(())
}
