//! Motion detection for the site recorder.
//!
//! - [`decode`]: H.264 samples (as recorded) to pictures, with openh264.
//! - [`model`]: grey grid, per-pixel background model, blobs, zones and
//!   masks, hysteresis. Pure and deterministic: unit-tested on synthetic
//!   frames and, in `tests/`, on real footage.
//! - [`picture`]: owned pictures for snapshots, thumbnails and JPEG.
//!
//! See `docs/design/events.md` for why the model looks as it does.

pub mod decode;
pub mod model;
pub mod picture;
pub mod region;
pub mod scan;

pub use decode::{DecodeError, Frame, H264Decoder};
pub use model::{Analysis, Detector, Hysteresis, MAX_BOXES, Plane, Settings, Transition, Zone};
pub use picture::{Picture, SnapshotError};
pub use region::{Polygon, PolygonError};
pub use scan::{ScanEvent, ScanStats, Scanner};
