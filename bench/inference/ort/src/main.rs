//! `ORT_LIB=…/libonnxruntime.so.1.x bench-ort MODEL SIZE [RUNS]`: median
//! and best ms per inference.
use ort::session::{Session, builder::GraphOptimizationLevel};
use ort::value::Tensor;

#[path = "../../common.rs"]
mod common;
use common::{input, report};

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
