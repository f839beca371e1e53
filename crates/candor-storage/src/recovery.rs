//! Startup recovery: brings the index and the files back in line after a
//! crash, kill or power loss. Runs before any writer starts.

use crate::db::{self, SegmentPlace};
use crate::index::{encode, frames_from_records};
use crate::{StorageError, Store, segfile};
use rusqlite::params;
use std::collections::HashSet;
use std::fs::File;
use tracing::{info, warn};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Open segments rebuilt from their files and closed.
    pub segments_recovered: usize,
    /// Rows removed because their file was missing, empty or unreadable.
    pub rows_removed: usize,
    /// Files removed because no row referred to them.
    pub orphans_removed: usize,
    /// Footage files of a newer version, kept in `rolled-back/` after the
    /// index was restored from its copy.
    pub kept_aside: usize,
    /// Bytes cut from torn file tails.
    pub bytes_truncated: u64,
}

pub(crate) fn recover(store: &Store) -> Result<RecoveryReport, StorageError> {
    let mut report = RecoveryReport::default();
    // Places only: recovery needs no frame index, and a month of them is
    // gigabytes (db::all_places).
    let mut rows = Vec::new();
    db::all_places(&store.conn(), |r| rows.push(r))?;
    let mut keep = HashSet::new();
    for row in &rows {
        let needs_rebuild = if row.open {
            true
        } else {
            match std::fs::metadata(store.segment_path(row.camera_id, row.id)) {
                Ok(m) => Some(m.len() as i64) != row.file_len,
                Err(_) => true,
            }
        };
        if !needs_rebuild {
            keep.insert(row.id);
            continue;
        }
        if !row.open {
            warn!(
                segment = row.id,
                "closed segment's file is missing or has the wrong length; rebuilding from the file"
            );
        }
        if rebuild(store, row, &mut report)? {
            keep.insert(row.id);
        }
    }
    // Orphans: files with no row. Rows are committed before files are created,
    // so these can only be files whose deletion by retention was interrupted
    // -- unless the index was just restored from its copy after a rollback
    // (docs/design/updates.md): then they are the newer version's footage,
    // moved to `rolled-back/` rather than removed.
    let marker = crate::db::restored_marker(&store.dir().join("index.db"));
    let keep_aside = marker.exists();
    let seg_root = store.dir().join("segments");
    if let Ok(dirs) = std::fs::read_dir(&seg_root) {
        for d in dirs.flatten() {
            let Ok(files) = std::fs::read_dir(d.path()) else {
                continue;
            };
            let mut removed = false;
            for f in files.flatten() {
                let name = f.file_name();
                let Some(id) = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(".seg"))
                    .and_then(|n| n.parse::<i64>().ok())
                else {
                    continue;
                };
                if !keep.contains(&id) {
                    if keep_aside {
                        let to = store.dir().join("rolled-back").join(d.file_name());
                        // Segment ids are reused: never over an earlier one.
                        let mut file = to.join(&name);
                        let mut n = 1;
                        while file.exists() {
                            file = to.join(format!("{id}.{n}.seg"));
                            n += 1;
                        }
                        std::fs::create_dir_all(&to)
                            .and_then(|()| std::fs::rename(f.path(), &file))
                            .map_err(|e| StorageError::io("keeping footage aside", e))?;
                        warn!(
                            "segment file {} is not in the restored index: kept in {}",
                            f.path().display(),
                            to.display()
                        );
                        report.kept_aside += 1;
                    } else {
                        warn!("removing orphan segment file {}", f.path().display());
                        std::fs::remove_file(f.path())
                            .map_err(|e| StorageError::io("removing orphan", e))?;
                        report.orphans_removed += 1;
                    }
                    removed = true;
                }
            }
            if removed {
                let _ = File::open(d.path()).and_then(|f| f.sync_all());
            }
        }
    }
    if keep_aside {
        let _ = std::fs::remove_file(&marker);
    }
    if report != RecoveryReport::default() {
        info!(?report, "recovery finished");
    }
    Ok(report)
}

/// Rebuilds one row from its file. Returns whether the row survives.
fn rebuild(
    store: &Store,
    row: &SegmentPlace,
    report: &mut RecoveryReport,
) -> Result<bool, StorageError> {
    let path = store.segment_path(row.camera_id, row.id);
    let remove_row = |report: &mut RecoveryReport| -> Result<bool, StorageError> {
        store
            .conn()
            .execute("DELETE FROM segment WHERE id = ?1", [row.id])
            .map_err(|e| StorageError::db("removing segment row", e))?;
        report.rows_removed += 1;
        Ok(false)
    };
    let file = match File::options().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return remove_row(report),
        Err(e) => return Err(StorageError::io(format!("opening {}", path.display()), e)),
    };
    let scan = match segfile::scan(&file, true) {
        Ok(s) if s.header.segment_id == row.id && !s.records.is_empty() => s,
        Ok(_) | Err(_) => {
            // Header never written, not ours, or no whole frame: nothing to keep.
            let _ = std::fs::remove_file(&path);
            return remove_row(report);
        }
    };
    if scan.trailing > 0 {
        file.set_len(scan.valid_len)
            .map_err(|e| StorageError::io(format!("truncating {}", path.display()), e))?;
        report.bytes_truncated += scan.trailing;
    }
    file.sync_all()
        .map_err(|e| StorageError::io(format!("fsync {}", path.display()), e))?;
    let frames = frames_from_records(&scan.records, None);
    let media = frames.last().map(|f| f.pts + f.duration).unwrap_or(0);
    let index = encode(
        &frames
            .iter()
            .map(|f| (f.size, f.duration, f.key))
            .collect::<Vec<_>>(),
    );
    // The run's clock anchor died with the process; camera time is the best
    // estimate of this last segment's length.
    store
        .conn()
        .execute(
            "UPDATE segment SET state = 1, wall_duration_90k = ?2, media_duration_90k = ?2, frames = ?3, file_len = ?4, \
             frame_index = ?5 WHERE id = ?1",
            params![row.id, media, frames.len() as i64, scan.valid_len as i64, index],
        )
        .map_err(|e| StorageError::db("closing recovered segment", e))?;
    report.segments_recovered += 1;
    Ok(true)
}
