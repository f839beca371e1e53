//! Candor's detections against onnxruntime's on real frames (issue 14,
//! "correct inference"): the same model and input in onnxruntime from
//! Python, with onnxruntime's own NonMaxSuppression operator as the
//! post-processing. Every detection must match one of the other side's with
//! the same label at IoU ≥ 0.9. Needs `pip install onnxruntime onnx numpy`
//! and ffmpeg (.ci/run installs them).

mod support;

use candor_detect::{INPUT, Label, Runtime, Ssd, iou};
use std::path::Path;
use std::process::Command;
use support::{library, root};

const FRAMES: usize = 50;
const MIN_SCORE: f32 = 0.5;

#[test]
fn detections_on_real_frames_match_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("frames.rgb");
    // Every other frame of the committed 10 s clip (people walking, a van,
    // a car), scaled to the model's input by ffmpeg for both sides.
    let o = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(root().join("assets/clips/vtest-h264-10s.mp4"))
        .args([
            "-vf",
            &format!("select=not(mod(n\\,2)),scale={INPUT}:{INPUT}"),
            "-fps_mode",
            "passthrough",
            "-frames:v",
            &FRAMES.to_string(),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
        ])
        .arg(&frames)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let raw = std::fs::read(&frames).unwrap();
    assert_eq!(raw.len(), FRAMES * INPUT * INPUT * 3);

    let model = root().join("models/ssd_mobilenet_v2_coco.onnx");
    let rt = Runtime::load(&library()).unwrap();
    let mut ssd = Ssd::load(&rt, &model).unwrap();
    let ours: Vec<_> = raw
        .chunks(INPUT * INPUT * 3)
        .map(|f| ssd.detect(f, &Label::ALL, MIN_SCORE).unwrap())
        .collect();

    let o = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ssd_reference.py"))
        .arg(&model)
        .arg(&frames)
        .arg(MIN_SCORE.to_string())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let theirs: Vec<Vec<(String, f32, [f32; 4])>> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let v: Vec<serde_json::Value> = serde_json::from_str(l).unwrap();
            v.iter()
                .map(|d| {
                    let f = |i: usize| d[i].as_f64().unwrap() as f32;
                    (
                        d[0].as_str().unwrap().to_owned(),
                        f(1),
                        [f(2), f(3), f(4), f(5)],
                    )
                })
                .collect()
        })
        .collect();
    assert_eq!(theirs.len(), FRAMES);

    let (mut total, mut people, mut upright, mut worst) = (0, 0, 0, 1.0f32);
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(
            a.len(),
            b.len(),
            "frame {i}: Candor {a:?} onnxruntime {b:?}"
        );
        // One to one: each of ours matches one of theirs, used once.
        let mut used = vec![false; a.len()];
        for (label, score, bbox) in b {
            let best = a
                .iter()
                .enumerate()
                .filter(|(k, d)| !used[*k] && d.label.name() == label)
                .map(|(k, d)| (k, iou(&d.bbox, bbox), (d.score - score).abs()))
                .max_by(|x, y| x.1.total_cmp(&y.1));
            let Some((k, overlap, dscore)) = best else {
                panic!("frame {i}: onnxruntime's {label} {score} {bbox:?} has no match in {a:?}");
            };
            used[k] = true;
            assert!(overlap >= 0.9, "frame {i}: {label} at IoU {overlap}");
            assert!(
                dscore < 1e-3,
                "frame {i}: {label} scores differ by {dscore}"
            );
            worst = worst.min(overlap);
            total += 1;
            if label == "person" {
                people += 1;
                // The clip is 768×576 squeezed to 300×300: a walking person
                // is still taller than wide. Boxes read with x and y swapped
                // (on both sides alike) would fail here.
                upright += usize::from(bbox[3] > bbox[2]);
            }
        }
    }
    println!(
        "{total} detections on {FRAMES} frames ({people} people, {upright} taller than wide), worst IoU {worst:.4}"
    );
    assert!(
        people >= FRAMES,
        "the clip has people in every frame: {people} found"
    );
    assert!(
        upright * 10 >= people * 9,
        "{upright} of {people} people upright"
    );
}
