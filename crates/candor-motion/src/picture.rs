//! Decoded pictures kept for snapshots, and JPEG encoding.

use crate::model::Plane;

/// An owned I420 picture with tight rows (chroma planes are half size,
/// rounded up).
#[derive(Clone, Debug, PartialEq)]
pub struct Picture {
    pub width: usize,
    pub height: usize,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("picture {0}x{1} is too large or empty for a JPEG")]
    Size(usize, usize),
    #[error("JPEG encoding: {0}")]
    Encode(#[from] jpeg_encoder::EncodingError),
}

fn copy_plane(p: Plane<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.width * p.height);
    for row in 0..p.height {
        let start = row * p.stride;
        match p.data.get(start..start + p.width) {
            Some(r) => out.extend_from_slice(r),
            None => out.resize(out.len() + p.width, 0),
        }
    }
    out
}

impl Picture {
    /// Copies strided planes (as a decoder hands them out).
    pub fn from_planes(y: Plane<'_>, u: Plane<'_>, v: Plane<'_>) -> Picture {
        Picture {
            width: y.width,
            height: y.height,
            y: copy_plane(y),
            u: copy_plane(u),
            v: copy_plane(v),
        }
    }

    fn chroma_size(&self) -> (usize, usize) {
        (self.width.div_ceil(2), self.height.div_ceil(2))
    }

    pub fn luma(&self) -> Plane<'_> {
        Plane {
            data: &self.y,
            stride: self.width,
            width: self.width,
            height: self.height,
        }
    }

    /// An area-averaged copy at most `max_width` wide (aspect kept, even sizes).
    pub fn scaled_to_width(&self, max_width: usize) -> Picture {
        if self.width <= max_width || self.width == 0 {
            return self.clone();
        }
        let w = max_width & !1;
        let h = ((self.height * w / self.width).max(2)) & !1;
        let (cw, ch) = self.chroma_size();
        let plane = |data: &[u8], pw: usize, ph: usize, ow: usize, oh: usize| {
            let mut out = Vec::new();
            crate::model::downscale(
                Plane {
                    data,
                    stride: pw,
                    width: pw,
                    height: ph,
                },
                ow,
                oh,
                &mut out,
            );
            out
        };
        Picture {
            width: w,
            height: h,
            y: plane(&self.y, self.width, self.height, w, h),
            u: plane(&self.u, cw, ch, w / 2, h / 2),
            v: plane(&self.v, cw, ch, w / 2, h / 2),
        }
    }

    /// Draws the outline of `bbox` (`[x, y, w, h]` in 0..1) in a colour
    /// given as YCbCr, `thickness` pixels wide inside the box. Boxes
    /// outside the picture are clipped; non-finite ones draw nothing.
    pub fn draw_box(&mut self, bbox: [f32; 4], ycc: [u8; 3], thickness: usize) {
        let (w, h) = (self.width, self.height);
        let (cw, ch) = self.chroma_size();
        if w == 0 || h == 0 || !bbox.iter().all(|v| v.is_finite()) || self.y.len() < w * h {
            return;
        }
        let px = |v: f32, n: usize| ((v.clamp(0.0, 1.0) * n as f32) as usize).min(n - 1);
        let (x0, y0) = (px(bbox[0], w), px(bbox[1], h));
        let (x1, y1) = (px(bbox[0] + bbox[2], w), px(bbox[1] + bbox[3], h));
        if x1 < x0 || y1 < y0 {
            return;
        }
        let t = thickness.max(1);
        for y in y0..=y1 {
            for x in x0..=x1 {
                let edge = x < x0 + t || x + t > x1 || y < y0 + t || y + t > y1;
                if !edge {
                    continue;
                }
                self.y[y * w + x] = ycc[0];
                let c = (y / 2).min(ch.saturating_sub(1)) * cw + (x / 2).min(cw.saturating_sub(1));
                if let Some(u) = self.u.get_mut(c) {
                    *u = ycc[1];
                }
                if let Some(v) = self.v.get_mut(c) {
                    *v = ycc[2];
                }
            }
        }
    }

    /// Baseline JPEG straight from YCbCr (no colour conversion needed).
    pub fn jpeg(&self, quality: u8) -> Result<Vec<u8>, SnapshotError> {
        let (w, h) = (self.width, self.height);
        let (Ok(w16), Ok(h16)) = (u16::try_from(w), u16::try_from(h)) else {
            return Err(SnapshotError::Size(w, h));
        };
        let (cw, _) = self.chroma_size();
        if w == 0 || h == 0 || self.y.len() < w * h {
            return Err(SnapshotError::Size(w, h));
        }
        let mut ycc = Vec::with_capacity(w * h * 3);
        for row in 0..h {
            for col in 0..w {
                let c = (row / 2) * cw + col / 2;
                ycc.push(self.y[row * w + col]);
                ycc.push(self.u.get(c).copied().unwrap_or(128));
                ycc.push(self.v.get(c).copied().unwrap_or(128));
            }
        }
        let mut out = Vec::new();
        let mut enc = jpeg_encoder::Encoder::new(&mut out, quality);
        enc.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_0);
        enc.encode(&ycc, w16, h16, jpeg_encoder::ColorType::Ycbcr)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_has_markers_and_dimensions() {
        let (w, h) = (64, 48);
        let p = Picture {
            width: w,
            height: h,
            y: (0..w * h).map(|i| (i % 251) as u8).collect(),
            u: vec![100; 32 * 24],
            v: vec![150; 32 * 24],
        };
        let j = p.jpeg(80).unwrap();
        assert_eq!(&j[..2], &[0xFF, 0xD8]);
        assert_eq!(&j[j.len() - 2..], &[0xFF, 0xD9]);
        // SOF0: FF C0, len(2), precision(1), height(2), width(2).
        let sof = j.windows(2).position(|b| b == [0xFF, 0xC0]).unwrap();
        assert_eq!(u16::from_be_bytes([j[sof + 5], j[sof + 6]]), 48);
        assert_eq!(u16::from_be_bytes([j[sof + 7], j[sof + 8]]), 64);
        let t = p.scaled_to_width(32);
        assert_eq!((t.width, t.height, t.u.len()), (32, 24, 16 * 12));
    }

    #[test]
    fn a_box_is_drawn_as_an_outline_and_hostile_boxes_draw_nothing_outside() {
        let (w, h) = (64, 48);
        let mut p = Picture {
            width: w,
            height: h,
            y: vec![0; w * h],
            u: vec![128; 32 * 24],
            v: vec![128; 32 * 24],
        };
        p.draw_box([0.25, 0.25, 0.5, 0.5], [200, 90, 240], 2);
        assert_eq!(p.y[12 * w + 16], 200, "the corner");
        assert_eq!(p.y[13 * w + 30], 200, "the top edge, 2 px thick");
        assert_eq!(p.y[24 * w + 32], 0, "the inside stays");
        assert_eq!(p.y[5 * w + 5], 0, "the outside stays");
        assert_eq!(p.v[6 * 32 + 8], 240);
        for b in [
            [f32::NAN, 0.0, 1.0, 1.0],
            [-5.0, -5.0, 100.0, 100.0],
            [0.9, 0.9, -0.5, -0.5],
        ] {
            let mut q = p.clone();
            q.draw_box(b, [255, 128, 128], 3);
            assert_eq!(q.y.len(), w * h);
        }
    }
}
