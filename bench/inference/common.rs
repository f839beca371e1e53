//! What both Rust contenders share (included with `#[path]`: they are two
//! separate Cargo projects, each with its own runtime).

/// The same synthetic image in every contender (a repeatable pattern;
/// the speed of these convolutional models does not depend on content).
pub fn input(size: usize) -> Vec<f32> {
    (0..size * size * 3)
        .map(|i| {
            let (c, x, y) = (i % 3, (i / 3) % size, i / 3 / size);
            ((x * 7 + y * 3 + c * 11) % 255) as f32
        })
        .collect()
}

pub fn report(who: &str, path: &str, mut v: Vec<f64>) {
    v.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{path}: {who}, 1 thread: median {:.1} ms, min {:.1} ms over {} runs",
        v[v.len() / 2],
        v[0],
        v.len()
    );
}
