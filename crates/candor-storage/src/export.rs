//! Reading footage back: recorded spans, and MP4 export of any range.

use crate::index::SegmentView;
use crate::{SEGMENT_MAX_90K, StorageError, Store, db};
use candor_media::Time90k;
use candor_media::mp4::{Mp4Plan, PlanSample};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: Time90k,
    pub end: Time90k,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(
        "no footage of this camera between {from} and {to}; run `candor spans` to see what is recorded"
    )]
    NoFootage { from: Time90k, to: Time90k },
    #[error("the requested range is empty or reversed ({from} .. {to}); --to must be after --from")]
    BadRange { from: Time90k, to: Time90k },
    #[error("footage was deleted by retention while exporting (segment {0}); export a later range")]
    Deleted(i64),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("writing the export: {0}")]
    Write(std::io::Error),
}

fn views(
    store: &Store,
    camera_id: i64,
    from: i64,
    to: i64,
) -> Result<Vec<SegmentView>, StorageError> {
    let rows = db::segments_in(&store.conn(), camera_id, from, to, SEGMENT_MAX_90K)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let v = SegmentView::load(store, r)?;
        if !v.frames.is_empty() && v.end_90k() > from {
            out.push(v);
        }
    }
    Ok(out)
}

/// Where a camera's settled footage ends: the end of its last closed
/// segment. Before it, an export's bytes never change (unless retention
/// deletes footage); after it, frames still sit in an open segment whose
/// wall-time mapping is final only when it closes.
pub fn settled_end(store: &Store, camera_id: i64) -> Result<Option<Time90k>, StorageError> {
    store
        .conn()
        .query_row(
            "SELECT MAX(start_90k + wall_duration_90k) FROM segment WHERE camera_id = ?1 AND state = 1",
            [camera_id],
            |r| r.get::<_, Option<i64>>(0),
        )
        .map(|v| v.map(Time90k))
        .map_err(|e| StorageError::db("reading the settled end", e))
}

/// Recorded spans of a camera intersecting `[from, to)`: contiguous footage
/// merged, in time order. Gaps are the spaces between them.
///
/// Closed segments are placed by their rows alone, streamed: memory is the
/// spans, not the segments. Only open segments (one per recording camera),
/// whose end is known from their file alone, are read.
pub fn spans(
    store: &Store,
    camera_id: i64,
    from: Time90k,
    to: Time90k,
) -> Result<Vec<Span>, StorageError> {
    let mut out: Vec<Span> = Vec::new();
    let mut open = Vec::new();
    db::for_each_segment_place(
        &store.conn(),
        camera_id,
        from.0,
        to.0,
        SEGMENT_MAX_90K,
        |r| match (r.open, r.wall_duration_90k, r.frames) {
            (true, ..) => open.push(r),
            (false, _, Some(0)) | (false, None, _) => {}
            (false, Some(wall), _) => extend(&mut out, from, r.start_90k, r.start_90k + wall),
        },
    )?;
    if open.is_empty() {
        return Ok(out);
    }
    for r in &open {
        let v = SegmentView::load(store, r)?;
        if !v.frames.is_empty() {
            out.push(Span {
                start: Time90k(v.start_90k),
                end: Time90k(v.end_90k()),
            });
        }
    }
    out.sort_by_key(|s| (s.start, s.end));
    let mut merged = Vec::with_capacity(out.len());
    for s in out {
        extend(&mut merged, from, s.start.0, s.end.0);
    }
    Ok(merged)
}

/// Appends `[s, e)` to spans in time order, merged with the last if they
/// touch or overlap; nothing if it ends at or before `from`.
fn extend(spans: &mut Vec<Span>, from: Time90k, s: i64, e: i64) {
    if e <= from.0 {
        return;
    }
    let (s, e) = (Time90k(s), Time90k(e));
    match spans.last_mut() {
        Some(last) if s <= last.end => last.end = last.end.max(e),
        _ => spans.push(Span { start: s, end: e }),
    }
}

struct Part {
    path: PathBuf,
    segment_id: i64,
    frames: Vec<(u64, u32)>,
}

/// A planned export: the MP4 header is built; sample bytes are read from the
/// segment files as the export is written.
pub struct Export {
    pub plan: Mp4Plan,
    header: Vec<u8>,
    parts: Vec<Part>,
    /// What the file actually covers (the request clipped to the footage).
    pub from: Time90k,
    pub to: Time90k,
    /// Gaps inside the range, shown as the last frame before them held still.
    pub gaps: Vec<Span>,
    pub codec: String,
}

impl Export {
    pub fn plan(
        store: &Store,
        camera_id: i64,
        from: Time90k,
        to: Time90k,
    ) -> Result<Export, ExportError> {
        if to <= from {
            return Err(ExportError::BadRange { from, to });
        }
        let views = views(store, camera_id, from.0, to.0)?;
        let mut entries: Vec<i64> = Vec::new();
        let mut samples: Vec<PlanSample> = Vec::new();
        let mut chunk_starts = Vec::new();
        let mut parts: Vec<Part> = Vec::new();
        let mut gaps = Vec::new();
        let mut first_wall: Option<i64> = None;
        let mut cursor = i64::MIN;
        for v in &views {
            let walls: Vec<(i64, i64)> = v
                .frames
                .iter()
                .map(|f| (v.wall_at(f.pts), v.wall_at(f.pts + f.duration)))
                .collect();
            let start_i = if first_wall.is_none() {
                let Some(j) = walls.iter().position(|&(_, e)| e > from.0) else {
                    continue;
                };
                if walls[j].0 >= to.0 {
                    continue;
                }
                // Decoding must begin at the key frame at or before the first wanted frame.
                match (0..=j).rev().find(|&i| v.frames[i].key) {
                    Some(k) => k,
                    None => match (j..v.frames.len()).find(|&i| v.frames[i].key) {
                        Some(k) => k,
                        None => continue,
                    },
                }
            } else if v.start_90k < cursor {
                // Overlap (after a backward clock step): resume at a key frame past the cursor.
                match (0..v.frames.len()).find(|&i| v.frames[i].key && walls[i].0 >= cursor) {
                    Some(k) => k,
                    None => continue,
                }
            } else {
                0
            };
            if start_i >= v.frames.len() || walls[start_i].0 >= to.0 {
                continue;
            }
            if first_wall.is_some() && walls[start_i].0 > cursor {
                // A gap: hold the previous frame so the file's timeline stays wall time.
                let gap = walls[start_i].0 - cursor;
                if let Some(last) = samples.last_mut() {
                    last.duration_90k = last
                        .duration_90k
                        .saturating_add(u32::try_from(gap).unwrap_or(u32::MAX));
                }
                gaps.push(Span {
                    start: Time90k(cursor),
                    end: Time90k(walls[start_i].0),
                });
            }
            let entry = match entries.iter().position(|&e| e == v.sample_entry_id) {
                Some(p) => p as u32 + 1,
                None => {
                    entries.push(v.sample_entry_id);
                    entries.len() as u32
                }
            };
            chunk_starts.push(samples.len());
            let mut part = Part {
                path: store.segment_path(v.camera_id, v.id),
                segment_id: v.id,
                frames: Vec::new(),
            };
            for (f, &(ws, we)) in v.frames[start_i..].iter().zip(&walls[start_i..]) {
                if ws >= to.0 {
                    break;
                }
                first_wall.get_or_insert(ws);
                samples.push(PlanSample {
                    size: f.size,
                    duration_90k: (we - ws) as u32,
                    key: f.key,
                    entry,
                });
                part.frames.push((f.offset, f.size));
                cursor = we;
            }
            parts.push(part);
        }
        let Some(first_wall) = first_wall else {
            return Err(ExportError::NoFootage { from, to });
        };
        let actual_from = from.0.max(first_wall);
        let actual_to = to.0.min(cursor);
        if actual_to <= actual_from {
            return Err(ExportError::NoFootage { from, to });
        }
        let mut sample_entries = Vec::new();
        let (mut width, mut height, mut codecs) = (0u16, 0u16, Vec::new());
        for id in &entries {
            let (codec, w, h, data) = db::sample_entry(&store.conn(), *id)?;
            width = width.max(w);
            height = height.max(h);
            if !codecs.contains(&codec) {
                codecs.push(codec);
            }
            sample_entries.push(data);
        }
        let plan = Mp4Plan {
            sample_entries,
            width,
            height,
            samples,
            chunk_starts,
            edit_start_90k: (actual_from - first_wall) as u64,
            edit_duration_90k: (actual_to - actual_from) as u64,
            creation_time: Time90k(actual_from),
        };
        let header = plan.header();
        Ok(Export {
            plan,
            header,
            parts,
            from: Time90k(actual_from),
            to: Time90k(actual_to),
            gaps,
            codec: codecs.join("+"),
        })
    }

    pub fn total_len(&self) -> u64 {
        self.header.len() as u64 + self.plan.mdat_body_len()
    }

    pub fn frames(&self) -> usize {
        self.plan.samples.len()
    }

    /// The `ftyp` + `moov` + `mdat` header: it fixes every sample's size and
    /// place, so a hash of it (with the segment ids) identifies the file.
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// The recorded segments the file reads from, in order.
    pub fn segment_ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.parts.iter().map(|p| p.segment_id)
    }

    /// Writes the whole file, calling `progress` with bytes written so far.
    pub fn write_to(
        &self,
        out: &mut impl Write,
        progress: impl FnMut(u64),
    ) -> Result<(), ExportError> {
        self.write_range(out, 0..self.total_len(), progress)
    }

    /// Writes bytes `range` of the file (HTTP Range requests: a player
    /// seeking into a long export). Samples wholly outside the range are not
    /// read. `progress` gets the file offset reached.
    pub fn write_range(
        &self,
        out: &mut impl Write,
        range: std::ops::Range<u64>,
        mut progress: impl FnMut(u64),
    ) -> Result<(), ExportError> {
        let (start, end) = (range.start, range.end.min(self.total_len()));
        let hlen = self.header.len() as u64;
        if start < hlen {
            let h = &self.header[start as usize..end.min(hlen) as usize];
            out.write_all(h).map_err(ExportError::Write)?;
        }
        let mut pos = hlen;
        progress(pos.min(end));
        let mut buf = Vec::new();
        'parts: for part in &self.parts {
            let part_len: u64 = part.frames.iter().map(|&(_, s)| u64::from(s)).sum();
            if pos + part_len <= start {
                pos += part_len;
                continue;
            }
            if pos >= end {
                break;
            }
            // One segment file open at a time: a long export must not hold thousands of fds.
            let file = match File::open(&part.path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(ExportError::Deleted(part.segment_id));
                }
                Err(e) => {
                    return Err(
                        StorageError::io(format!("opening {}", part.path.display()), e).into(),
                    );
                }
            };
            let mut r = BufReader::with_capacity(1 << 20, file);
            let mut at = None;
            for &(offset, size) in &part.frames {
                let (s0, s1) = (pos, pos + u64::from(size));
                pos = s1;
                if s1 <= start {
                    continue;
                }
                if s0 >= end {
                    break 'parts;
                }
                if at != Some(offset) {
                    r.seek(SeekFrom::Start(offset))
                        .map_err(|e| StorageError::io("seeking in segment", e))?;
                }
                buf.resize(size as usize, 0);
                r.read_exact(&mut buf)
                    .map_err(|e| StorageError::io(format!("reading {}", part.path.display()), e))?;
                at = Some(offset + u64::from(size));
                let lo = start.saturating_sub(s0) as usize;
                let hi = (end.min(s1) - s0) as usize;
                out.write_all(&buf[lo..hi]).map_err(ExportError::Write)?;
                progress(s1.min(end));
            }
        }
        out.flush().map_err(ExportError::Write)?;
        Ok(())
    }
}
