//! Zones and masks: polygons in normalised image coordinates (0..1 from the
//! top-left corner), so they survive a change of stream resolution and can be
//! drawn on any snapshot. Rasterised once onto the analysis grid.

/// A closed polygon of at least 3 points, each coordinate within 0..=1.
#[derive(Clone, Debug, PartialEq)]
pub struct Polygon(Vec<(f32, f32)>);

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PolygonError {
    #[error("a polygon needs at least 3 points (got {0})")]
    TooFewPoints(usize),
    #[error("a polygon may have at most 64 points (got {0})")]
    TooManyPoints(usize),
    #[error("point ({0}, {1}) is outside the image; coordinates run from 0 to 1")]
    OutOfRange(f32, f32),
}

impl Polygon {
    pub fn new(points: Vec<(f32, f32)>) -> Result<Polygon, PolygonError> {
        if points.len() < 3 {
            return Err(PolygonError::TooFewPoints(points.len()));
        }
        if points.len() > 64 {
            return Err(PolygonError::TooManyPoints(points.len()));
        }
        for &(x, y) in &points {
            if !(0.0..=1.0).contains(&x) || !(0.0..=1.0).contains(&y) {
                return Err(PolygonError::OutOfRange(x, y));
            }
        }
        Ok(Polygon(points))
    }

    pub fn points(&self) -> &[(f32, f32)] {
        &self.0
    }

    /// Even-odd rule: a ray to the right crosses the boundary an odd number of times.
    pub fn contains(&self, x: f32, y: f32) -> bool {
        let p = &self.0;
        let mut inside = false;
        let mut j = p.len() - 1;
        for i in 0..p.len() {
            let (xi, yi) = p[i];
            let (xj, yj) = p[j];
            if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
                inside = !inside;
            }
            j = i;
        }
        inside
    }

    /// Which cells of a `w`×`h` grid have their centre inside.
    pub fn rasterise(&self, w: usize, h: usize) -> Vec<bool> {
        let mut out = vec![false; w * h];
        for gy in 0..h {
            let y = (gy as f32 + 0.5) / h as f32;
            for gx in 0..w {
                out[gy * w + gx] = self.contains((gx as f32 + 0.5) / w as f32, y);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_degenerate_and_out_of_range_polygons() {
        assert_eq!(
            Polygon::new(vec![(0.0, 0.0), (1.0, 1.0)]),
            Err(PolygonError::TooFewPoints(2))
        );
        assert!(matches!(
            Polygon::new(vec![(0.0, 0.0), (1.5, 0.0), (0.0, 1.0)]),
            Err(PolygonError::OutOfRange(..))
        ));
        assert!(Polygon::new(vec![(f32::NAN, 0.0), (1.0, 0.0), (0.0, 1.0)]).is_err());
    }

    #[test]
    fn rasterises_a_concave_polygon() {
        // An L shape: the left column and the bottom row of a 4x4 grid.
        let l = Polygon::new(vec![
            (0.0, 0.0),
            (0.25, 0.0),
            (0.25, 0.75),
            (1.0, 0.75),
            (1.0, 1.0),
            (0.0, 1.0),
        ])
        .unwrap();
        let g = l.rasterise(4, 4);
        let s: String = g.iter().map(|&b| if b { '#' } else { '.' }).collect();
        assert_eq!(s, "#...#...#...####");
    }
}
