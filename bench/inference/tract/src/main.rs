//! `bench-tract MODEL SIZE [RUNS]`: median and best ms per inference.
use tract_onnx::prelude::*;

#[path = "../../common.rs"]
mod common;
use common::{input, report};

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
