//! From a decoded picture to the model's input: where to look (squares
//! around the motion and the objects being followed, as Frigate does), and
//! each square converted from the decoder's I420 to RGB and resized in one
//! pass, so no whole frame is ever converted.

use crate::{DetectError, INPUT};

/// A decoded I420 picture as the decoder hands it out (rows may be padded;
/// chroma at half width and height, rounded up).
#[derive(Clone, Copy)]
pub struct Yuv420<'a> {
    pub y: &'a [u8],
    pub u: &'a [u8],
    pub v: &'a [u8],
    /// Bytes per row of Y, U and V.
    pub strides: [usize; 3],
    pub width: usize,
    pub height: usize,
}

impl Yuv420<'_> {
    fn check(&self) -> Result<(), DetectError> {
        let (w, h) = (self.width, self.height);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let fits = |data: &[u8], stride: usize, pw: usize, ph: usize| {
            stride >= pw
                && stride
                    .checked_mul(ph - 1)
                    .and_then(|n| n.checked_add(pw))
                    .is_some_and(|n| n <= data.len())
        };
        if w == 0
            || h == 0
            || !fits(self.y, self.strides[0], w, h)
            || !fits(self.u, self.strides[1], cw, ch)
            || !fits(self.v, self.strides[2], cw, ch)
        {
            return Err(DetectError::Picture {
                width: w,
                height: h,
                len: self.y.len(),
            });
        }
        Ok(())
    }
}

/// Converts the square (or any) crop `[x, y, w, h]` (pixels) of `pic` to
/// [`INPUT`]×[`INPUT`] RGB, bilinear on luma and chroma alike (pixel
/// centres aligned, as [`crate::resize_rgb`]), BT.601 limited range (what
/// H.264 cameras send, and what ffmpeg assumes). The crop is clamped into
/// the picture; the crop used is returned.
pub fn crop_to_rgb(
    pic: &Yuv420<'_>,
    crop: [usize; 4],
    out: &mut [u8],
) -> Result<[usize; 4], DetectError> {
    pic.check()?;
    if out.len() != INPUT * INPUT * 3 {
        return Err(DetectError::Picture {
            width: INPUT,
            height: INPUT,
            len: out.len(),
        });
    }
    let (w, h) = (pic.width, pic.height);
    let x0 = crop[0].min(w - 1);
    let y0 = crop[1].min(h - 1);
    let cw = crop[2].clamp(1, w - x0);
    let ch = crop[3].clamp(1, h - y0);
    let (sx, sy) = (cw as f32 / INPUT as f32, ch as f32 / INPUT as f32);
    // Source coordinates and weights per output column, computed once.
    let cols: Vec<(usize, usize, f32)> = (0..INPUT).map(|o| taps(o, sx, x0, cw)).collect();
    let ccols: Vec<(usize, usize, f32)> = (0..INPUT).map(|o| chroma_taps(o, sx, x0, w)).collect();
    let (ys, us, vs) = (pic.strides[0], pic.strides[1], pic.strides[2]);
    for oy in 0..INPUT {
        let (r1, r2, wy) = taps(oy, sy, y0, ch);
        let (c1, c2, wcy) = chroma_taps(oy, sy, y0, h);
        let (ya, yb) = (&pic.y[r1 * ys..], &pic.y[r2 * ys..]);
        let (ua, ub) = (&pic.u[c1 * us..], &pic.u[c2 * us..]);
        let (va, vb) = (&pic.v[c1 * vs..], &pic.v[c2 * vs..]);
        let row = &mut out[oy * INPUT * 3..(oy + 1) * INPUT * 3];
        for (ox, px) in row.chunks_exact_mut(3).enumerate() {
            let (x1, x2, wx) = cols[ox];
            let (u1, u2, wu) = ccols[ox];
            let luma = lerp2(ya[x1], ya[x2], yb[x1], yb[x2], wx, wy);
            let cb = lerp2(ua[u1], ua[u2], ub[u1], ub[u2], wu, wcy);
            let cr = lerp2(va[u1], va[u2], vb[u1], vb[u2], wu, wcy);
            let c = 1.164_383 * (luma - 16.0);
            let (d, e) = (cb - 128.0, cr - 128.0);
            px[0] = to_u8(c + 1.596_027 * e);
            px[1] = to_u8(c - 0.391_762 * d - 0.812_968 * e);
            px[2] = to_u8(c + 2.017_232 * d);
        }
    }
    Ok([x0, y0, cw, ch])
}

/// The two source samples (absolute) and the second's weight for output
/// position `o` of a crop starting at `start`, `len` samples long.
fn taps(o: usize, scale: f32, start: usize, len: usize) -> (usize, usize, f32) {
    let f = ((o as f32 + 0.5) * scale - 0.5).clamp(0.0, (len - 1) as f32);
    let a = f.floor() as usize;
    (start + a, start + (a + 1).min(len - 1), f.fract())
}

/// As [`taps`], on the half-resolution chroma plane (chroma sample `i`
/// sits at the centre of luma samples `2i` and `2i + 1`).
fn chroma_taps(o: usize, scale: f32, start: usize, full: usize) -> (usize, usize, f32) {
    let n = full.div_ceil(2);
    let luma = (start as f32 + (o as f32 + 0.5) * scale - 0.5).max(0.0);
    let f = ((luma + 0.5) / 2.0 - 0.5).clamp(0.0, (n - 1) as f32);
    let a = f.floor() as usize;
    (a, (a + 1).min(n - 1), f.fract())
}

fn lerp2(a: u8, b: u8, c: u8, d: u8, wx: f32, wy: f32) -> f32 {
    let top = f32::from(a) + (f32::from(b) - f32::from(a)) * wx;
    let bottom = f32::from(c) + (f32::from(d) - f32::from(c)) * wx;
    top + (bottom - top) * wy
}

fn to_u8(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// Squares grow to take in a nearby box up to this side (pixels): the
/// model then sees things at two thirds of their size at worst, and one
/// inference does the work of two.
pub const MERGE_MAX: usize = INPUT * 3 / 2;

/// Where to look in a `width`×`height` picture: squares around the
/// objects being followed (first: they must stay in view) and the motion
/// boxes (largest first), each box `[x, y, w, h]` in 0..1. A box's square
/// is the box grown by a quarter, at least [`INPUT`] pixels (small,
/// far-away people keep their size instead of being shrunk with the whole
/// frame) and at most the picture's shorter side, centred on the box and
/// moved inside the picture. A box already inside a square gets none of
/// its own; one near a square grows that square instead, up to
/// [`MERGE_MAX`]. At most `max` squares, as `[x, y, side, side]` pixels.
pub fn regions(
    width: usize,
    height: usize,
    objects: &[[f32; 4]],
    motion: &[[f32; 4]],
    max: usize,
) -> Vec<[usize; 4]> {
    let mut out: Vec<[usize; 4]> = Vec::new();
    if width == 0 || height == 0 {
        return out;
    }
    let short = width.min(height);
    let (fw, fh) = (width as f32, height as f32);
    let floor = INPUT.min(short);
    let grow_max = MERGE_MAX.clamp(floor, short);
    // A square of `side` centred on (cx, cy), moved inside the picture.
    let square = |cx: f32, cy: f32, side: usize| {
        let place = |centre: f32, len: usize| {
            let start = (centre - side as f32 / 2.0).max(0.0) as usize;
            start.min(len - side)
        };
        [place(cx, width), place(cy, height), side, side]
    };
    for b in objects.iter().chain(motion) {
        if !b.iter().all(|v| v.is_finite()) || b[2] <= 0.0 || b[3] <= 0.0 {
            continue;
        }
        let (bx, by) = (b[0].clamp(0.0, 1.0) * fw, b[1].clamp(0.0, 1.0) * fh);
        let (bw, bh) = (b[2].min(1.0) * fw, b[3].min(1.0) * fh);
        let inside = |r: &[usize; 4]| {
            let (rx, ry, rs) = (r[0] as f32, r[1] as f32, r[2] as f32);
            bx >= rx && by >= ry && bx + bw <= rx + rs && by + bh <= ry + rs
        };
        if out.iter().any(inside) {
            continue;
        }
        // The box with its margin, as the square it would get alone needs.
        let (mx, my) = (bw * 0.125, bh * 0.125);
        let (x0, y0, x1, y1) = (bx - mx, by - my, bx + bw + mx, by + bh + my);
        // Grow the first square that can take it in within the limit.
        let grown = out.iter_mut().find_map(|r| {
            let (rx, ry, rs) = (r[0] as f32, r[1] as f32, r[2] as f32);
            let (ux0, uy0) = (x0.min(rx).max(0.0), y0.min(ry).max(0.0));
            let (ux1, uy1) = (x1.max(rx + rs).min(fw), y1.max(ry + rs).min(fh));
            let side = ((ux1 - ux0).max(uy1 - uy0).ceil() as usize).max(r[2]);
            (side <= grow_max).then(|| {
                *r = square((ux0 + ux1) / 2.0, (uy0 + uy1) / 2.0, side);
            })
        });
        if grown.is_some() || out.len() >= max {
            continue;
        }
        let side = ((bw.max(bh) * 1.25) as usize).clamp(floor, short);
        out.push(square(bx + bw / 2.0, by + bh / 2.0, side));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flat I420 picture of one colour.
    fn flat(w: usize, h: usize, yuv: [u8; 3]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        (
            vec![yuv[0]; w * h],
            vec![yuv[1]; cw * ch],
            vec![yuv[2]; cw * ch],
        )
    }

    #[test]
    fn colours_convert_as_bt601_limited_range() {
        // ffmpeg's yuv420p → rgb24 for these (BT.601, limited range).
        for (yuv, rgb) in [
            ([16, 128, 128], [0u8, 0, 0]),
            ([235, 128, 128], [255, 255, 255]),
            ([81, 90, 240], [255, 0, 0]),
            ([145, 54, 34], [0, 255, 0]),
            ([41, 240, 110], [0, 0, 255]),
        ] {
            let (y, u, v) = flat(64, 48, yuv);
            let pic = Yuv420 {
                y: &y,
                u: &u,
                v: &v,
                strides: [64, 32, 32],
                width: 64,
                height: 48,
            };
            let mut out = vec![0u8; INPUT * INPUT * 3];
            crop_to_rgb(&pic, [0, 0, 64, 48], &mut out).unwrap();
            for px in out.chunks(3) {
                for c in 0..3 {
                    assert!(
                        (i16::from(px[c]) - i16::from(rgb[c])).abs() <= 2,
                        "{yuv:?} gave {px:?}, not {rgb:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_crop_shows_only_its_part_and_padding_is_never_read() {
        // 100×60 with a stride of 128: left half dark, right half light;
        // the padding is 255 and must never show.
        let (w, h, s) = (100, 60, 128);
        let mut y = vec![255u8; s * h];
        for r in 0..h {
            for c in 0..w {
                y[r * s + c] = if c < 50 { 30 } else { 200 };
            }
        }
        let (u, v) = (vec![128u8; 64 * 30], vec![128u8; 64 * 30]);
        let pic = Yuv420 {
            y: &y,
            u: &u,
            v: &v,
            strides: [s, 64, 64],
            width: w,
            height: h,
        };
        let mut out = vec![0u8; INPUT * INPUT * 3];
        let used = crop_to_rgb(&pic, [60, 10, 40, 40], &mut out).unwrap();
        assert_eq!(used, [60, 10, 40, 40]);
        let light = to_u8(1.164_383 * (200.0 - 16.0));
        assert!(out.iter().all(|&b| b == light), "only the light half");
        // Past the edge: clamped, and the right edge is the picture's, not the padding.
        let used = crop_to_rgb(&pic, [90, 50, 300, 300], &mut out).unwrap();
        assert_eq!(used, [90, 50, 10, 10]);
        assert!(out.iter().all(|&b| b == light));
    }

    #[test]
    fn hostile_pictures_are_errors() {
        let mut out = vec![0u8; INPUT * INPUT * 3];
        let (y, u, v) = flat(16, 16, [16, 128, 128]);
        for (w, h, strides) in [
            (0, 16, [16, 8, 8]),
            (16, 17, [16, 8, 8]),
            (16, 16, [15, 8, 8]),
            (16, 16, [16, 8, usize::MAX]),
            (usize::MAX, 1, [usize::MAX, 8, 8]),
        ] {
            let pic = Yuv420 {
                y: &y,
                u: &u,
                v: &v,
                strides,
                width: w,
                height: h,
            };
            assert!(
                crop_to_rgb(&pic, [0, 0, 4, 4], &mut out).is_err(),
                "{w}×{h} {strides:?}"
            );
        }
        let pic = Yuv420 {
            y: &y,
            u: &u,
            v: &v,
            strides: [16, 8, 8],
            width: 16,
            height: 16,
        };
        assert!(crop_to_rgb(&pic, [0, 0, 4, 4], &mut out[..10]).is_err());
        assert!(crop_to_rgb(&pic, [usize::MAX, usize::MAX, usize::MAX, 0], &mut out).is_ok());
    }

    #[test]
    fn regions_are_squares_inside_the_picture_around_what_moves() {
        // A small person far away in 1920×1080: a 300 px square around
        // them, not the whole frame.
        let r = regions(1920, 1080, &[], &[[0.5, 0.5, 0.02, 0.05]], 4);
        assert_eq!(r.len(), 1);
        let [x, y, s, s2] = r[0];
        assert_eq!((s, s2), (300, 300));
        assert!(
            x <= 960 && x + s >= 998 && y <= 540 && y + s >= 594,
            "{r:?}"
        );
        // At the corner: moved inside.
        let r = regions(1920, 1080, &[], &[[0.99, 0.99, 0.01, 0.01]], 4);
        assert_eq!(r, [[1620, 780, 300, 300]]);
        // A big box: grown by a quarter, capped at the shorter side.
        let r = regions(640, 360, &[], &[[0.0, 0.0, 1.0, 1.0]], 4);
        assert_eq!(r, [[140, 0, 360, 360]]);
        // Small pictures: the shorter side, even under the model's input.
        let r = regions(320, 240, &[], &[[0.4, 0.4, 0.1, 0.1]], 4);
        assert_eq!(r[0][2], 240);
        // Boxes inside an earlier square share it; objects come first; at most `max`.
        let r = regions(
            1920,
            1080,
            &[[0.1, 0.1, 0.02, 0.05]],
            &[
                [0.105, 0.11, 0.01, 0.01],
                [0.8, 0.8, 0.01, 0.01],
                [0.5, 0.1, 0.01, 0.01],
            ],
            2,
        );
        assert_eq!(r.len(), 2);
        assert!(r[0][0] <= 192 && r[0][1] <= 108);
        assert!(r[1][0] > 1000, "the second square is the far box's: {r:?}");
        // Hostile boxes are skipped.
        assert!(
            regions(
                640,
                360,
                &[],
                &[[f32::NAN, 0.0, 0.1, 0.1], [0.0, 0.0, -1.0, 0.1]],
                4
            )
            .is_empty()
        );
        assert!(regions(0, 360, &[], &[[0.0, 0.0, 0.1, 0.1]], 4).is_empty());
    }
}
