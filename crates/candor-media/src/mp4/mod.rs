//! ISO BMFF (`.mp4`): a small reader for the simulator's source clips and the
//! writer behind export.

pub mod frag;
pub mod read;
pub mod write;

pub use read::{Clip, ClipSample, ReadError};
pub use write::{Mp4Plan, PlanSample};
