//! The motion model: a per-pixel background (running mean and mean absolute
//! deviation) on a small grey grid, foreground blobs, zones and masks, and
//! the hysteresis that turns per-frame verdicts into events.
//!
//! Why this model: a per-pixel deviation learns where the scene is *always*
//! busy (leaves, water, flags) and stops firing there, while a person crossing
//! a lawn or a road, where the deviation is small, still stands out. It costs
//! a few operations per grid cell, so the decoder, not the model, dominates.

use crate::region::Polygon;

/// Grid width in cells; the height follows the stream's aspect ratio.
pub const GRID_WIDTH: usize = 160;

/// The analysis grid for a stream of `width`×`height` pixels.
pub fn grid_size(width: usize, height: usize) -> (usize, usize) {
    let h = (GRID_WIDTH * height.max(1) + width.max(1) / 2) / width.max(1);
    (GRID_WIDTH, h.clamp(60, 160))
}

/// A grey image plane as a decoder hands it out (rows may be padded).
#[derive(Clone, Copy)]
pub struct Plane<'a> {
    pub data: &'a [u8],
    pub stride: usize,
    pub width: usize,
    pub height: usize,
}

/// Area-average `p` down to `gw`×`gh` into `out`. Averaging (not sampling)
/// removes most sensor and compression noise before the model sees it.
pub fn downscale(p: Plane<'_>, gw: usize, gh: usize, out: &mut Vec<u8>) {
    out.clear();
    out.resize(gw * gh, 0);
    if p.width == 0 || p.height == 0 || p.data.len() < p.stride * (p.height - 1) + p.width {
        return;
    }
    let mut cols = vec![0u32; p.width];
    for gy in 0..gh {
        let (y0, y1) = (
            gy * p.height / gh,
            ((gy + 1) * p.height / gh).max(gy * p.height / gh + 1),
        );
        cols.iter_mut().for_each(|c| *c = 0);
        for y in y0..y1.min(p.height) {
            let row = &p.data[y * p.stride..y * p.stride + p.width];
            for (c, &v) in cols.iter_mut().zip(row) {
                *c += u32::from(v);
            }
        }
        let rows = (y1.min(p.height) - y0) as u32;
        for gx in 0..gw {
            let (x0, x1) = (
                gx * p.width / gw,
                ((gx + 1) * p.width / gw).max(gx * p.width / gw + 1),
            );
            let x1 = x1.min(p.width);
            let sum: u32 = cols[x0..x1].iter().sum();
            out[gy * gw + gx] = (sum / (rows * (x1 - x0) as u32).max(1)) as u8;
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Zone {
    pub name: String,
    pub polygon: Polygon,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// 1 (only large, clear changes) to 100 (the slightest change).
    pub sensitivity: u8,
    /// Smallest moving area that counts, as a fraction of the image (0..1).
    pub min_size: f32,
    /// When non-empty, motion counts only where it touches a zone.
    pub zones: Vec<Zone>,
    /// Areas never analysed.
    pub masks: Vec<Polygon>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sensitivity: 60,
            min_size: 0.003,
            zones: Vec::new(),
            masks: Vec::new(),
        }
    }
}

/// The verdict on one analysed frame.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Analysis {
    /// A blob at least `min_size` large, inside a zone when there are zones.
    pub motion: bool,
    /// The largest qualifying blob as a fraction of the image (0..1).
    pub score: f32,
    /// Foreground cells as a fraction of the analysed (unmasked) area.
    pub changed: f32,
    /// Index into `Settings::zones` of the zone that saw the most motion.
    pub zone: Option<usize>,
    /// The model is still learning the scene (after start or a scene change).
    pub learning: bool,
    /// Most of the image changed at once (lights, IR switch, camera moved):
    /// the model restarts instead of firing.
    pub scene_change: bool,
    /// Every blob of at least `min_size`, zones or not, as `[x, y, w, h]`
    /// fractions of the image: where object detection looks (it has zones
    /// of its own). Largest first, at most [`MAX_BOXES`].
    pub boxes: Vec<[f32; 4]>,
}

/// Motion boxes reported per frame at most (the largest are kept).
pub const MAX_BOXES: usize = 16;

/// Analysed frames the model learns from before it may report motion.
const WARMUP: u32 = 15;
/// Learning rate of the mean and deviation once warmed up (per analysed frame;
/// about 10 s of memory at 5 fps).
const ALPHA: f32 = 0.02;
/// Foreground cells adapt this much slower, so a person who stops is absorbed
/// over a minute, not at once.
const ALPHA_FG: f32 = ALPHA / 8.0;
/// More than this fraction changing at once is a scene change, not motion.
const SCENE_CHANGE: f32 = 0.6;

pub struct Detector {
    settings: Settings,
    gw: usize,
    gh: usize,
    mean: Vec<f32>,
    dev: Vec<f32>,
    active: Vec<bool>,
    active_cells: usize,
    zones: Vec<Vec<bool>>,
    k: f32,
    t_min: f32,
    min_cells: usize,
    seen: u32,
    fg: Vec<bool>,
    label: Vec<u32>,
    stack: Vec<usize>,
}

impl Detector {
    pub fn new(settings: Settings, gw: usize, gh: usize) -> Detector {
        let n = gw * gh;
        let mut active = vec![true; n];
        for m in &settings.masks {
            for (a, inside) in active.iter_mut().zip(m.rasterise(gw, gh)) {
                *a &= !inside;
            }
        }
        let zones = settings
            .zones
            .iter()
            .map(|z| z.polygon.rasterise(gw, gh))
            .collect();
        let s = f32::from(settings.sensitivity.clamp(1, 100));
        let dull = (100.0 - s) / 99.0; // 0 at the most sensitive, 1 at the least
        Detector {
            gw,
            gh,
            mean: vec![0.0; n],
            dev: vec![0.0; n],
            active_cells: active.iter().filter(|&&a| a).count(),
            active,
            zones,
            k: 2.5 + 3.5 * dull,
            t_min: 5.0 + 11.0 * dull,
            min_cells: ((settings.min_size.clamp(0.0, 1.0) * n as f32).round() as usize).max(2),
            seen: 0,
            fg: vec![false; n],
            label: vec![0; n],
            stack: Vec::new(),
            settings,
        }
    }

    pub fn grid(&self) -> (usize, usize) {
        (self.gw, self.gh)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Starts learning the scene again (after a decoder restart, say).
    pub fn reset(&mut self) {
        self.seen = 0;
    }

    /// Analyses one grid (`gw`×`gh` grey levels) and learns from it.
    pub fn analyse(&mut self, grid: &[u8]) -> Analysis {
        let n = self.gw * self.gh;
        if grid.len() != n {
            return Analysis::default();
        }
        if self.seen == 0 {
            let dev0 = self.t_min / self.k;
            for ((m, d), &g) in self.mean.iter_mut().zip(&mut self.dev).zip(grid) {
                *m = f32::from(g);
                *d = dev0;
            }
        }
        self.seen = self.seen.saturating_add(1);
        let learning = self.seen <= WARMUP;
        // Learn fast while warming up, so the first events come after seconds.
        let (alpha, alpha_fg) = if learning {
            (0.15, 0.15)
        } else {
            (ALPHA, ALPHA_FG)
        };
        let mut changed = 0usize;
        let (k, t_min) = (self.k, self.t_min);
        for ((((&g, mean), dev), fg), &active) in grid
            .iter()
            .zip(&mut self.mean)
            .zip(&mut self.dev)
            .zip(&mut self.fg)
            .zip(&self.active)
        {
            let d = f32::from(g) - *mean;
            let ad = d.abs();
            let is_fg = active && ad > (k * *dev).max(t_min);
            *fg = is_fg;
            changed += usize::from(is_fg);
            *mean += if is_fg { alpha_fg } else { alpha } * d;
            // The deviation learns from every frame, foreground included:
            // that is how a swaying branch teaches the model it is always busy.
            *dev += alpha * (ad.min(64.0) - *dev);
        }
        let changed_frac = changed as f32 / self.active_cells.max(1) as f32;
        if learning {
            return Analysis {
                changed: changed_frac,
                learning: true,
                ..Default::default()
            };
        }
        if changed_frac > SCENE_CHANGE {
            for (m, &g) in self.mean.iter_mut().zip(grid) {
                *m = f32::from(g);
            }
            self.seen = 1;
            return Analysis {
                changed: changed_frac,
                scene_change: true,
                learning: true,
                ..Default::default()
            };
        }
        let (best, zone, boxes) = self.blobs();
        Analysis {
            motion: best > 0,
            score: best as f32 / n as f32,
            changed: changed_frac,
            zone,
            learning: false,
            scene_change: false,
            boxes,
        }
    }

    /// 8-connected components of the foreground. Returns the size of the
    /// largest qualifying blob (0 if none), the zone with most motion, and
    /// the boxes of every blob of at least the minimum size.
    fn blobs(&mut self) -> (usize, Option<usize>, Vec<[f32; 4]>) {
        let (w, h) = (self.gw, self.gh);
        self.label.iter_mut().for_each(|l| *l = 0);
        let mut next = 0u32;
        let mut best = 0usize;
        let mut zone_hits = vec![0usize; self.zones.len()];
        let mut in_zone = vec![0usize; self.zones.len()];
        let mut boxes: Vec<(usize, [usize; 4])> = Vec::new();
        for start in 0..w * h {
            if !self.fg[start] || self.label[start] != 0 {
                continue;
            }
            next += 1;
            self.label[start] = next;
            self.stack.clear();
            self.stack.push(start);
            let mut size = 0usize;
            let mut bb = [usize::MAX, usize::MAX, 0, 0];
            in_zone.iter_mut().for_each(|c| *c = 0);
            while let Some(i) = self.stack.pop() {
                size += 1;
                for (z, c) in self.zones.iter().zip(in_zone.iter_mut()) {
                    *c += usize::from(z[i]);
                }
                let (ux, uy) = (i % w, i / w);
                bb = [bb[0].min(ux), bb[1].min(uy), bb[2].max(ux), bb[3].max(uy)];
                let (x, y) = (ux as isize, uy as isize);
                for dy in -1..=1isize {
                    for dx in -1..=1isize {
                        let (nx, ny) = (x + dx, y + dy);
                        if nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize {
                            continue;
                        }
                        let j = ny as usize * w + nx as usize;
                        if self.fg[j] && self.label[j] == 0 {
                            self.label[j] = next;
                            self.stack.push(j);
                        }
                    }
                }
            }
            if size < self.min_cells {
                continue;
            }
            boxes.push((size, bb));
            if self.zones.is_empty() {
                best = best.max(size);
                continue;
            }
            // A blob counts for a zone when a real part of it (half the
            // minimum size) lies inside, not when it merely grazes the edge.
            let mut counted = false;
            for (zi, &c) in in_zone.iter().enumerate() {
                if c * 2 >= self.min_cells {
                    zone_hits[zi] += c;
                    counted = true;
                }
            }
            if counted {
                best = best.max(size);
            }
        }
        let zone = zone_hits
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .max_by_key(|(_, c)| **c)
            .map(|(i, _)| i);
        boxes.sort_by_key(|b| std::cmp::Reverse(b.0));
        let boxes = boxes
            .iter()
            .take(MAX_BOXES)
            .map(|(_, [x0, y0, x1, y1])| {
                [
                    *x0 as f32 / w as f32,
                    *y0 as f32 / h as f32,
                    (x1 + 1 - x0) as f32 / w as f32,
                    (y1 + 1 - y0) as f32 / h as f32,
                ]
            })
            .collect();
        (best, zone, boxes)
    }
}

/// What the hysteresis decided for one analysed frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Transition {
    None,
    /// Motion began; the event starts at this frame's time.
    Start,
    /// Motion ended; the event ends at the time of the last frame with motion.
    End {
        at_90k: i64,
    },
}

/// Turns per-frame verdicts into events: start after motion in 3 of the last
/// 5 analysed frames (one noisy frame is not an event), end after `hold` with
/// none (a person pausing behind a car is one event, not two).
#[derive(Clone, Debug)]
pub struct Hysteresis {
    history: u8,
    active: bool,
    last_motion_90k: i64,
    hold_90k: i64,
}

impl Hysteresis {
    pub fn new(hold_90k: i64) -> Hysteresis {
        Hysteresis {
            history: 0,
            active: false,
            last_motion_90k: 0,
            hold_90k,
        }
    }

    pub fn active(&self) -> bool {
        self.active
    }

    pub fn update(&mut self, t_90k: i64, motion: bool) -> Transition {
        self.history = (self.history << 1 | u8::from(motion)) & 0b1_1111;
        if motion {
            self.last_motion_90k = t_90k;
        }
        if !self.active {
            if self.history.count_ones() >= 3 {
                self.active = true;
                return Transition::Start;
            }
        } else if t_90k - self.last_motion_90k >= self.hold_90k {
            self.active = false;
            self.history = 0;
            return Transition::End {
                at_90k: self.last_motion_90k,
            };
        }
        Transition::None
    }

    /// Ends an active event now (the stream stopped).
    pub fn finish(&mut self) -> Option<i64> {
        let was = self.active;
        self.active = false;
        self.history = 0;
        was.then_some(self.last_motion_90k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scene(w: usize, h: usize, seed: u32) -> Vec<u8> {
        // Textured static background with ±2 grey levels of noise.
        let mut s = seed.wrapping_mul(2654435761);
        (0..w * h)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (60 + (i % 37) as i32 + (s % 5) as i32 - 2) as u8
            })
            .collect()
    }

    fn with_box(mut g: Vec<u8>, w: usize, x0: usize, y0: usize, bw: usize, bh: usize) -> Vec<u8> {
        for y in y0..y0 + bh {
            for x in x0..x0 + bw {
                g[y * w + x] = 220;
            }
        }
        g
    }

    fn warm(d: &mut Detector, w: usize, h: usize) {
        for f in 0..WARMUP + 5 {
            assert!(!d.analyse(&scene(w, h, f)).motion);
        }
    }

    #[test]
    fn grid_follows_aspect_ratio() {
        assert_eq!(grid_size(1920, 1080), (160, 90));
        assert_eq!(grid_size(768, 576), (160, 120));
        assert_eq!(grid_size(100, 1000), (160, 160));
    }

    #[test]
    fn downscale_averages_areas() {
        // 4x2 image, left half 0, right half 200 → 2x1 grid of 0 and 200,
        // with stride padding that must be ignored.
        let data = [0, 0, 200, 200, 99, 0, 0, 200, 200, 99];
        let p = Plane {
            data: &data,
            stride: 5,
            width: 4,
            height: 2,
        };
        let mut out = Vec::new();
        downscale(p, 2, 1, &mut out);
        assert_eq!(out, [0, 200]);
    }

    #[test]
    fn static_noise_is_quiet_and_a_moving_box_fires() {
        let (w, h) = (160, 90);
        let mut d = Detector::new(Settings::default(), w, h);
        warm(&mut d, w, h);
        let a = d.analyse(&with_box(scene(w, h, 99), w, 40, 30, 8, 16));
        assert!(a.motion, "{a:?}");
        assert!((a.score - 128.0 / (160.0 * 90.0)).abs() < 0.002, "{a:?}");
    }

    #[test]
    fn blobs_below_min_size_do_not_count() {
        let (w, h) = (160, 90);
        let mut d = Detector::new(
            Settings {
                min_size: 0.01, // 144 cells
                ..Default::default()
            },
            w,
            h,
        );
        warm(&mut d, w, h);
        assert!(
            !d.analyse(&with_box(scene(w, h, 99), w, 40, 30, 8, 16))
                .motion
        );
        assert!(
            d.analyse(&with_box(scene(w, h, 98), w, 40, 30, 12, 16))
                .motion
        );
    }

    #[test]
    fn masks_and_zones_filter() {
        let (w, h) = (160, 90);
        let right = Polygon::new(vec![(0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)]).unwrap();
        let left = Polygon::new(vec![(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)]).unwrap();
        let mut masked = Detector::new(
            Settings {
                masks: vec![right.clone()],
                ..Default::default()
            },
            w,
            h,
        );
        let mut zoned = Detector::new(
            Settings {
                zones: vec![Zone {
                    name: "left".into(),
                    polygon: left,
                }],
                ..Default::default()
            },
            w,
            h,
        );
        warm(&mut masked, w, h);
        warm(&mut zoned, w, h);
        let in_right = with_box(scene(w, h, 7), w, 120, 30, 10, 20);
        let in_left = with_box(scene(w, h, 8), w, 20, 30, 10, 20);
        assert!(!masked.analyse(&in_right).motion, "motion in the mask");
        assert!(masked.analyse(&in_left).motion);
        assert!(!zoned.analyse(&in_right).motion, "motion outside the zone");
        let a = zoned.analyse(&in_left);
        assert!(a.motion);
        assert_eq!(a.zone, Some(0));
    }

    #[test]
    fn a_flickering_area_is_learned() {
        // A patch that alternates between two grey levels every frame stops
        // firing once the deviation has learned it; a new box elsewhere fires.
        let (w, h) = (160, 90);
        let mut d = Detector::new(Settings::default(), w, h);
        warm(&mut d, w, h);
        let flicker = |f: u32| {
            let mut g = scene(w, h, f);
            for y in 10..40 {
                for x in 10..40 {
                    g[y * w + x] = if f.is_multiple_of(2) { 40 } else { 110 };
                }
            }
            g
        };
        let mut fired_late = 0;
        for f in 0..400 {
            let a = d.analyse(&flicker(f));
            if f >= 300 && a.motion {
                fired_late += 1;
            }
        }
        assert_eq!(
            fired_late, 0,
            "still firing on the flicker after 300 frames"
        );
        let a = d.analyse(&with_box(flicker(400), w, 100, 50, 10, 20));
        assert!(a.motion);
    }

    #[test]
    fn a_global_change_restarts_instead_of_firing() {
        let (w, h) = (160, 90);
        let mut d = Detector::new(Settings::default(), w, h);
        warm(&mut d, w, h);
        let bright: Vec<u8> = scene(w, h, 5)
            .iter()
            .map(|v| v.saturating_add(80))
            .collect();
        let a = d.analyse(&bright);
        assert!(a.scene_change && !a.motion);
    }

    #[test]
    fn hysteresis_starts_on_three_of_five_and_holds() {
        let mut hy = Hysteresis::new(90_000 * 2);
        let f = 18_000; // 5 fps
        let seq = [true, false, true, false, true];
        let mut out = Vec::new();
        for (i, &m) in seq.iter().enumerate() {
            out.push(hy.update(i as i64 * f, m));
        }
        assert_eq!(out[4], Transition::Start);
        assert!(out[..4].iter().all(|t| *t == Transition::None));
        // 2 s without motion: ends at the last frame with motion.
        let mut end = None;
        for i in 5..30 {
            if let Transition::End { at_90k } = hy.update(i * f, false) {
                end = Some((i, at_90k));
                break;
            }
        }
        assert_eq!(end, Some((14, 4 * f)));
        // A single noisy frame afterwards is not an event.
        assert_eq!(hy.update(40 * f, true), Transition::None);
        assert_eq!(hy.update(41 * f, false), Transition::None);
    }
}
