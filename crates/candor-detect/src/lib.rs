//! Object detection on the CPU (docs/design/objects.md).
//!
//! - [`Runtime::load`]: ONNX Runtime from the shared library the owner
//!   names, after checking that no one but its owner (root or this user)
//!   can change it: it is code that runs inside the recorder.
//! - [`Ssd`]: the committed SSDLite MobileNetV2 COCO model
//!   (`models/ssd_mobilenet_v2_coco.onnx`, checked against its SHA-256),
//!   one inference thread, the model's normalisation and, after it, score
//!   threshold and per-class non-maximum suppression ([`nms`]).
//! - [`resize_rgb`]: a crop of an RGB picture to the model's input,
//!   bilinear; [`crop_to_rgb`] the same from a decoder's I420 picture, and
//!   [`regions`] where to crop (around motion and followed objects).
//! - [`Tracker`]: detections across frames become objects with a life:
//!   new, better, stationary, gone.
//!
//! Input from outside (frames, the model file, the library path) is
//! checked here; nothing panics on it.

pub mod crop;
pub mod track;

pub use crop::{Yuv420, crop_to_rgb, regions};
pub use track::{Change, Track, Tracker};

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The model's input side, in pixels.
pub const INPUT: usize = 300;
/// Anchors in the model's output.
const ANCHORS: usize = 1917;
/// Classes in the model's output (COCO ids 1–90, as index = id − 1).
const CLASSES: usize = 90;
/// Overlap above which two boxes of one label are one object.
pub const NMS_IOU: f32 = 0.5;
/// Detections kept per inference, best first.
pub const MAX_DETECTIONS: usize = 100;
/// The committed model's SHA-256 (models/README.md).
pub const MODEL_SHA256: &str = "a2ae73b9cc8742c2f2cfdcca28fbb7b3c930a534f727288dea7ea293175a985d";

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(
        "ONNX Runtime library {path}: {why} (object detection needs ONNX Runtime: see the README, \"Object detection\")"
    )]
    Library { path: String, why: String },
    #[error("the model file {path}: {why}")]
    Model { path: String, why: String },
    #[error("a picture of {width}×{height} with {len} bytes is not RGB")]
    Picture {
        width: usize,
        height: usize,
        len: usize,
    },
    #[error("inference failed: {0}")]
    Run(String),
}

/// The labels Candor detects, with their index in the model's classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Label {
    Person,
    Bicycle,
    Car,
    Motorcycle,
    Bus,
    Truck,
}

impl Label {
    pub const ALL: [Label; 6] = [
        Label::Person,
        Label::Bicycle,
        Label::Car,
        Label::Motorcycle,
        Label::Bus,
        Label::Truck,
    ];

    /// The label's COCO name, as events and MQTT carry it.
    pub fn name(self) -> &'static str {
        match self {
            Label::Person => "person",
            Label::Bicycle => "bicycle",
            Label::Car => "car",
            Label::Motorcycle => "motorcycle",
            Label::Bus => "bus",
            Label::Truck => "truck",
        }
    }

    pub fn from_name(s: &str) -> Option<Label> {
        Label::ALL.into_iter().find(|l| l.name() == s)
    }

    /// Index in the model's 90 classes (COCO id − 1).
    fn class(self) -> usize {
        match self {
            Label::Person => 0,
            Label::Bicycle => 1,
            Label::Car => 2,
            Label::Motorcycle => 3,
            Label::Bus => 5,
            Label::Truck => 7,
        }
    }
}

/// One object found: its label, score (0..1), and box as `[x, y, w, h]`
/// in 0..1 of the analysed picture.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    pub label: Label,
    pub score: f32,
    pub bbox: [f32; 4],
}

/// Intersection over union of two `[x, y, w, h]` boxes.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let (ax2, ay2, bx2, by2) = (a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]);
    let w = (ax2.min(bx2) - a[0].max(b[0])).max(0.0);
    let h = (ay2.min(by2) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let union = a[2] * a[3] + b[2] * b[3] - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

/// Greedy non-maximum suppression per label: best score first, a box
/// overlapping a kept one of its label by more than `max_iou` goes. Boxes
/// are finite with positive sides ([`Ssd::detect`] drops any other).
pub fn nms(mut d: Vec<Detection>, max_iou: f32, keep: usize) -> Vec<Detection> {
    d.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut out: Vec<Detection> = Vec::new();
    for c in d {
        if out.len() >= keep {
            break;
        }
        if !out
            .iter()
            .any(|k| k.label == c.label && iou(&k.bbox, &c.bbox) > max_iou)
        {
            out.push(c);
        }
    }
    out
}

/// ONNX Runtime, loaded once per process.
pub struct Runtime {
    env: ort::environment::Environment,
}

/// What was loaded, from where; or why loading it failed once the library
/// was opened (ONNX Runtime's loader cannot be retried in one process).
/// A path refused by [`check_library`] is never opened, and not kept: the
/// owner may fix it and try again.
static LOADED: std::sync::Mutex<Option<Loaded>> = std::sync::Mutex::new(None);
type Loaded = Result<(PathBuf, Arc<Runtime>), String>;

impl Runtime {
    /// Loads ONNX Runtime from `path` (absolute), once per process: the
    /// path is resolved (links followed) and checked, then that resolved
    /// file is what is opened.
    pub fn load(path: &Path) -> Result<Arc<Runtime>, DetectError> {
        let err = |why: String| DetectError::Library {
            path: path.display().to_string(),
            why,
        };
        let real = check_library(path).map_err(err)?;
        let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
        match &*loaded {
            Some(Ok((from, rt))) if *from == real => return Ok(rt.clone()),
            Some(Ok((from, _))) => {
                return Err(err(format!(
                    "ONNX Runtime is already loaded from {}: restart to use another",
                    from.display()
                )));
            }
            Some(Err(why)) => return Err(err(format!("{why} (restart to try again)"))),
            None => {}
        }
        let r = ort::init_from(&real)
            .map_err(|e| e.to_string())
            .and_then(|b| b.with_name("candor").build().map_err(|e| e.to_string()))
            .map(|env| (real, Arc::new(Runtime { env })));
        *loaded = Some(r.clone());
        r.map(|(_, rt)| rt).map_err(err)
    }
}

/// The library runs as part of the recorder, so whoever could replace it
/// could run code as the recorder. As OpenSSH checks an authorized_keys
/// file: the path must be absolute; it is resolved (links followed); the
/// file and every folder above it must belong to root or to the recorder's
/// user and be writable by no one else, except a sticky folder of root's
/// (like `/tmp`, where no one can replace another's file). Returns the
/// resolved path, which is the one to open.
fn check_library(path: &Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::MetadataExt;
    if !path.is_absolute() {
        return Err("must be an absolute path".into());
    }
    let real = std::fs::canonicalize(path).map_err(|e| format!("cannot be read: {e}"))?;
    let me = rustix::process::geteuid().as_raw();
    let m = std::fs::metadata(&real).map_err(|e| format!("cannot be read: {e}"))?;
    if !m.is_file() {
        return Err("is not a file".into());
    }
    let owner_ok = |uid: u32| uid == 0 || uid == me;
    if !owner_ok(m.uid()) {
        return Err(format!(
            "belongs to user {}, neither root nor the recorder's user",
            m.uid()
        ));
    }
    if m.mode() & 0o022 != 0 {
        return Err(format!(
            "can be changed by others (mode {:o}): chmod go-w it",
            m.mode() & 0o777
        ));
    }
    for dir in real.ancestors().skip(1) {
        let d = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let sticky_root = d.mode() & 0o1000 != 0 && d.uid() == 0;
        if !owner_ok(d.uid()) {
            return Err(format!(
                "is in {}, which belongs to user {}, neither root nor the recorder's user",
                dir.display(),
                d.uid()
            ));
        }
        if d.mode() & 0o022 != 0 && !sticky_root {
            return Err(format!(
                "is in a folder others can write to: {} (mode {:o})",
                dir.display(),
                d.mode() & 0o7777
            ));
        }
    }
    Ok(real)
}

/// The SSDLite MobileNetV2 COCO detector, on one thread.
pub struct Ssd {
    session: ort::session::Session,
}

/// The committed model, built into the binary: nothing to install, find
/// or fetch, and nothing anyone could swap on disk.
static BUILT_IN: &[u8] = include_bytes!("../../../models/ssd_mobilenet_v2_coco.onnx");

impl Ssd {
    /// The model built into this binary (`models/ssd_mobilenet_v2_coco.onnx`).
    pub fn built_in(rt: &Runtime) -> Result<Ssd, DetectError> {
        Self::from_bytes(rt, BUILT_IN, "(built in)")
    }

    /// Loads the model at `path`, which must be the committed one.
    pub fn load(rt: &Runtime, path: &Path) -> Result<Ssd, DetectError> {
        let bytes = std::fs::read(path).map_err(|e| DetectError::Model {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        Self::from_bytes(rt, &bytes, &path.display().to_string())
    }

    fn from_bytes(rt: &Runtime, bytes: &[u8], path: &str) -> Result<Ssd, DetectError> {
        let err = |why: String| DetectError::Model {
            path: path.to_owned(),
            why,
        };
        let sum = sha256_hex(bytes);
        if sum != MODEL_SHA256 {
            return Err(err(format!(
                "SHA-256 {sum} is not the committed model's ({MODEL_SHA256})"
            )));
        }
        let session = ort::session::Session::builder(&rt.env)
            .and_then(|b| Ok(b.with_intra_threads(1)?))
            .and_then(|b| Ok(b.with_inter_threads(1)?))
            .and_then(|mut b| b.commit_from_memory(bytes))
            .map_err(|e| err(e.to_string()))?;
        Ok(Ssd { session })
    }

    /// Detects in a picture of exactly [`INPUT`]×[`INPUT`] RGB bytes;
    /// detections of `labels` at or above `min_score`, after [`nms`].
    pub fn detect(
        &mut self,
        rgb: &[u8],
        labels: &[Label],
        min_score: f32,
    ) -> Result<Vec<Detection>, DetectError> {
        if rgb.len() != INPUT * INPUT * 3 {
            return Err(DetectError::Picture {
                width: INPUT,
                height: INPUT,
                len: rgb.len(),
            });
        }
        let input: Vec<f32> = rgb
            .iter()
            .map(|&b| f32::from(b) * (2.0 / 255.0) - 1.0)
            .collect();
        let t = ort::value::Tensor::from_array(([1usize, INPUT, INPUT, 3], input))
            .map_err(|e| DetectError::Run(e.to_string()))?;
        let out = self
            .session
            .run(ort::inputs![t])
            .map_err(|e| DetectError::Run(e.to_string()))?;
        let run = |e: ort::Error| DetectError::Run(e.to_string());
        let (_, scores) = out[0].try_extract_tensor::<f32>().map_err(run)?;
        let (_, boxes) = out[1].try_extract_tensor::<f32>().map_err(run)?;
        if scores.len() != ANCHORS * CLASSES || boxes.len() != ANCHORS * 4 {
            return Err(DetectError::Run(format!(
                "the model gave {} scores and {} box values",
                scores.len(),
                boxes.len()
            )));
        }
        let mut found = Vec::new();
        for a in 0..ANCHORS {
            for &l in labels {
                let s = scores[a * CLASSES + l.class()];
                if s >= min_score && s.is_finite() {
                    let b = &boxes[a * 4..a * 4 + 4];
                    let (y1, x1) = (b[0].clamp(0.0, 1.0), b[1].clamp(0.0, 1.0));
                    let (y2, x2) = (b[2].clamp(0.0, 1.0), b[3].clamp(0.0, 1.0));
                    if x2 > x1 && y2 > y1 {
                        found.push(Detection {
                            label: l,
                            score: s,
                            bbox: [x1, y1, x2 - x1, y2 - y1],
                        });
                    }
                }
            }
        }
        Ok(nms(found, NMS_IOU, MAX_DETECTIONS))
    }
}

/// Resizes the crop `[x, y, w, h]` (pixels) of an RGB picture
/// `width`×`height` to [`INPUT`]×[`INPUT`], bilinear (pixel centres
/// aligned, as OpenCV's `INTER_LINEAR` and PIL's `BILINEAR` do when
/// enlarging). The crop is clamped into the picture; the crop actually
/// used is returned, which is what boxes found in `out` map back through.
pub fn resize_rgb(
    rgb: &[u8],
    width: usize,
    height: usize,
    crop: [usize; 4],
    out: &mut [u8],
) -> Result<[usize; 4], DetectError> {
    let bad = || DetectError::Picture {
        width,
        height,
        len: rgb.len(),
    };
    if width == 0
        || height == 0
        || width.checked_mul(height).and_then(|p| p.checked_mul(3)) != Some(rgb.len())
    {
        return Err(bad());
    }
    if out.len() != INPUT * INPUT * 3 {
        return Err(bad());
    }
    let x0 = crop[0].min(width - 1);
    let y0 = crop[1].min(height - 1);
    let cw = crop[2].clamp(1, width - x0);
    let ch = crop[3].clamp(1, height - y0);
    let sx = cw as f32 / INPUT as f32;
    let sy = ch as f32 / INPUT as f32;
    for oy in 0..INPUT {
        let fy = ((oy as f32 + 0.5) * sy - 0.5).clamp(0.0, (ch - 1) as f32);
        let (y1, wy) = (fy.floor() as usize, fy.fract());
        let y2 = (y1 + 1).min(ch - 1);
        for ox in 0..INPUT {
            let fx = ((ox as f32 + 0.5) * sx - 0.5).clamp(0.0, (cw - 1) as f32);
            let (x1, wx) = (fx.floor() as usize, fx.fract());
            let x2 = (x1 + 1).min(cw - 1);
            let px =
                |x: usize, y: usize, c: usize| f32::from(rgb[((y0 + y) * width + x0 + x) * 3 + c]);
            for c in 0..3 {
                let top = px(x1, y1, c) * (1.0 - wx) + px(x2, y1, c) * wx;
                let bottom = px(x1, y2, c) * (1.0 - wx) + px(x2, y2, c) * wx;
                out[(oy * INPUT + ox) * 3 + c] = (top * (1.0 - wy) + bottom * wy).round() as u8;
            }
        }
    }
    Ok([x0, y0, cw, ch])
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(label: Label, score: f32, bbox: [f32; 4]) -> Detection {
        Detection { label, score, bbox }
    }

    #[test]
    fn iou_of_boxes() {
        let a = [0.0, 0.0, 0.5, 0.5];
        assert_eq!(iou(&a, &a), 1.0);
        assert_eq!(iou(&a, &[0.5, 0.5, 0.5, 0.5]), 0.0);
        let half = iou(&a, &[0.25, 0.0, 0.5, 0.5]);
        assert!((half - 1.0 / 3.0).abs() < 1e-6, "{half}");
        assert_eq!(iou(&[0.0, 0.0, 0.0, 0.0], &[0.0, 0.0, 0.0, 0.0]), 0.0);
    }

    #[test]
    fn nms_keeps_the_best_of_each_overlapping_group_per_label() {
        let d = vec![
            det(Label::Person, 0.6, [0.1, 0.1, 0.2, 0.4]),
            det(Label::Person, 0.9, [0.11, 0.1, 0.2, 0.4]),
            // The same place, another label: kept.
            det(Label::Car, 0.5, [0.1, 0.1, 0.2, 0.4]),
            det(Label::Person, 0.7, [0.6, 0.1, 0.2, 0.4]),
        ];
        let k = nms(d, NMS_IOU, 10);
        let got: Vec<(Label, f32)> = k.iter().map(|d| (d.label, d.score)).collect();
        assert_eq!(
            got,
            [
                (Label::Person, 0.9),
                (Label::Person, 0.7),
                (Label::Car, 0.5)
            ]
        );
        assert_eq!(nms(k, NMS_IOU, 1).len(), 1);
    }

    #[test]
    fn a_resize_keeps_flat_colour_and_edges_where_they_belong() {
        // Left half red, right half blue, 600×300: the 300×300 output of
        // the whole picture is red on the left and blue on the right.
        let (w, h) = (600, 300);
        let mut rgb = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                let p = (y * w + x) * 3;
                if x < w / 2 {
                    rgb[p] = 200;
                } else {
                    rgb[p + 2] = 100;
                }
            }
        }
        let mut out = vec![0u8; INPUT * INPUT * 3];
        resize_rgb(&rgb, w, h, [0, 0, w, h], &mut out).unwrap();
        let at = |x: usize, y: usize| &out[(y * INPUT + x) * 3..(y * INPUT + x) * 3 + 3];
        assert_eq!(at(10, 10), [200, 0, 0]);
        assert_eq!(at(140, 299), [200, 0, 0]);
        assert_eq!(at(160, 0), [0, 0, 100]);
        // A crop of the right half only: all blue.
        resize_rgb(&rgb, w, h, [300, 0, 300, 300], &mut out).unwrap();
        assert!(out.chunks(3).all(|p| p == [0, 0, 100]));
        // A crop past the edge is clamped, not read out of bounds, and the
        // crop used is what comes back.
        let used = resize_rgb(&rgb, w, h, [590, 290, 500, 500], &mut out).unwrap();
        assert_eq!(used, [590, 290, 10, 10]);
        assert!(out.chunks(3).all(|p| p == [0, 0, 100]));
    }

    #[test]
    fn hostile_sizes_are_errors() {
        let mut out = vec![0u8; INPUT * INPUT * 3];
        for (w, h, len) in [(0, 10, 0), (10, 10, 299), (usize::MAX, 2, 6), (4, 4, 48)] {
            let rgb = vec![0u8; len];
            let r = resize_rgb(&rgb, w, h, [0, 0, 4, 4], &mut out);
            assert_eq!(r.is_ok(), (w, h, len) == (4, 4, 48), "{w}×{h} with {len}");
        }
        assert!(resize_rgb(&[0; 48], 4, 4, [0, 0, 4, 4], &mut [0u8; 10]).is_err());
    }

    #[test]
    fn labels_round_trip_by_name() {
        for l in Label::ALL {
            assert_eq!(Label::from_name(l.name()), Some(l));
        }
        assert_eq!(Label::from_name("dog"), None);
    }
}
