//! The recorder's own preprocessing against ffmpeg's: squares of decoded
//! I420 frames converted to RGB by [`crop_to_rgb`] (what the recorder feeds
//! the model) and the same squares of ffmpeg's RGB conversion of the same
//! frames. The pixels agree within rounding, and the model finds the same
//! objects in both (same labels, IoU ≥ 0.9) on 50 real frames. Needs
//! ffmpeg and the PyPI onnxruntime wheel's library (.ci/run installs them).

mod support;

use candor_detect::{INPUT, Label, Runtime, Ssd, Yuv420, crop_to_rgb, iou};
use std::process::Command;
use support::{library, root};

const FRAMES: usize = 50;
const W: usize = 768;
const H: usize = 576;

/// Every other frame of the walking clip as raw `pix_fmt`, by ffmpeg.
fn frames(pix_fmt: &str, extra: &[&str]) -> Vec<u8> {
    let o = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(root().join("assets/clips/vtest-h264-10s.mp4"))
        .args(["-vf", "select=not(mod(n\\,2))", "-fps_mode", "passthrough"])
        .args(extra)
        .args([
            "-frames:v",
            &FRAMES.to_string(),
            "-f",
            "rawvideo",
            "-pix_fmt",
            pix_fmt,
            "-",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

#[test]
fn the_recorders_crops_match_ffmpegs_conversion_and_find_the_same_objects() {
    let yuv = frames("yuv420p", &[]);
    // BT.601 limited range (what the clip says), chroma interpolated.
    let rgb = frames(
        "rgb24",
        &["-sws_flags", "bilinear+full_chroma_int+accurate_rnd"],
    );
    let (ysz, csz) = (W * H, (W / 2) * (H / 2));
    assert_eq!(yuv.len(), FRAMES * (ysz + 2 * csz));
    assert_eq!(rgb.len(), FRAMES * ysz * 3);
    let rt = Runtime::load(&library()).unwrap();
    let mut ssd = Ssd::built_in(&rt).unwrap();
    // The squares the recorder would take around people in this scene: the
    // path through the middle and the right, at the model's size (so the
    // comparison is of the conversion, not of two resampling filters).
    let squares = [[234, 150, INPUT, INPUT], [468, 200, INPUT, INPUT]];
    let (mut ours, mut theirs) = (vec![0u8; INPUT * INPUT * 3], vec![0u8; INPUT * INPUT * 3]);
    let (mut diff_sum, mut diff_max, mut n) = (0u64, 0u8, 0u64);
    let (mut matched, mut found) = (0, 0);
    for f in 0..FRAMES {
        let base = f * (ysz + 2 * csz);
        let pic = Yuv420 {
            y: &yuv[base..base + ysz],
            u: &yuv[base + ysz..base + ysz + csz],
            v: &yuv[base + ysz + csz..base + ysz + 2 * csz],
            strides: [W, W / 2, W / 2],
            width: W,
            height: H,
        };
        let frame = &rgb[f * ysz * 3..(f + 1) * ysz * 3];
        for sq in squares {
            assert_eq!(crop_to_rgb(&pic, sq, &mut ours).unwrap(), sq);
            for row in 0..INPUT {
                let at = ((sq[1] + row) * W + sq[0]) * 3;
                theirs[row * INPUT * 3..(row + 1) * INPUT * 3]
                    .copy_from_slice(&frame[at..at + INPUT * 3]);
            }
            for (a, b) in ours.iter().zip(&theirs) {
                let d = a.abs_diff(*b);
                diff_sum += u64::from(d);
                diff_max = diff_max.max(d);
                n += 1;
            }
            let a = ssd.detect(&ours, &Label::ALL, 0.5).unwrap();
            let b = ssd.detect(&theirs, &Label::ALL, 0.5).unwrap();
            // Every confident detection on one side is on the other: same
            // label, IoU ≥ 0.9. (A detection within 0.05 of the score floor
            // may fall either side of it from a rounding.)
            for (x, y) in [(&a, &b), (&b, &a)] {
                for d in x.iter().filter(|d| d.score >= 0.55) {
                    found += 1;
                    let best = y
                        .iter()
                        .filter(|e| e.label == d.label)
                        .map(|e| iou(&e.bbox, &d.bbox))
                        .fold(0.0f32, f32::max);
                    assert!(
                        best >= 0.9,
                        "frame {f} square {sq:?}: {d:?} best IoU {best}\nours {a:?}\nffmpeg's {b:?}"
                    );
                    matched += 1;
                }
            }
        }
    }
    let mean = diff_sum as f64 / n as f64;
    eprintln!(
        "{n} values: mean |diff| {mean:.3}, max {diff_max}; {matched}/{found} detections matched"
    );
    assert!(mean < 1.0, "mean difference {mean}");
    assert!(found >= 100, "people in the squares: {found}");
}
