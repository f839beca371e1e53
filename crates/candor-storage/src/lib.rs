//! Crash-safe footage storage for the Candor recorder.
//!
//! Footage lives in append-only segment files (one per camera per ~minute, see
//! [`segfile`]); a SQLite index (see [`db`]) lists them. The write and fsync
//! order, recovery and retention are described in `docs/design/storage.md`,
//! which this crate implements. In short:
//!
//! * a segment row is committed (state *open*) before its file is created;
//! * a row is marked *closed*, with its frame index, only after its file is fsynced;
//! * retention commits the row deletion before unlinking the file;
//! * at startup [`Store::open`] recovers: open rows are rebuilt from their
//!   files (torn tails truncated), files without rows are deleted, rows
//!   without files are deleted.

pub mod db;
pub mod egress;
pub mod events;
pub mod export;
mod index;
mod recovery;
pub mod retention;
pub mod segfile;
pub mod writer;

pub use export::{Export, ExportError, Span};
pub use index::SegmentView;
pub use recovery::RecoveryReport;

use candor_media::Time90k;
use rusqlite::{Connection, OptionalExtension};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Db {
        context: &'static str,
        source: rusqlite::Error,
    },
    #[error(
        "data directory {0} is in use by another recorder (its lock file is held); stop that recorder or choose another storage.path"
    )]
    Locked(PathBuf),
    #[error("index schema version {0} is not supported by this build of Candor")]
    SchemaVersion(String),
    #[error(
        "the index is of schema {found}, written by a newer Candor that builds of schema below {min_reader} can't use (this one: {ours}), and no copy from before its upgrade this build may restore (index.db.schema-{ours}.bak, under a day old): run the newer version again, or restore the index from a backup"
    )]
    TooNew {
        found: i64,
        min_reader: i64,
        ours: i64,
    },
    #[error("no data directory at {0}: nothing has been recorded there yet (check storage.path)")]
    NoData(PathBuf),
}

impl StorageError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StorageError::Io {
            context: context.into(),
            source,
        }
    }
    pub(crate) fn db(context: &'static str, source: rusqlite::Error) -> Self {
        StorageError::Db { context, source }
    }
}

/// Segments are closed at the first key frame after this much media time.
pub const SEGMENT_TARGET_90K: i64 = 60 * 90_000;
/// No segment is longer than this (wall time), which bounds index range queries.
/// A camera with a GOP longer than the rest of this still gets a key frame first.
pub const SEGMENT_MAX_90K: i64 = 5 * 60 * 90_000;

/// An open data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CameraUsage {
    pub camera_id: i64,
    pub segments: u64,
    pub bytes: u64,
    pub oldest: Option<Time90k>,
    pub newest: Option<Time90k>,
}

pub struct Store {
    dir: PathBuf,
    db: Arc<Mutex<Connection>>,
    _lock: Option<File>,
}

/// Per camera, where `segment_usage` and a count over `segment` differ:
/// the camera, then both sides (usage's count and bytes, the rows' count
/// and bytes; a camera missing from one side counts as 0 there).
// Each value is `quote()`d text, so that one of the wrong type (a blob, a
// string) is reported as what it is rather than failing the check or
// printing like a number. The rows' bytes are a `TOTAL` (a float, which
// never overflows; `SUM` would abort the whole check on corrupt lengths),
// shown as an integer when it is one.
const USAGE_CHECK_SQL: &str = "WITH s AS (SELECT camera_id, COUNT(*) AS n, TOTAL(file_len) AS b \
     FROM segment GROUP BY +camera_id), \
     u AS (SELECT camera_id, segments AS n, bytes AS b FROM segment_usage), \
     c AS (SELECT camera_id FROM s UNION SELECT camera_id FROM u) \
     SELECT quote(c.camera_id), quote(COALESCE(u.n, 0)), quote(COALESCE(u.b, 0)), quote(COALESCE(s.n, 0)), \
            quote(IIF(s.b = CAST(s.b AS INTEGER), CAST(s.b AS INTEGER), COALESCE(s.b, 0))) \
     FROM c LEFT JOIN u ON u.camera_id IS c.camera_id LEFT JOIN s ON s.camera_id IS c.camera_id \
     WHERE COALESCE(u.n, 0) IS NOT COALESCE(s.n, 0) OR COALESCE(u.b, 0) != COALESCE(s.b, 0) \
        OR typeof(COALESCE(u.b, 0)) NOT IN ('integer', 'real')";

impl Store {
    /// Opens (creating if needed) a data directory for recording: takes its
    /// exclusive lock and runs recovery.
    pub fn open(dir: &Path) -> Result<(Store, RecoveryReport), StorageError> {
        std::fs::create_dir_all(dir.join("segments")).map_err(|e| {
            StorageError::io(format!("creating data directory {}", dir.display()), e)
        })?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))
            .map_err(|e| StorageError::io("opening lock file", e))?;
        if lock.try_lock().is_err() {
            return Err(StorageError::Locked(dir.to_owned()));
        }
        let conn = db::open(&dir.join("index.db"), false)?;
        let store = Store {
            dir: dir.to_owned(),
            db: Arc::new(Mutex::new(conn)),
            _lock: Some(lock),
        };
        let report = recovery::recover(&store)?;
        store.ensure_ballast();
        Ok((store, report))
    }

    /// Opens a data directory for reading only (no lock, no recovery). Safe
    /// while a recorder is writing to it.
    pub fn open_read_only(dir: &Path) -> Result<Store, StorageError> {
        let path = dir.join("index.db");
        if !path.exists() {
            return Err(StorageError::NoData(dir.to_owned()));
        }
        let conn = db::open(&path, true)?;
        Ok(Store {
            dir: dir.to_owned(),
            db: Arc::new(Mutex::new(conn)),
            _lock: None,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn ballast_path(&self) -> PathBuf {
        self.dir.join("reserve.ballast")
    }

    /// Keeps a small file of real (non-sparse) bytes in the data directory.
    /// When the disk is completely full SQLite cannot commit even a DELETE (it
    /// must append to its WAL), so retention would be stuck; releasing the
    /// ballast first gives it room. Sized 1% of the filesystem, 256 KiB–16 MiB.
    pub fn ensure_ballast(&self) {
        let path = self.ballast_path();
        let size = match retention::disk_space(self) {
            Ok((_, total)) => (total / 100).clamp(256 << 10, 16 << 20),
            Err(_) => return,
        };
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == size) {
            return;
        }
        let r = (|| -> std::io::Result<()> {
            let mut f = File::create(&path)?;
            let zeros = vec![0u8; 64 << 10];
            let mut left = size;
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                std::io::Write::write_all(&mut f, &zeros[..n])?;
                left -= n as u64;
            }
            f.sync_all()
        })();
        if let Err(e) = r {
            let _ = std::fs::remove_file(&path);
            tracing::warn!("can't create the {size}-byte disk-full reserve file: {e}");
        }
    }

    /// Frees the ballast's space (see [`Store::ensure_ballast`]).
    pub fn release_ballast(&self) {
        let _ = std::fs::remove_file(self.ballast_path());
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite itself consistent (each
        // statement is atomic), so a poisoned lock is still usable.
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn camera_id(&self, name: &str) -> Result<Option<i64>, StorageError> {
        db::camera_id(&self.conn(), name, false)
    }

    pub fn ensure_camera(&self, name: &str) -> Result<i64, StorageError> {
        Ok(db::camera_id(&self.conn(), name, true)?.expect("created"))
    }

    /// Every segment row, oldest first.
    pub fn segments(&self) -> Result<Vec<db::SegmentRow>, StorageError> {
        db::all_segments(&self.conn())
    }

    /// The file holding a segment (for tests and diagnostics).
    pub fn segment_file(&self, camera_id: i64, segment_id: i64) -> PathBuf {
        self.segment_path(camera_id, segment_id)
    }

    pub fn cameras(&self) -> Result<Vec<(i64, String)>, StorageError> {
        db::cameras(&self.conn())
    }

    pub(crate) fn camera_dir(&self, camera_id: i64) -> PathBuf {
        self.dir.join("segments").join(camera_id.to_string())
    }

    pub(crate) fn segment_path(&self, camera_id: i64, segment_id: i64) -> PathBuf {
        self.camera_dir(camera_id)
            .join(format!("{segment_id:010}.seg"))
    }

    /// Per camera: closed segments' bytes, the oldest footage and the span
    /// they cover, for the system page and the retention forecast.
    pub fn usage(&self) -> Result<Vec<CameraUsage>, StorageError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(db::USAGE_SQL)
            .map_err(|e| StorageError::db("summing usage", e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(CameraUsage {
                    camera_id: r.get(0)?,
                    segments: r.get::<_, i64>(1)? as u64,
                    bytes: r.get::<_, i64>(2)? as u64,
                    oldest: r.get::<_, Option<i64>>(3)?.map(Time90k),
                    newest: r.get::<_, Option<i64>>(4)?.map(Time90k),
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| StorageError::db("summing usage", e))?;
        Ok(rows)
    }

    /// Checks the index against the files: every row's file exists and, for
    /// closed rows, has the recorded length and every record in the frame
    /// index. Returns a list of problems (empty when consistent). Used by
    /// tests and `candor check`.
    pub fn check(&self) -> Result<Vec<String>, StorageError> {
        let rows = db::all_segments(&self.conn())?;
        let mut problems = Vec::new();
        for row in &rows {
            let path = self.segment_path(row.camera_id, row.id);
            match std::fs::metadata(&path) {
                // An open row is committed before its file is created (and, on a
                // full disk, may outlive a failed create until its deletion can
                // commit): it holds no footage, readers treat it as empty, and
                // recovery removes it.
                Err(e) if row.open && e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => problems.push(format!("segment {} ({}): {e}", row.id, path.display())),
                Ok(m) if !row.open && Some(m.len() as i64) != row.file_len => {
                    problems.push(format!(
                        "segment {}: file is {} bytes, index says {:?}",
                        row.id,
                        m.len(),
                        row.file_len
                    ))
                }
                Ok(_) if !row.open => {
                    let view = SegmentView::load(self, row)?;
                    let f =
                        File::open(&path).map_err(|e| StorageError::io("opening segment", e))?;
                    let scan = segfile::scan(&f, true)
                        .map_err(|e| StorageError::io("scanning segment", e))?;
                    if scan.records.len() != view.frames.len() || scan.trailing != 0 {
                        problems.push(format!(
                            "segment {}: index has {} frames, file has {} valid (+{} trailing bytes)",
                            row.id,
                            view.frames.len(),
                            scan.records.len(),
                            scan.trailing
                        ));
                    }
                }
                Ok(_) => {}
            }
        }
        let known: std::collections::HashSet<PathBuf> = rows
            .iter()
            .map(|r| self.segment_path(r.camera_id, r.id))
            .collect();
        for (cam, _) in self.cameras()? {
            if let Ok(rd) = std::fs::read_dir(self.camera_dir(cam)) {
                for e in rd.flatten() {
                    if !known.contains(&e.path()) {
                        problems.push(format!("orphan file {}", e.path().display()));
                    }
                }
            }
        }
        // Retention's budgets come from the counts the triggers keep. One
        // statement reads both sides from one snapshot, so a recorder
        // writing meanwhile cannot make them differ; an index of schema 7
        // opened read-only has no such table to compare.
        let conn = self.conn();
        let has_usage = conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'segment_usage'",
                [],
                |_| Ok(()),
            )
            .optional()
            .map_err(|e| StorageError::db("checking footage totals", e))?
            .is_some();
        if has_usage {
            let err = |e| StorageError::db("checking footage totals", e);
            let mut stmt = conn.prepare(USAGE_CHECK_SQL).map_err(err)?;
            let diffs = stmt
                .query_map([], |r| {
                    Ok(format!(
                        "footage totals: camera {}: segment_usage says {} segments of {} bytes, the rows say {} segments of {} bytes",
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?
                    ))
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(err)?;
            problems.extend(diffs);
        }
        Ok(problems)
    }

    /// Wall time now, per this process's clock. Exists so that callers need not
    /// reach for the clock themselves in storage code.
    pub fn now() -> Time90k {
        Time90k::now()
    }
}
