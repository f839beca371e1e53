//! A segment's frames in memory, from the index (closed) or its file (open).

use crate::db::{self, SegmentRow};
use crate::{StorageError, Store, segfile};
use std::fs::File;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViewFrame {
    /// Payload offset in the segment file.
    pub offset: u64,
    pub size: u32,
    /// Media time since the segment start, and media duration (camera clock).
    pub pts: i64,
    pub duration: i64,
    pub key: bool,
}

#[derive(Clone, Debug)]
pub struct SegmentView {
    pub id: i64,
    pub camera_id: i64,
    pub open: bool,
    pub run_start: bool,
    pub start_90k: i64,
    pub wall_duration_90k: i64,
    pub media_duration_90k: i64,
    pub sample_entry_id: i64,
    pub frames: Vec<ViewFrame>,
}

/// Encodes a closed segment's frames as `varint(duration << 1 | key), varint(size)`
/// per frame: ~4 bytes a frame, so a day of a 15 fps camera is ~5 MB of index.
pub(crate) fn encode(frames: &[(u32, i64, bool)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(frames.len() * 4);
    for &(size, duration, key) in frames {
        db::put_varint(&mut out, (duration as u64) << 1 | u64::from(key));
        db::put_varint(&mut out, u64::from(size));
    }
    out
}

impl SegmentView {
    pub fn end_90k(&self) -> i64 {
        self.start_90k + self.wall_duration_90k
    }

    /// Wall time of the media instant `pts` (since segment start). Linear, so
    /// that drift correction spreads evenly over the segment.
    pub fn wall_at(&self, pts: i64) -> i64 {
        if self.media_duration_90k == 0 {
            return self.start_90k;
        }
        self.start_90k
            + (i128::from(pts) * i128::from(self.wall_duration_90k)
                / i128::from(self.media_duration_90k)) as i64
    }

    pub fn load(store: &Store, row: &SegmentRow) -> Result<SegmentView, StorageError> {
        let corrupt = |what: &str| {
            StorageError::io(
                format!("segment {}", row.id),
                std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned()),
            )
        };
        if let (false, Some(blob), Some(wall), Some(media)) = (
            row.open,
            &row.frame_index,
            row.wall_duration_90k,
            row.media_duration_90k,
        ) {
            let entry_len = store
                .conn()
                .query_row(
                    "SELECT length(data) FROM sample_entry WHERE id = ?1",
                    [row.sample_entry_id],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(|e| StorageError::db("reading sample entry", e))?;
            let mut offset = 8 + 24 + 2 + entry_len as u64 + 4;
            let mut data = &blob[..];
            let mut frames = Vec::with_capacity(row.frames.unwrap_or(0).max(0) as usize);
            let mut pts = 0i64;
            while !data.is_empty() {
                let dk = db::get_varint(&mut data).ok_or_else(|| corrupt("bad frame index"))?;
                let size =
                    db::get_varint(&mut data).ok_or_else(|| corrupt("bad frame index"))? as u32;
                let duration = (dk >> 1) as i64;
                frames.push(ViewFrame {
                    offset: offset + segfile::RECORD_HEADER,
                    size,
                    pts,
                    duration,
                    key: dk & 1 == 1,
                });
                offset += segfile::RECORD_HEADER + u64::from(size);
                pts += duration;
            }
            return Ok(SegmentView {
                id: row.id,
                camera_id: row.camera_id,
                open: false,
                run_start: row.run_start,
                start_90k: row.start_90k,
                wall_duration_90k: wall,
                media_duration_90k: media,
                sample_entry_id: row.sample_entry_id,
                frames,
            });
        }
        let path = store.segment_path(row.camera_id, row.id);
        let frames = match File::open(&path) {
            Ok(f) => {
                let scan = segfile::scan(&f, false)
                    .map_err(|e| StorageError::io(format!("reading {}", path.display()), e))?;
                frames_from_records(&scan.records, None)
            }
            // An open row whose file is not created yet (or just deleted) has no frames.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(StorageError::io(format!("opening {}", path.display()), e)),
        };
        let media = frames.last().map(|f| f.pts + f.duration).unwrap_or(0);
        Ok(SegmentView {
            id: row.id,
            camera_id: row.camera_id,
            open: true,
            run_start: row.run_start,
            start_90k: row.start_90k,
            wall_duration_90k: media,
            media_duration_90k: media,
            sample_entry_id: row.sample_entry_id,
            frames,
        })
    }
}

/// Durations from successive pts; the last frame gets `last_duration` or, if
/// unknown, repeats the previous one (100 ms for a lone frame).
pub(crate) fn frames_from_records(
    records: &[segfile::Record],
    last_duration: Option<i64>,
) -> Vec<ViewFrame> {
    let mut frames: Vec<ViewFrame> = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let duration = match records.get(i + 1) {
            Some(n) => i64::from(n.pts) - i64::from(r.pts),
            None => {
                last_duration.unwrap_or_else(|| frames.last().map(|f| f.duration).unwrap_or(9000))
            }
        };
        frames.push(ViewFrame {
            offset: r.offset,
            size: r.size,
            pts: i64::from(r.pts),
            duration,
            key: r.key,
        });
    }
    frames
}
