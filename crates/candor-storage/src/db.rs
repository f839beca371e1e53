//! The SQLite index. Schema, and the few queries the rest of the crate needs.
//!
//! WAL mode so that `candor spans`/`export` (other processes) read while the
//! recorder writes; `synchronous=FULL` because commits are rare (one per
//! segment open/close, per retention pass) and a committed row must survive
//! power loss (see the invariants in `docs/design/storage.md`).

use crate::StorageError;
use rusqlite::{Connection, OptionalExtension, params};

/// The index's schema version; older indexes are upgraded in place, one
/// step per version (see [`UPGRADES`]).
/// 2: the `event` table.
/// 3: `event.snapshot`.
/// 4: `egress` (the ledger of bytes sent off-site) and `outbox` (alarms
/// waiting for the cloud).
/// 5: `outbox.id` never reused (AUTOINCREMENT: the cloud deduplicates by it,
/// so an id handed out again after the queue emptied would be dropped as a
/// duplicate), `outbox.event_id` and `delivered` (kept a while, so an
/// acknowledgement finds its event); `event.acked_by`/`acked_at_90k`.
/// 6: `event.label`, `bbox`, `zones` (object events).
/// 7: the index `segment_place` (see [`all_places`]). Older builds keep it
/// up to date without knowing it, so `min_reader` stays.
/// 8: `segment_usage` (kept by triggers) and the partial index
/// `segment_open` (see [`footage_totals`]): what retention needs of all
/// footage without walking it; the partial index `event_pinned`. Triggers and indexes live in the index
/// file, so older builds keep both exact; `min_reader` stays.
/// 9: `event.pin_pre_90k`/`pin_post_90k` (the window a pin holds, fixed when
/// it is made), and `event_pinned` for an index that reached 8 without it.
/// An older build pins with the camera's current window; `min_reader` stays.
pub const SCHEMA_VERSION: i64 = 9;

/// The oldest schema version whose builds can still use an index this
/// build has written (kept in `meta` as `min_reader`): an older build
/// opens a newer index when its own version is at least this, ignoring
/// what it doesn't know. A step that only adds tables or nullable columns
/// keeps it; one that changes what older builds rely on raises it to the
/// new version, and then the index is copied before the upgrade
/// (`index.db.schema-<old>.bak`) so that a rollback to the older build
/// restores that copy (docs/design/updates.md, "The index across
/// versions"). 6: builds before `min_reader` existed refuse any newer
/// index.
pub const MIN_READER: i64 = 6;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS camera (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS sample_entry (
    id INTEGER PRIMARY KEY,
    codec TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    data BLOB NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS segment (
    id INTEGER PRIMARY KEY,
    camera_id INTEGER NOT NULL REFERENCES camera(id),
    -- 0: open, being written; its file is the truth. 1: closed; file fsynced,
    -- frame_index describes exactly the file's records.
    state INTEGER NOT NULL,
    -- 1 if this segment starts a run (a new camera session or a clock step):
    -- a gap may lie before it. Within a run, segments are contiguous.
    run_start INTEGER NOT NULL,
    start_90k INTEGER NOT NULL,
    wall_duration_90k INTEGER,
    media_duration_90k INTEGER,
    frames INTEGER,
    file_len INTEGER,
    sample_entry_id INTEGER NOT NULL REFERENCES sample_entry(id),
    frame_index BLOB,
    pinned INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS segment_camera_start ON segment (camera_id, start_90k);
-- All that retention and recovery read of every segment, in time order: a
-- scan of this index reads about 40 bytes a segment where one of the table
-- reads its page, frame index and all (see all_places).
CREATE INDEX IF NOT EXISTS segment_place ON segment (start_90k, id, camera_id, state, wall_duration_90k, file_len, pinned);
-- Per camera: segments and their bytes (closed ones: an open row has no
-- file_len yet), kept exact by SQLite itself on every change to segment,
-- whichever build makes it. Retention reads these few rows instead of
-- summing all footage every 10 s (see footage_totals).
CREATE TABLE IF NOT EXISTS segment_usage (
    camera_id INTEGER PRIMARY KEY,
    segments INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS segment_usage_insert AFTER INSERT ON segment BEGIN
    INSERT INTO segment_usage (camera_id, segments, bytes) VALUES (new.camera_id, 1, COALESCE(new.file_len, 0))
        ON CONFLICT (camera_id) DO UPDATE SET segments = segments + 1, bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER IF NOT EXISTS segment_usage_delete AFTER DELETE ON segment BEGIN
    UPDATE segment_usage SET segments = segments - 1, bytes = bytes - COALESCE(old.file_len, 0)
        WHERE camera_id = old.camera_id;
END;
CREATE TRIGGER IF NOT EXISTS segment_usage_update AFTER UPDATE OF camera_id, file_len ON segment BEGIN
    UPDATE segment_usage SET segments = segments - 1, bytes = bytes - COALESCE(old.file_len, 0)
        WHERE camera_id = old.camera_id;
    INSERT INTO segment_usage (camera_id, segments, bytes) VALUES (new.camera_id, 1, COALESCE(new.file_len, 0))
        ON CONFLICT (camera_id) DO UPDATE SET segments = segments + 1, bytes = bytes + excluded.bytes;
END;
-- The open segments (one a camera, two for a moment at a segment boundary):
-- a handful of entries, where finding them otherwise means a walk of all.
CREATE INDEX IF NOT EXISTS segment_open ON segment (camera_id, id) WHERE state = 0;
-- Something that happened: motion, a camera's own event, an input. end_90k
-- is NULL while it goes on.
-- acked_by/acked_at_90k: who acknowledged the alarm in the cloud app, and
-- when; label, bbox (JSON [x, y, w, h] in 0..1) and zones (JSON array of
-- names): an object event's; pin_pre_90k/pin_post_90k, while pinned: the
-- camera's pre- and post-capture when it was pinned, the window the pin
-- holds whatever the camera's settings become. (No comments after the last column: SQLite's
-- DROP COLUMN, used by the upgrade tests, rewrites that text.)
CREATE TABLE IF NOT EXISTS event (
    id INTEGER PRIMARY KEY,
    camera_id INTEGER NOT NULL REFERENCES camera(id),
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    start_90k INTEGER NOT NULL,
    end_90k INTEGER,
    zone TEXT,
    score REAL,
    detail TEXT,
    pinned INTEGER NOT NULL DEFAULT 0,
    -- 1 when snapshots/<camera_id>/<id>.jpg (and .thumb.jpg) exist.
    snapshot INTEGER NOT NULL DEFAULT 0,
    acked_by TEXT,
    acked_at_90k INTEGER,
    label TEXT,
    bbox TEXT,
    zones TEXT,
    pin_pre_90k INTEGER,
    pin_post_90k INTEGER
);
-- Every message and byte sent off-site (the cloud link), for the owner.
CREATE TABLE IF NOT EXISTS egress (
    id INTEGER PRIMARY KEY,
    at_90k INTEGER NOT NULL,
    destination TEXT NOT NULL,
    kind TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    summary TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS egress_at ON egress (at_90k);
-- Alarms for the cloud, kept until it confirms storing them (exactly once
-- across link failures).
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_90k INTEGER NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    -- The event that raised it, for acknowledgements.
    event_id INTEGER,
    -- 1 once the cloud stored it; kept 30 days so acknowledgements find
    -- their event.
    delivered INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS event_start ON event (start_90k);
CREATE INDEX IF NOT EXISTS event_camera_start ON event (camera_id, start_90k);
-- The pinned events (an operator pins a few): retention reads them again
-- inside each deletion, where a scan of a month's events would cost more
-- than the rest of the pass.
CREATE INDEX IF NOT EXISTS event_pinned ON event (camera_id, start_90k) WHERE pinned = 1;
"#;

/// One function per version step: `UPGRADES[v - 1]` takes an index of
/// version `v` to `v + 1`, inside the one transaction that also records the
/// new version. Each step holds the DDL of its own time (never today's
/// [`SCHEMA`]), so an index of any past version reaches exactly the shape
/// a new one has; `upgraded_indexes_equal_a_new_one` checks that. Steps
/// create only what is missing: before versions had steps, a start ran
/// today's schema first and then upgraded, so an index that crashed in
/// between holds tables of a later version than its number says.
type Upgrade = fn(&rusqlite::Transaction) -> rusqlite::Result<()>;
const UPGRADES: [Upgrade; (SCHEMA_VERSION - 1) as usize] = [
    v1_to_v2, v2_to_v3, v3_to_v4, v4_to_v5, v5_to_v6, v6_to_v7, v7_to_v8, v8_to_v9,
];

/// Events (motion, the cameras' own).
fn v1_to_v2(tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS event (
             id INTEGER PRIMARY KEY,
             camera_id INTEGER NOT NULL REFERENCES camera(id),
             kind TEXT NOT NULL,
             source TEXT NOT NULL,
             start_90k INTEGER NOT NULL,
             end_90k INTEGER,
             zone TEXT,
             score REAL,
             detail TEXT,
             pinned INTEGER NOT NULL DEFAULT 0
         );
         CREATE INDEX IF NOT EXISTS event_start ON event (start_90k);
         CREATE INDEX IF NOT EXISTS event_camera_start ON event (camera_id, start_90k);",
    )
}

/// Event snapshots.
fn v2_to_v3(tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
    add_column(tx, "event", "snapshot", "INTEGER NOT NULL DEFAULT 0")
}

/// The egress ledger and the cloud's alarm outbox.
fn v3_to_v4(tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS egress (
             id INTEGER PRIMARY KEY,
             at_90k INTEGER NOT NULL,
             destination TEXT NOT NULL,
             kind TEXT NOT NULL,
             bytes INTEGER NOT NULL,
             summary TEXT NOT NULL
         );
         CREATE INDEX IF NOT EXISTS egress_at ON egress (at_90k);
         CREATE TABLE IF NOT EXISTS outbox (
             id INTEGER PRIMARY KEY,
             at_90k INTEGER NOT NULL,
             payload TEXT NOT NULL,
             attempts INTEGER NOT NULL DEFAULT 0
         );",
    )
}

/// Acknowledgements; outbox ids never reused (rebuilt with AUTOINCREMENT,
/// queued alarms kept).
fn v4_to_v5(tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
    add_column(tx, "event", "acked_by", "TEXT")?;
    add_column(tx, "event", "acked_at_90k", "INTEGER")?;
    // Rebuilt whatever its shape: the copy takes the columns both have.
    tx.execute_batch(
        "ALTER TABLE outbox RENAME TO outbox_v4;
         CREATE TABLE outbox (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             at_90k INTEGER NOT NULL,
             payload TEXT NOT NULL,
             attempts INTEGER NOT NULL DEFAULT 0,
             event_id INTEGER,
             delivered INTEGER NOT NULL DEFAULT 0
         );
         INSERT INTO outbox (id, at_90k, payload, attempts)
             SELECT id, at_90k, payload, attempts FROM outbox_v4;
         DROP TABLE outbox_v4;",
    )
}

/// Object events: label, box and zones entered.
fn v5_to_v6(tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
    add_column(tx, "event", "label", "TEXT")?;
    add_column(tx, "event", "bbox", "TEXT")?;
    add_column(tx, "event", "zones", "TEXT")
}

/// Every segment's place, for retention and recovery, from one index. On
/// an index of a month of footage this is the first time the table's pages
/// are all read since they were written; it happens once, at the start
/// that upgrades.
fn v6_to_v7(tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE INDEX IF NOT EXISTS segment_place ON segment \
         (start_90k, id, camera_id, state, wall_duration_90k, file_len, pinned);",
    )
}

/// Footage totals kept by triggers, and the open segments' index, so that
/// a retention pass reads a few rows instead of all footage. The totals are
/// computed once here, from scratch (an index half-upgraded by an older
/// start may already have the table, with counts from only part of its
/// history), from the covering index `segment_place`: `+camera_id` keeps
/// SQLite from grouping along `segment_camera_start`, which would fetch
/// every row from the table for `file_len`.
fn v7_to_v8(tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS segment_usage (
             camera_id INTEGER PRIMARY KEY,
             segments INTEGER NOT NULL,
             bytes INTEGER NOT NULL
         );
         CREATE TRIGGER IF NOT EXISTS segment_usage_insert AFTER INSERT ON segment BEGIN
             INSERT INTO segment_usage (camera_id, segments, bytes) VALUES (new.camera_id, 1, COALESCE(new.file_len, 0))
                 ON CONFLICT (camera_id) DO UPDATE SET segments = segments + 1, bytes = bytes + excluded.bytes;
         END;
         CREATE TRIGGER IF NOT EXISTS segment_usage_delete AFTER DELETE ON segment BEGIN
             UPDATE segment_usage SET segments = segments - 1, bytes = bytes - COALESCE(old.file_len, 0)
                 WHERE camera_id = old.camera_id;
         END;
         CREATE TRIGGER IF NOT EXISTS segment_usage_update AFTER UPDATE OF camera_id, file_len ON segment BEGIN
             UPDATE segment_usage SET segments = segments - 1, bytes = bytes - COALESCE(old.file_len, 0)
                 WHERE camera_id = old.camera_id;
             INSERT INTO segment_usage (camera_id, segments, bytes) VALUES (new.camera_id, 1, COALESCE(new.file_len, 0))
                 ON CONFLICT (camera_id) DO UPDATE SET segments = segments + 1, bytes = bytes + excluded.bytes;
         END;
         CREATE INDEX IF NOT EXISTS segment_open ON segment (camera_id, id) WHERE state = 0;
         CREATE INDEX IF NOT EXISTS event_pinned ON event (camera_id, start_90k) WHERE pinned = 1;
         DELETE FROM segment_usage;
         INSERT INTO segment_usage (camera_id, segments, bytes)
             SELECT camera_id, COUNT(*), COALESCE(SUM(file_len), 0) FROM segment GROUP BY +camera_id;",
    )
}

/// The window a pin holds, fixed when it is made. The index again: a
/// build of step 8 from before `event_pinned` was part of it made indexes
/// without it, and retention's deletion then scanned every event under its
/// write lock.
fn v8_to_v9(tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
    add_column(tx, "event", "pin_pre_90k", "INTEGER")?;
    add_column(tx, "event", "pin_post_90k", "INTEGER")?;
    tx.execute_batch(
        "CREATE INDEX IF NOT EXISTS event_pinned ON event (camera_id, start_90k) WHERE pinned = 1;",
    )
}

/// Adds `column` to `table` unless it is there already.
fn add_column(
    tx: &rusqlite::Transaction,
    table: &str,
    column: &str,
    ddl: &str,
) -> rusqlite::Result<()> {
    let has: i64 = tx.query_row(
        "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
        [table, column],
        |r| r.get(0),
    )?;
    if has == 0 {
        tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {ddl}"))?;
    }
    Ok(())
}

fn meta_int(conn: &Connection, key: &str) -> Result<Option<i64>, StorageError> {
    let v: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
        .map_err(|e| StorageError::db("reading the schema version", e))?;
    match v {
        None => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| StorageError::SchemaVersion(v)),
    }
}

/// How recent the copy must be for a rollback to restore it by itself.
const RESTORE_WITHIN: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Left beside the index when a copy was restored, until recovery has
/// kept the newer version's footage aside.
pub fn restored_marker(index: &std::path::Path) -> std::path::PathBuf {
    let mut p = index.as_os_str().to_owned();
    p.push(".restored");
    p.into()
}

/// Where the copy taken before an upgrade from `version` goes.
pub fn backup_path(index: &std::path::Path, version: i64) -> std::path::PathBuf {
    let mut p = index.as_os_str().to_owned();
    p.push(format!(".schema-{version}.bak"));
    p.into()
}

/// A new index gets today's [`SCHEMA`]; an old one runs the steps from its
/// version on, all in one transaction (a crash mid-upgrade leaves the old
/// version, intact), after a copy of it is taken when builds of its
/// version couldn't read the result ([`MIN_READER`]). A newer index is
/// used as it is when its `min_reader` allows this build, and refused
/// ([`StorageError::TooNew`]) otherwise.
fn migrate(conn: &Connection, path: &std::path::Path) -> Result<(), StorageError> {
    let ctx = |e| StorageError::db("upgrading the schema", e);
    let has_meta: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(|e| StorageError::db("reading schema version", e))?
        > 0;
    let v: Option<String> = if has_meta {
        conn.query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| StorageError::db("reading schema version", e))?
    } else {
        None
    };
    let Some(v) = v else {
        let tx = conn.unchecked_transaction().map_err(ctx)?;
        tx.execute_batch(SCHEMA)
            .map_err(|e| StorageError::db("creating the schema", e))?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1), ('min_reader', ?2)",
            [SCHEMA_VERSION.to_string(), MIN_READER.to_string()],
        )
        .map_err(|e| StorageError::db("writing schema version", e))?;
        return tx.commit().map_err(ctx);
    };
    let from = match v.parse::<i64>() {
        Ok(n) if n >= 1 => n,
        _ => return Err(StorageError::SchemaVersion(v)),
    };
    // An index without `min_reader` was written by a build that had none:
    // only builds of its own version or newer read it.
    let min_reader = meta_int(conn, "min_reader")?.unwrap_or(from);
    if from > SCHEMA_VERSION {
        if min_reader <= SCHEMA_VERSION {
            tracing::info!(
                "the index is of schema {from}, from a newer Candor; this build (schema {SCHEMA_VERSION}) reads it as it is"
            );
            return Ok(());
        }
        return Err(StorageError::TooNew {
            found: from,
            min_reader,
            ours: SCHEMA_VERSION,
        });
    }
    if from == SCHEMA_VERSION && min_reader == MIN_READER {
        return Ok(());
    }
    if MIN_READER > from {
        // Builds of this index's version can't use what the upgrade makes:
        // keep a copy for a rollback to one of them. VACUUM INTO writes a
        // consistent, compact copy (the WAL included).
        let bak = backup_path(path, from);
        let _ = std::fs::remove_file(&bak);
        conn.execute("VACUUM INTO ?1", [bak.to_string_lossy()])
            .map_err(|e| StorageError::db("copying the index before its upgrade", e))?;
        tracing::info!(
            "index upgraded from schema {from}: a copy from before is kept as {}",
            bak.display()
        );
    }
    let tx = conn.unchecked_transaction().map_err(ctx)?;
    for step in &UPGRADES[(from - 1) as usize..] {
        step(&tx).map_err(ctx)?;
    }
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?1), ('min_reader', ?2)",
        [SCHEMA_VERSION.to_string(), MIN_READER.to_string()],
    )
    .map_err(ctx)?;
    tx.commit().map_err(ctx)
}

// An index a newer build made unreadable for this one (a rollback after an
// incompatible upgrade): when the copy taken before that upgrade is here
// and less than a day old, the newer index (checkpointed: its WAL is in
// it) is moved aside (`index.db.schema-<n>.rolled-back`) and the copy put
// in its place. What the newer build indexed since is not in the copy;
// recovery moves its footage files to `rolled-back/` instead of removing
// them.

/// Whether a copy this build may restore is here: taken before an upgrade
/// from this build's version, and less than a day old (a rollback comes
/// within a new version's trial; a copy from long ago would drop
/// everything indexed since, so that one is an admin's call).
fn restorable(path: &std::path::Path) -> bool {
    let bak = backup_path(path, SCHEMA_VERSION);
    let fresh = std::fs::metadata(&bak)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < RESTORE_WITHIN);
    if !fresh && bak.is_file() {
        tracing::error!(
            "the index is of a schema this build can't use; the copy from before its upgrade ({}) is more than a day old (or the clock is off), so it is not restored by itself: run the newer version again, or put that copy in place of index.db knowingly",
            bak.display()
        );
    }
    fresh
}

fn restoring_path(index: &std::path::Path) -> std::path::PathBuf {
    let mut p = index.as_os_str().to_owned();
    p.push(".restoring");
    p.into()
}

fn sync_dir(index: &std::path::Path) {
    if let Some(d) = index.parent() {
        let _ = std::fs::File::open(d).and_then(|f| f.sync_all());
    }
}

/// Restores the copy (see [`restorable`]) in an order a crash or a full
/// disk can't turn into an empty index over existing footage: the copy is
/// written whole beside the index (`.restoring`, synced), the marker that
/// makes recovery keep unindexed footage aside is written, and only then
/// is the newer index moved aside (`index.db.schema-<n>.rolled-back`, a
/// name not used before) and the copy renamed into place. A start that
/// finds `.restoring` without `index.db` finishes the job
/// ([`finish_restore`]).
fn restore_backup(path: &std::path::Path, found: i64) -> Result<(), StorageError> {
    let io = |what: &'static str| move |e| StorageError::io(what, e);
    let bak = backup_path(path, SCHEMA_VERSION);
    let restoring = restoring_path(path);
    std::fs::copy(&bak, &restoring)
        .and_then(|_| std::fs::File::open(&restoring)?.sync_all())
        .map_err(io("copying the index from before the upgrade"))?;
    if let Err(e) = check_copy(&restoring) {
        let _ = std::fs::remove_file(&restoring);
        return Err(e);
    }
    std::fs::write(restored_marker(path), found.to_string())
        .and_then(|()| std::fs::File::open(restored_marker(path))?.sync_all())
        .map_err(io("marking the index restored"))?;
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".schema-{found}.rolled-back"));
    let mut n = 1;
    while std::path::Path::new(&aside).exists() {
        aside = path.as_os_str().to_owned();
        aside.push(format!(".schema-{found}.rolled-back.{n}"));
        n += 1;
    }
    let aside = std::path::PathBuf::from(aside);
    std::fs::rename(path, &aside).map_err(io("moving the newer index aside"))?;
    // Checkpointed (all of it, checked) and closed: what -wal/-shm remain
    // are empty.
    remove_wal(path);
    std::fs::rename(&restoring, path).map_err(io("putting the copy in place"))?;
    sync_dir(path);
    tracing::warn!(
        "the index was of schema {found}, which this build can't use: it is kept as {} and the copy from before its upgrade ({}) restored; what was indexed since is not in it, and its footage is kept in rolled-back/",
        aside.display(),
        bak.display()
    );
    Ok(())
}

/// A restore cut short between moving the newer index aside and putting
/// the copy in place: put it in place now (never create an empty index
/// beside footage that the restore's marker says to keep).
fn finish_restore(path: &std::path::Path) -> Result<(), StorageError> {
    let restoring = restoring_path(path);
    if restoring.is_file() {
        if path.exists() {
            // Cut short before the newer index moved: nothing was swapped,
            // so neither the copy nor the marker stays (the marker would
            // make a later recovery keep ordinary orphans aside).
            let _ = std::fs::remove_file(&restoring);
            let _ = std::fs::remove_file(restored_marker(path));
        } else {
            // The newer index's WAL must not meet the copy.
            remove_wal(path);
            std::fs::rename(&restoring, path)
                .map_err(|e| StorageError::io("finishing the index's restore", e))?;
            sync_dir(path);
        }
    }
    Ok(())
}

fn remove_wal(index: &std::path::Path) {
    for ext in ["-wal", "-shm"] {
        let mut f = index.as_os_str().to_owned();
        f.push(ext);
        let _ = std::fs::remove_file(f);
    }
}

/// The copy is a whole index of this build's version before anything is
/// moved for it (a torn copy would leave this build unable to start).
fn check_copy(copy: &std::path::Path) -> Result<(), StorageError> {
    let bad = |why: String| {
        StorageError::io(
            "checking the copy from before the upgrade",
            std::io::Error::other(why),
        )
    };
    let c = Connection::open_with_flags(copy, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| StorageError::db("opening the copy from before the upgrade", e))?;
    let ok: String = c
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| StorageError::db("checking the copy from before the upgrade", e))?;
    if ok != "ok" {
        return Err(bad(format!("quick_check: {ok}")));
    }
    match meta_int(&c, "schema_version")? {
        Some(v) if v == SCHEMA_VERSION => Ok(()),
        v => Err(bad(format!("it is of schema {v:?}, not {SCHEMA_VERSION}"))),
    }
}

pub fn open(path: &std::path::Path, read_only: bool) -> Result<Connection, StorageError> {
    open_index(path, read_only, true)
}

fn open_index(
    path: &std::path::Path,
    read_only: bool,
    may_restore: bool,
) -> Result<Connection, StorageError> {
    let flags = if read_only {
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
            | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    if !read_only {
        finish_restore(path)?;
    }
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StorageError::db("opening the index", e))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| StorageError::db("setting busy timeout", e))?;
    // A small page cache, stated: SQLite's default (2 MiB a connection)
    // fills only as the index grows, so a recorder's memory crept up for
    // hours before it levelled off (issue 17; at 1 MiB it was still filling
    // at 25 minutes in heaptrack). The writer appends (the hot pages are
    // each B-tree's rightmost path) and readers walk a range once; the
    // kernel's page cache holds the file either way.
    conn.execute_batch("PRAGMA cache_size = -256;")
        .map_err(|e| StorageError::db("configuring the index", e))?;
    if !read_only {
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
        )
        .map_err(|e| StorageError::db("configuring the index", e))?;
        match migrate(&conn, path) {
            Err(StorageError::TooNew { found, .. }) if may_restore && restorable(path) => {
                // Everything the newer index holds goes into its main file
                // before it is moved aside, and this connection is closed.
                // SQLite reports a checkpoint blocked by a reader (`candor
                // check`, an export) in its result row, not as an error:
                // then nothing is moved, and the next start tries again.
                let (busy, log, done): (i64, i64, i64) = conn
                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .map_err(|e| StorageError::db("checkpointing the newer index", e))?;
                if busy != 0 || log != done {
                    return Err(StorageError::TooNew {
                        found,
                        min_reader: found,
                        ours: SCHEMA_VERSION,
                    });
                }
                drop(conn);
                restore_backup(path, found)?;
                return open_index(path, read_only, false);
            }
            r => r?,
        }
    }
    Ok(conn)
}

pub fn camera_id(conn: &Connection, name: &str, create: bool) -> Result<Option<i64>, StorageError> {
    let ctx = |e| StorageError::db("looking up camera", e);
    if let Some(id) = conn
        .query_row("SELECT id FROM camera WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()
        .map_err(ctx)?
    {
        return Ok(Some(id));
    }
    if !create {
        return Ok(None);
    }
    conn.execute("INSERT INTO camera (name) VALUES (?1)", [name])
        .map_err(ctx)?;
    Ok(Some(conn.last_insert_rowid()))
}

pub fn sample_entry_id(
    conn: &Connection,
    codec: &str,
    width: u16,
    height: u16,
    data: &[u8],
) -> Result<i64, StorageError> {
    let ctx = |e| StorageError::db("storing sample entry", e);
    if let Some(id) = conn
        .query_row("SELECT id FROM sample_entry WHERE data = ?1", [data], |r| {
            r.get(0)
        })
        .optional()
        .map_err(ctx)?
    {
        return Ok(id);
    }
    conn.execute(
        "INSERT INTO sample_entry (codec, width, height, data) VALUES (?1, ?2, ?3, ?4)",
        params![codec, width, height, data],
    )
    .map_err(ctx)?;
    Ok(conn.last_insert_rowid())
}

#[derive(Clone, Debug)]
pub struct SegmentRow {
    pub id: i64,
    pub camera_id: i64,
    pub open: bool,
    pub run_start: bool,
    pub start_90k: i64,
    pub wall_duration_90k: Option<i64>,
    pub media_duration_90k: Option<i64>,
    pub frames: Option<i64>,
    pub file_len: Option<i64>,
    pub sample_entry_id: i64,
    pub frame_index: Option<Vec<u8>>,
    pub pinned: bool,
}

const SEG_COLS: &str = "id, camera_id, state, run_start, start_90k, wall_duration_90k, media_duration_90k, \
                        frames, file_len, sample_entry_id, frame_index, pinned";

fn seg_row(r: &rusqlite::Row) -> rusqlite::Result<SegmentRow> {
    Ok(SegmentRow {
        id: r.get(0)?,
        camera_id: r.get(1)?,
        open: r.get::<_, i64>(2)? == 0,
        run_start: r.get::<_, i64>(3)? != 0,
        start_90k: r.get(4)?,
        wall_duration_90k: r.get(5)?,
        media_duration_90k: r.get(6)?,
        frames: r.get(7)?,
        file_len: r.get(8)?,
        sample_entry_id: r.get(9)?,
        frame_index: r.get(10)?,
        pinned: r.get::<_, i64>(11)? != 0,
    })
}

/// Segments of a camera that may overlap `[from, to)`, in time order. Open
/// segments in reach are included whatever their end (it is known only
/// from their file). `max_segment_90k` bounds how long before `from` a
/// segment can start and still reach into the range; the writer closes
/// every segment, open ones included, by then. Both ends bound the index
/// range scanned: a camera's older history is never walked.
pub fn segments_in(
    conn: &Connection,
    camera_id: i64,
    from: i64,
    to: i64,
    max_segment_90k: i64,
) -> Result<Vec<SegmentRow>, StorageError> {
    let mut out = Vec::new();
    segments_overlapping(conn, SEG_COLS, camera_id, from, to, max_segment_90k, |r| {
        out.push(r)
    })?;
    Ok(out)
}

/// [`segments_in`]'s rows one at a time and without their frame indexes
/// (`frame_index` is `None`): where segments lie in time, for listing
/// spans. A month of one camera is about 45,000 rows, whose indexes are
/// about 150 MB and, decoded, over a gigabyte of frames; a timeline needs
/// none of it, nor the rows kept.
pub fn for_each_segment_place(
    conn: &Connection,
    camera_id: i64,
    from: i64,
    to: i64,
    max_segment_90k: i64,
    each: impl FnMut(SegmentRow),
) -> Result<(), StorageError> {
    let cols = SEG_COLS.replace("frame_index", "NULL");
    segments_overlapping(conn, &cols, camera_id, from, to, max_segment_90k, each)
}

fn segments_overlapping(
    conn: &Connection,
    cols: &str,
    camera_id: i64,
    from: i64,
    to: i64,
    max_segment_90k: i64,
    mut each: impl FnMut(SegmentRow),
) -> Result<(), StorageError> {
    let err = |e| StorageError::db("querying segments", e);
    let mut stmt = conn.prepare_cached(&overlapping_sql(cols)).map_err(err)?;
    let mut rows = stmt
        .query(params![
            camera_id,
            to,
            from.saturating_sub(max_segment_90k),
            from
        ])
        .map_err(err)?;
    while let Some(r) = rows.next().map_err(err)? {
        each(seg_row(r).map_err(err)?);
    }
    Ok(())
}

/// ?1 camera, ?2 `to`, ?3 the earliest start that can reach `from`, ?4 `from`.
fn overlapping_sql(cols: &str) -> String {
    format!(
        "SELECT {cols} FROM segment WHERE camera_id = ?1 AND start_90k >= ?3 AND start_90k < ?2 \
         AND (state = 0 OR start_90k + wall_duration_90k > ?4) ORDER BY start_90k, id"
    )
}

/// Where a segment lies and what retention and recovery need of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentPlace {
    pub id: i64,
    pub camera_id: i64,
    pub open: bool,
    pub start_90k: i64,
    pub wall_duration_90k: Option<i64>,
    pub file_len: Option<i64>,
    pub pinned: bool,
}

const PLACES_SQL: &str = "SELECT id, camera_id, state, start_90k, wall_duration_90k, file_len, pinned \
                          FROM segment ORDER BY start_90k, id";

/// Per camera: segments, bytes, oldest and newest footage, for the
/// system page (any request by a user with diagnostics access) and the
/// cloud's status. Counts from `segment_usage`; the oldest start and the
/// newest segment from `segment_camera_start`, two searches a camera: no
/// walk of the footage, under the index lock, however much there is.
pub(crate) const USAGE_SQL: &str = "SELECT u.camera_id, u.segments, u.bytes, \
     (SELECT MIN(start_90k) FROM segment WHERE camera_id = u.camera_id), \
     (SELECT start_90k + COALESCE(wall_duration_90k, 0) FROM segment WHERE camera_id = u.camera_id \
      ORDER BY start_90k DESC LIMIT 1) \
     FROM segment_usage u WHERE u.segments > 0 ORDER BY u.camera_id";

const TOTALS_SQL: &str = "SELECT camera_id, bytes FROM segment_usage";
const OPEN_SQL: &str = "SELECT id, camera_id FROM segment WHERE state = 0";

/// An open segment: (id, camera).
pub type OpenSegment = (i64, i64);

/// Bytes of closed footage per camera (from `segment_usage`, which
/// triggers keep), and the open segments as (id, camera), whose bytes are
/// only in their files. A few rows, whatever the footage: a retention
/// pass starts here, every 10 s.
pub fn footage_totals(
    conn: &Connection,
) -> Result<(std::collections::HashMap<i64, u64>, Vec<OpenSegment>), StorageError> {
    let err = |e| StorageError::db("reading footage totals", e);
    let mut totals = std::collections::HashMap::new();
    let mut stmt = conn.prepare_cached(TOTALS_SQL).map_err(err)?;
    let mut rows = stmt.query([]).map_err(err)?;
    while let Some(r) = rows.next().map_err(err)? {
        // Negative only if the table was edited by hand: count nothing.
        let bytes: i64 = r.get(1).map_err(err)?;
        totals.insert(r.get(0).map_err(err)?, bytes.max(0) as u64);
    }
    let mut stmt = conn.prepare_cached(OPEN_SQL).map_err(err)?;
    let open = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(err)?;
    Ok((totals, open))
}

/// Every segment's place, oldest first, one at a time: what retention
/// (every 10 s) and recovery (at start) walk. Read from the covering index
/// `segment_place` alone, never the table: a row's frame index is most of
/// its bytes (about 5 bytes a frame, 2.8 KB a camera-minute at 10 fps,
/// about 8 GB for a month of 64 cameras), and even a query that leaves it
/// out reads the pages it lies in (issue 17).
pub fn all_places(
    conn: &Connection,
    mut each: impl FnMut(SegmentPlace),
) -> Result<(), StorageError> {
    places_from_oldest(conn, |p| {
        each(p);
        true
    })
}

/// [`all_places`] until `each` returns false: SQLite steps the index one
/// row at a time, so the rest is never read.
pub fn places_from_oldest(
    conn: &Connection,
    mut each: impl FnMut(SegmentPlace) -> bool,
) -> Result<(), StorageError> {
    let err = |e| StorageError::db("listing segments", e);
    let mut stmt = conn.prepare_cached(PLACES_SQL).map_err(err)?;
    let mut rows = stmt.query([]).map_err(err)?;
    while let Some(r) = rows.next().map_err(err)? {
        let go_on = each(SegmentPlace {
            id: r.get(0).map_err(err)?,
            camera_id: r.get(1).map_err(err)?,
            open: r.get::<_, i64>(2).map_err(err)? == 0,
            start_90k: r.get(3).map_err(err)?,
            wall_duration_90k: r.get(4).map_err(err)?,
            file_len: r.get(5).map_err(err)?,
            pinned: r.get::<_, i64>(6).map_err(err)? != 0,
        });
        if !go_on {
            break;
        }
    }
    Ok(())
}

pub fn all_segments(conn: &Connection) -> Result<Vec<SegmentRow>, StorageError> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {SEG_COLS} FROM segment ORDER BY start_90k, id"
        ))
        .map_err(|e| StorageError::db("listing segments", e))?;
    let rows = stmt
        .query_map([], seg_row)
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(|e| StorageError::db("listing segments", e))?;
    Ok(rows)
}

pub fn sample_entry(
    conn: &Connection,
    id: i64,
) -> Result<(String, u16, u16, Vec<u8>), StorageError> {
    conn.query_row(
        "SELECT codec, width, height, data FROM sample_entry WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
    .map_err(|e| StorageError::db("reading sample entry", e))
}

pub fn cameras(conn: &Connection) -> Result<Vec<(i64, String)>, StorageError> {
    let mut stmt = conn
        .prepare("SELECT id, name FROM camera ORDER BY name")
        .map_err(|e| StorageError::db("listing cameras", e))?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|r| r.collect())
        .map_err(|e| StorageError::db("listing cameras", e))
}

/// Appends `v` as a LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn get_varint(data: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = data.split_first()?;
        *data = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod query_tests {
    use super::*;

    /// Retention's walk of all footage, every 10 s, reads the covering
    /// index in its order: no page of the table (frame indexes), no sort.
    #[test]
    fn all_places_read_only_the_covering_index() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("index.db"), false).unwrap();
        let plan = |sql: &str| -> Vec<String> {
            conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map([], |r| r.get::<_, String>(3))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(
            plan(PLACES_SQL),
            ["SCAN segment USING COVERING INDEX segment_place"]
        );
        // The system page's usage, as often as users ask: a row a camera,
        // and for each two searches of the camera's index.
        assert_eq!(
            plan(USAGE_SQL),
            [
                "SCAN u",
                "CORRELATED SCALAR SUBQUERY 1",
                "SEARCH segment USING COVERING INDEX segment_camera_start (camera_id=?)",
                "CORRELATED SCALAR SUBQUERY 2",
                "SEARCH segment USING INDEX segment_camera_start (camera_id=?)"
            ]
        );
        // What a retention pass reads before its walk: a row a camera, and
        // the open segments from their partial index (not a scan of all).
        assert_eq!(plan(TOTALS_SQL), ["SCAN segment_usage"]);
        assert_eq!(
            plan(OPEN_SQL),
            ["SCAN segment USING COVERING INDEX segment_open"]
        );
        // What each deletion reads again under its write lock.
        assert_eq!(
            plan(crate::events::PINNED_SQL),
            ["SCAN event USING INDEX event_pinned"]
        );
    }

    /// An index at schema 8 without `event_pinned` (made by a build of the
    /// step from before it had the index) gets it with step 9.
    #[test]
    fn a_schema_8_index_without_event_pinned_gets_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index.db");
        let has = |c: &Connection| -> bool {
            c.query_row(
                "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index' AND name = 'event_pinned'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
                == 1
        };
        let c = open(&p, false).unwrap();
        c.execute_batch(
            "DROP INDEX event_pinned; ALTER TABLE event DROP COLUMN pin_pre_90k; \
             ALTER TABLE event DROP COLUMN pin_post_90k; UPDATE meta SET value = '8' WHERE key = 'schema_version';",
        )
        .unwrap();
        drop(c);
        let c = open(&p, true).unwrap();
        assert!(!has(&c), "a read-only open changes nothing");
        drop(c);
        let c = open(&p, false).unwrap();
        assert!(has(&c));
        assert_eq!(
            meta_int(&c, "schema_version").unwrap(),
            Some(SCHEMA_VERSION)
        );
    }

    /// The triggers keep `segment_usage` equal to a sum over `segment`
    /// through every change the writer, recovery and retention make.
    #[test]
    fn segment_usage_follows_every_change_to_segments() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("index.db"), false).unwrap();
        conn.execute_batch(
            "INSERT INTO camera (id, name) VALUES (1, 'a'), (2, 'b');
             INSERT INTO sample_entry (id, codec, width, height, data) VALUES (1, 'avc1', 1, 1, x'00');",
        )
        .unwrap();
        let check = |when: &str| {
            let want: Vec<(i64, i64, i64)> = conn
                .prepare("SELECT camera_id, COUNT(*), COALESCE(SUM(file_len), 0) FROM segment GROUP BY camera_id")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let got: Vec<(i64, i64, i64)> = conn
                .prepare("SELECT camera_id, segments, bytes FROM segment_usage WHERE segments > 0 ORDER BY camera_id")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(got, want, "{when}");
        };
        for i in 0..6 {
            conn.execute(
                "INSERT INTO segment (camera_id, state, run_start, start_90k, sample_entry_id) VALUES (?1, 0, 1, ?2, 1)",
                [1 + i % 2, i * 100],
            )
            .unwrap();
        }
        check("opened");
        conn.execute(
            "UPDATE segment SET state = 1, file_len = 1000 + id WHERE id <= 4",
            [],
        )
        .unwrap();
        check("closed");
        conn.execute("UPDATE segment SET file_len = 7 WHERE id = 1", [])
            .unwrap();
        conn.execute("UPDATE segment SET pinned = 1 WHERE id = 2", [])
            .unwrap();
        check("recovered");
        conn.execute("UPDATE segment SET camera_id = 2 WHERE id = 3", [])
            .unwrap();
        check("moved");
        conn.execute("UPDATE segment SET camera_id = 1 WHERE id = 3", [])
            .unwrap();
        check("moved back");
        conn.execute("DELETE FROM segment WHERE id IN (1, 4, 6)", [])
            .unwrap();
        check("deleted");
        let (totals, mut open) = footage_totals(&conn).unwrap();
        open.sort();
        assert_eq!(open, [(5, 1)]);
        assert_eq!(totals[&1], 1003);
        assert_eq!(totals[&2], 1002);
    }

    /// An index of schema 7 with footage upgrades to totals that match it.
    #[test]
    fn the_upgrade_to_8_counts_the_footage_already_there() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index.db");
        {
            let conn = open(&p, false).unwrap();
            conn.execute_batch(
                "INSERT INTO camera (id, name) VALUES (1, 'a'), (2, 'b');
                 INSERT INTO sample_entry (id, codec, width, height, data) VALUES (1, 'avc1', 1, 1, x'00');
                 DROP TRIGGER segment_usage_insert; DROP TRIGGER segment_usage_delete;
                 DROP TRIGGER segment_usage_update; DROP INDEX segment_open;
                 INSERT INTO segment (camera_id, state, run_start, start_90k, sample_entry_id, file_len)
                     VALUES (1, 1, 1, 0, 1, 10), (1, 1, 0, 5, 1, 20), (2, 1, 1, 0, 1, 40), (2, 0, 0, 9, 1, NULL);
                 -- Left by a start of this build cut off mid-upgrade, then
                 -- changes by an older build that kept no count: stale.
                 DELETE FROM segment_usage;
                 INSERT INTO segment_usage VALUES (1, 99, 12345), (3, 1, 5);
                 UPDATE meta SET value = '7' WHERE key = 'schema_version';",
            )
            .unwrap();
        }
        let conn = open(&p, false).unwrap();
        let (totals, open) = footage_totals(&conn).unwrap();
        assert_eq!(totals.len(), 2, "{totals:?}");
        assert_eq!((totals[&1], totals[&2]), (30, 40));
        let counts: Vec<(i64, i64)> = conn
            .prepare("SELECT camera_id, segments FROM segment_usage ORDER BY camera_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(counts, [(1, 2), (2, 2)]);
        assert_eq!(open, [(4, 2)]);
    }

    /// A range's segments are found by an index search bounded at both
    /// ends: a camera's older history is never walked. Any user who may
    /// see a camera runs this (its spans) under the index lock.
    #[test]
    fn segments_in_a_range_are_searched_between_both_ends_of_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("index.db"), false).unwrap();
        for cols in [SEG_COLS.to_owned(), SEG_COLS.replace("frame_index", "NULL")] {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {}", overlapping_sql(&cols)))
                .unwrap()
                .query_map(params![1, 2, 0, 1], |r| r.get::<_, String>(3))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let plan = plan.join("; ");
            assert!(
                plan.contains(
                    "USING INDEX segment_camera_start (camera_id=? AND start_90k>? AND start_90k<?)"
                ),
                "{plan}"
            );
        }
    }
}

#[cfg(test)]
mod upgrade_tests {
    use super::*;

    /// Tables, their columns (name, type, not null, default, key) and the
    /// indexes, in a comparable form.
    fn shape(conn: &Connection) -> Vec<String> {
        let mut out = Vec::new();
        let mut q = conn
            .prepare("SELECT type, name, tbl_name FROM sqlite_master WHERE name NOT LIKE 'sqlite_autoindex%' ORDER BY type, name")
            .unwrap();
        let items: Vec<(String, String, String)> = q
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for (kind, name, table) in items {
            out.push(format!("{kind} {name} on {table}"));
            let pragma = if kind == "table" {
                "table_info"
            } else {
                "index_info"
            };
            let mut q = conn.prepare(&format!("PRAGMA {pragma}({name})")).unwrap();
            let n = q.column_count();
            let rows: Vec<String> = q
                .query_map([], |r| {
                    Ok((0..n)
                        .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                        .collect::<Vec<_>>()
                        .join(" "))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            out.extend(rows.into_iter().map(|r| format!("  {r}")));
        }
        out
    }

    fn version(conn: &Connection) -> String {
        conn.query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    }

    /// A version-1 index: cameras and segments, nothing else.
    fn v1(path: &std::path::Path) {
        drop(open(path, false).unwrap());
        let c = Connection::open(path).unwrap();
        c.execute_batch(
            "DROP TABLE event; DROP TABLE egress; DROP TABLE outbox; DROP INDEX segment_place; \
             DROP TRIGGER segment_usage_insert; DROP TRIGGER segment_usage_delete; \
             DROP TRIGGER segment_usage_update; DROP TABLE segment_usage; DROP INDEX segment_open; \
             UPDATE meta SET value = '1' WHERE key = 'schema_version';",
        )
        .unwrap();
    }

    #[test]
    fn there_is_one_upgrade_per_version_step() {
        assert_eq!(UPGRADES.len() as i64, SCHEMA_VERSION - 1);
    }

    /// From every past version, the upgraded index has exactly the tables,
    /// columns and indexes of a new one, and today's version.
    #[test]
    fn upgraded_indexes_equal_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh.db");
        let want = shape(&open(&fresh, false).unwrap());
        for from in 1..SCHEMA_VERSION {
            let p = dir.path().join(format!("v{from}.db"));
            v1(&p);
            {
                let mut c = Connection::open(&p).unwrap();
                let tx = c.transaction().unwrap();
                for step in &UPGRADES[..(from - 1) as usize] {
                    step(&tx).unwrap();
                }
                tx.execute(
                    "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
                    [from.to_string()],
                )
                .unwrap();
                tx.commit().unwrap();
            }
            let c = open(&p, false).unwrap();
            assert_eq!(version(&c), SCHEMA_VERSION.to_string(), "from {from}");
            assert_eq!(shape(&c), want, "upgraded from version {from}");
        }
    }

    /// Before versions had steps, a start created today's tables first and
    /// upgraded after: an index that crashed in between says version 3 but
    /// holds version 5's tables. It upgrades, and keeps its queued alarm.
    #[test]
    fn an_index_half_upgraded_by_an_older_start_upgrades() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index.db");
        drop(open(&p, false).unwrap());
        let c = Connection::open(&p).unwrap();
        c.execute_batch(
            "INSERT INTO outbox (at_90k, payload) VALUES (1, 'kept');
             UPDATE meta SET value = '3' WHERE key = 'schema_version';",
        )
        .unwrap();
        drop(c);
        let c = open(&p, false).unwrap();
        assert_eq!(version(&c), SCHEMA_VERSION.to_string());
        let kept: String = c
            .query_row("SELECT payload FROM outbox", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, "kept");
        let fresh = dir.path().join("fresh.db");
        assert_eq!(shape(&c), shape(&open(&fresh, false).unwrap()));
    }

    #[test]
    fn an_index_from_a_newer_version_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index.db");
        drop(open(&p, false).unwrap());
        Connection::open(&p)
            .unwrap()
            .execute(
                "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
                [],
            )
            .unwrap();
        // No `min_reader`: only builds of its version read it.
        Connection::open(&p)
            .unwrap()
            .execute("DELETE FROM meta WHERE key = 'min_reader'", [])
            .unwrap();
        assert!(matches!(
            open(&p, false),
            Err(StorageError::TooNew {
                found: 99,
                min_reader: 99,
                ours: SCHEMA_VERSION
            })
        ));
        assert_eq!(version(&Connection::open(&p).unwrap()), "99");
    }

    fn set_meta(p: &std::path::Path, key: &str, value: i64) {
        Connection::open(p)
            .unwrap()
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                rusqlite::params![key, value.to_string()],
            )
            .unwrap();
    }

    /// A rollback after an additive upgrade: a newer index whose
    /// `min_reader` this build meets is used as it is, left newer.
    #[test]
    fn a_newer_index_this_build_may_read_is_used_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index.db");
        drop(open(&p, false).unwrap());
        set_meta(&p, "schema_version", SCHEMA_VERSION + 1);
        set_meta(&p, "min_reader", MIN_READER);
        let c = open(&p, false).unwrap();
        c.execute("INSERT INTO camera (name) VALUES ('gate')", [])
            .unwrap();
        assert_eq!(version(&c), (SCHEMA_VERSION + 1).to_string());
    }

    /// A rollback after an incompatible upgrade: the copy taken before it
    /// is restored, and the newer index kept aside, untouched.
    #[test]
    fn an_index_upgraded_past_this_build_is_restored_from_its_copy() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index.db");
        let c = open(&p, false).unwrap();
        c.execute("INSERT INTO camera (name) VALUES ('before')", [])
            .unwrap();
        // What a newer build's upgrade does first: the copy.
        c.execute(
            "VACUUM INTO ?1",
            [backup_path(&p, SCHEMA_VERSION).to_string_lossy()],
        )
        .unwrap();
        c.execute("INSERT INTO camera (name) VALUES ('after')", [])
            .unwrap();
        drop(c);
        set_meta(&p, "schema_version", SCHEMA_VERSION + 1);
        set_meta(&p, "min_reader", SCHEMA_VERSION + 1);
        let c = open(&p, false).unwrap();
        assert_eq!(version(&c), SCHEMA_VERSION.to_string());
        let names: Vec<String> = c
            .prepare("SELECT name FROM camera")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(names, ["before"]);
        let aside = dir.path().join(format!(
            "index.db.schema-{}.rolled-back",
            SCHEMA_VERSION + 1
        ));
        assert_eq!(
            version(&Connection::open(&aside).unwrap()),
            (SCHEMA_VERSION + 1).to_string()
        );
        // Without a copy, it is refused and left as it is.
        drop(c);
        std::fs::remove_file(backup_path(&p, SCHEMA_VERSION)).unwrap();
        set_meta(&p, "schema_version", SCHEMA_VERSION + 1);
        set_meta(&p, "min_reader", SCHEMA_VERSION + 1);
        let e = open(&p, false).unwrap_err();
        assert!(e.to_string().contains("run the newer version again"), "{e}");
        assert_eq!(
            version(&Connection::open(&p).unwrap()),
            (SCHEMA_VERSION + 1).to_string()
        );
    }

    /// A restore cut short by a crash: after the newer index moved aside,
    /// the next open puts the copy in place (never an empty index, never
    /// beside the newer index's WAL); before it moved, nothing stays.
    #[test]
    fn a_restore_cut_short_is_finished_or_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index.db");
        let c = open(&p, false).unwrap();
        c.execute("INSERT INTO camera (name) VALUES ('kept')", [])
            .unwrap();
        drop(c);
        // Cut short after the swap's first half.
        std::fs::copy(&p, restoring_path(&p)).unwrap();
        std::fs::write(restored_marker(&p), "7").unwrap();
        std::fs::rename(&p, dir.path().join("index.db.schema-7.rolled-back")).unwrap();
        let mut wal = p.as_os_str().to_owned();
        wal.push("-wal");
        std::fs::write(&wal, b"the newer index's WAL, not for this copy").unwrap();
        let c = open(&p, false).unwrap();
        let n: i64 = c
            .query_row("SELECT count(*) FROM camera WHERE name = 'kept'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(n, 1);
        assert!(!restoring_path(&p).exists());
        // The marker stays for recovery, which keeps the footage aside.
        assert!(restored_marker(&p).exists());
        drop(c);
        // Cut short before the newer index moved: the copy and the marker go.
        std::fs::copy(&p, restoring_path(&p)).unwrap();
        drop(open(&p, false).unwrap());
        assert!(!restoring_path(&p).exists() && !restored_marker(&p).exists());
    }

    /// A torn or foreign copy is not put in place of the index.
    #[test]
    fn a_copy_that_is_not_a_whole_index_of_this_version_is_not_restored() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index.db");
        drop(open(&p, false).unwrap());
        std::fs::write(backup_path(&p, SCHEMA_VERSION), b"not an index").unwrap();
        set_meta(&p, "schema_version", SCHEMA_VERSION + 1);
        set_meta(&p, "min_reader", SCHEMA_VERSION + 1);
        assert!(open(&p, false).is_err());
        assert_eq!(
            version(&Connection::open(&p).unwrap()),
            (SCHEMA_VERSION + 1).to_string()
        );
        assert!(!restored_marker(&p).exists());
    }

    /// An upgrade that builds of the old version couldn't read keeps a copy
    /// of the index from before it.
    #[test]
    fn an_upgrade_past_older_readers_keeps_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index.db");
        drop(open(&p, false).unwrap());
        // An index of the version before MIN_READER (its tables are a
        // superset, and the steps create only what is missing).
        set_meta(&p, "schema_version", MIN_READER - 1);
        Connection::open(&p)
            .unwrap()
            .execute("DELETE FROM meta WHERE key = 'min_reader'", [])
            .unwrap();
        let c = open(&p, false).unwrap();
        assert_eq!(version(&c), SCHEMA_VERSION.to_string());
        let bak = backup_path(&p, MIN_READER - 1);
        assert_eq!(
            version(&Connection::open(&bak).unwrap()),
            (MIN_READER - 1).to_string()
        );
    }
}
