//! Events in the index: what happened, on which camera, from when to when.

use crate::{StorageError, Store};
use candor_media::Time90k;
use rusqlite::{OptionalExtension, params};

#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: i64,
    pub camera: String,
    /// `motion`, `tamper`, `input`.
    pub kind: String,
    /// `onvif` (the camera said so) or `motion` (Candor's detector).
    pub source: String,
    pub start: Time90k,
    /// `None` while the event goes on.
    pub end: Option<Time90k>,
    pub zone: Option<String>,
    pub score: Option<f64>,
    pub detail: Option<String>,
    pub pinned: bool,
    /// A snapshot (and thumbnail) is stored; see [`Store::snapshot`].
    pub snapshot: bool,
    /// Acknowledged from the cloud app: by whom, and when.
    pub acked: Option<(String, Time90k)>,
    /// Object events: what it was (`person`, `car`, …) …
    pub label: Option<String>,
    /// … its best box, `[x, y, w, h]` in 0..1 …
    pub bbox: Option<[f32; 4]>,
    /// … and the zones it entered.
    pub zones: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub camera_id: Option<i64>,
    pub since: Option<Time90k>,
    pub limit: Option<u32>,
    /// Only events of these cameras (by name); `None`: all. Applied in the
    /// query, before `limit`, so a caller limited to some cameras gets a
    /// full page of theirs and learns nothing of the others.
    pub cameras: Option<Vec<String>>,
    /// Only events of this kind; also before `limit`.
    pub kind: Option<String>,
    /// Only object events of this label; also before `limit`.
    pub label: Option<String>,
    /// Only this event.
    pub id: Option<i64>,
}

/// Which of an event's pictures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Snapshot {
    /// The snapshot (an object event's with its box drawn).
    Full,
    /// The snapshot, 320 px wide.
    Thumbnail,
    /// An object event's snapshot without the box.
    Clean,
}

/// An event's extent, for retention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventWindow {
    pub camera_id: i64,
    pub start_90k: i64,
    /// `None` while the event goes on.
    pub end_90k: Option<i64>,
    pub pinned: bool,
    /// A pin's own (pre-capture, post-capture), fixed when it was made;
    /// `None` for an unpinned event, or one an older build pinned.
    pub pin_capture_90k: Option<(i64, i64)>,
}

/// The pinned events, from their partial index `event_pinned`. `pinned` is
/// only ever 0 or 1 (its default, and [`Store::set_event_pinned`] binds a
/// bool), so `= 1`, the index's own condition, is every pinned event.
pub(crate) const PINNED_SQL: &str = "SELECT camera_id, start_90k, end_90k, pinned, pin_pre_90k, pin_post_90k FROM event WHERE pinned = 1";

/// One row of `camera_id, start_90k, end_90k, pinned, pin_pre_90k,
/// pin_post_90k`.
fn event_window(r: &rusqlite::Row) -> rusqlite::Result<EventWindow> {
    let pinned: bool = r.get(3)?;
    let capture = match (r.get::<_, Option<i64>>(4)?, r.get::<_, Option<i64>>(5)?) {
        (Some(pre), Some(post)) if pinned => Some((pre, post)),
        _ => None,
    };
    Ok(EventWindow {
        camera_id: r.get(0)?,
        start_90k: r.get(1)?,
        end_90k: r.get(2)?,
        pinned,
        pin_capture_90k: capture,
    })
}

/// The pinned events' windows, on a connection the caller holds (retention
/// reads them inside its delete transaction). Few: an operator pins them.
pub(crate) fn pinned_event_windows(
    conn: &rusqlite::Connection,
) -> Result<Vec<EventWindow>, StorageError> {
    let mut stmt = conn
        .prepare_cached(PINNED_SQL)
        .map_err(|e| StorageError::db("listing pinned events", e))?;
    stmt.query_map([], event_window)
        .and_then(|rows| rows.collect())
        .map_err(|e| StorageError::db("listing pinned events", e))
}

impl Store {
    /// The extents (without pre/post capture, which is per camera) of the
    /// events that start before `before`, found through `event_start`, so
    /// that a month of later events is not read.
    pub fn event_windows_before(&self, before: i64) -> Result<Vec<EventWindow>, StorageError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT camera_id, start_90k, end_90k, pinned, pin_pre_90k, pin_post_90k FROM event WHERE start_90k < ?1",
            )
            .map_err(|e| StorageError::db("listing events", e))?;
        stmt.query_map([before], event_window)
            .and_then(|rows| rows.collect())
            .map_err(|e| StorageError::db("listing events", e))
    }

    /// Protects the footage around an event from retention: from
    /// `pre_90k` before its start to `post_90k` after its end (the camera's
    /// pre- and post-capture now; the pin keeps them if the camera's change
    /// or it is removed). `None` releases it. Returns false when there is no
    /// such event.
    pub fn set_event_pinned(&self, id: i64, pin: Option<(i64, i64)>) -> Result<bool, StorageError> {
        let (pre, post) = pin.map_or((None, None), |(pre, post)| {
            (Some(pre.max(0)), Some(post.max(0)))
        });
        let n = self
            .conn()
            .execute(
                "UPDATE event SET pinned = ?1, pin_pre_90k = ?2, pin_post_90k = ?3 WHERE id = ?4",
                params![pin.is_some(), pre, post, id],
            )
            .map_err(|e| StorageError::db("pinning an event", e))?;
        Ok(n > 0)
    }

    /// Forgets events whose footage retention has deleted (ended before the
    /// camera's oldest segment; pinned ones stay), with their snapshots.
    /// "Its footage" is the event's own span: what post-capture kept after
    /// it may outlive it by a few seconds, and shows in playback without
    /// the event.
    pub fn prune_events(&self) -> Result<usize, StorageError> {
        // One statement, so that choosing and deleting see the same rows: an
        // event an operator pins meanwhile (another connection, or this
        // one between two statements) is either pinned before it and kept,
        // or pinned after it and gone with nothing left to pin.
        let gone: Vec<(i64, i64)> = {
            let conn = self.conn();
            let mut stmt = conn
                .prepare(
                    "DELETE FROM event AS e WHERE e.pinned = 0 AND e.end_90k IS NOT NULL \
                     AND e.end_90k < (SELECT MIN(s.start_90k) FROM segment s WHERE s.camera_id = e.camera_id) \
                     RETURNING id, camera_id",
                )
                .map_err(|e| StorageError::db("pruning events", e))?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect::<Result<_, _>>())
                .map_err(|e| StorageError::db("pruning events", e))?
        };
        // Rows first, files after: a crash in between leaves only files
        // nothing points to.
        for (id, cam) in &gone {
            for which in [Snapshot::Full, Snapshot::Thumbnail, Snapshot::Clean] {
                let _ = std::fs::remove_file(self.snapshot_path(*cam, *id, which));
            }
        }
        Ok(gone.len())
    }

    /// Records the start of an event; returns its id.
    pub fn start_event(
        &self,
        camera_id: i64,
        kind: &str,
        source: &str,
        start: Time90k,
        detail: Option<&str>,
    ) -> Result<i64, StorageError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO event (camera_id, kind, source, start_90k, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![camera_id, kind, source, start.0, detail],
        )
        .map_err(|e| StorageError::db("recording an event", e))?;
        Ok(conn.last_insert_rowid())
    }

    /// Records the end of an ongoing event.
    pub fn end_event(&self, id: i64, end: Time90k) -> Result<(), StorageError> {
        self.conn()
            .execute(
                "UPDATE event SET end_90k = ?1 WHERE id = ?2 AND end_90k IS NULL",
                params![end.0, id],
            )
            .map_err(|e| StorageError::db("ending an event", e))?;
        Ok(())
    }

    /// Ends every event left open (a crash, or a camera lost mid-event) at
    /// `at`, so none stays "ongoing" forever. Returns how many.
    pub fn close_open_events(&self, at: Time90k) -> Result<usize, StorageError> {
        self.conn()
            .execute(
                "UPDATE event SET end_90k = MAX(start_90k, ?1) WHERE end_90k IS NULL",
                [at.0],
            )
            .map_err(|e| StorageError::db("closing open events", e))
    }

    /// Events, newest first.
    pub fn events(&self, f: &EventFilter) -> Result<Vec<Event>, StorageError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT e.id, c.name, e.kind, e.source, e.start_90k, e.end_90k, e.zone, e.score, e.detail, e.pinned, e.snapshot, e.acked_by, e.acked_at_90k, \
                 e.label, e.bbox, e.zones \
                 FROM event e JOIN camera c ON c.id = e.camera_id \
                 WHERE (?1 IS NULL OR e.camera_id = ?1) AND (?2 IS NULL OR e.end_90k IS NULL OR e.end_90k >= ?2) \
                 AND (?4 IS NULL OR c.name IN (SELECT value FROM json_each(?4))) AND (?5 IS NULL OR e.kind = ?5) \
                 AND (?6 IS NULL OR e.label = ?6) AND (?7 IS NULL OR e.id = ?7) \
                 ORDER BY e.start_90k DESC, e.id DESC LIMIT ?3",
            )
            .map_err(|e| StorageError::db("listing events", e))?;
        let limit = i64::from(f.limit.unwrap_or(1000).min(100_000));
        let cameras = f
            .cameras
            .as_ref()
            .map(|c| serde_json::to_string(c).unwrap_or_else(|_| "[]".into()));
        let rows = stmt
            .query_map(
                params![
                    f.camera_id,
                    f.since.map(|t| t.0),
                    limit,
                    cameras,
                    f.kind,
                    f.label,
                    f.id
                ],
                |r| {
                    Ok(Event {
                        id: r.get(0)?,
                        camera: r.get(1)?,
                        kind: r.get(2)?,
                        source: r.get(3)?,
                        start: Time90k(r.get(4)?),
                        end: r.get::<_, Option<i64>>(5)?.map(Time90k),
                        zone: r.get(6)?,
                        score: r.get(7)?,
                        detail: r.get(8)?,
                        pinned: r.get(9)?,
                        snapshot: r.get(10)?,
                        acked: match (
                            r.get::<_, Option<String>>(11)?,
                            r.get::<_, Option<i64>>(12)?,
                        ) {
                            (Some(by), Some(at)) => Some((by, Time90k(at))),
                            _ => None,
                        },
                        label: r.get(13)?,
                        // Written only by this crate; anything else reads as absent.
                        bbox: r
                            .get::<_, Option<String>>(14)?
                            .and_then(|b| serde_json::from_str(&b).ok()),
                        zones: r
                            .get::<_, Option<String>>(15)?
                            .and_then(|z| serde_json::from_str(&z).ok())
                            .unwrap_or_default(),
                    })
                },
            )
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| StorageError::db("listing events", e))?;
        Ok(rows)
    }

    /// Records the start of a detected event with its score and zone in
    /// one statement (one commit): the alarm must not wait for two. The
    /// snapshot follows with [`Store::save_snapshot`].
    pub fn start_detected_event(
        &self,
        camera_id: i64,
        kind: &str,
        source: &str,
        start: Time90k,
        score: f64,
        zone: Option<&str>,
    ) -> Result<i64, StorageError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO event (camera_id, kind, source, start_90k, score, zone) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![camera_id, kind, source, start.0, score, zone],
        )
        .map_err(|e| StorageError::db("recording an event", e))?;
        Ok(conn.last_insert_rowid())
    }

    /// Records the start of an object event (one commit, as
    /// [`Store::start_detected_event`]).
    pub fn start_object_event(
        &self,
        camera_id: i64,
        start: Time90k,
        object: &ObjectResult<'_>,
    ) -> Result<i64, StorageError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO event (camera_id, kind, source, start_90k, score, zone, label, bbox, zones) \
             VALUES (?1, 'object', 'object', ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                camera_id,
                start.0,
                object.score,
                object.zones.first(),
                object.label,
                box_json(object.bbox),
                zones_json(object.zones)
            ],
        )
        .map_err(|e| StorageError::db("recording an event", e))?;
        Ok(conn.last_insert_rowid())
    }

    /// An object event's best score and box so far, and the zones entered.
    pub fn set_object_result(
        &self,
        id: i64,
        object: &ObjectResult<'_>,
    ) -> Result<(), StorageError> {
        self.conn()
            .execute(
                "UPDATE event SET score = ?2, zone = COALESCE(zone, ?3), bbox = ?4, zones = ?5 WHERE id = ?1",
                params![
                    id,
                    object.score,
                    object.zones.first(),
                    box_json(object.bbox),
                    zones_json(object.zones)
                ],
            )
            .map_err(|e| StorageError::db("updating an event", e))?;
        Ok(())
    }

    /// Records the detector's verdict on an event: peak score and zone.
    pub fn set_event_result(
        &self,
        id: i64,
        score: f64,
        zone: Option<&str>,
    ) -> Result<(), StorageError> {
        self.conn()
            .execute(
                "UPDATE event SET score = ?1, zone = COALESCE(?2, zone) WHERE id = ?3",
                params![score, zone, id],
            )
            .map_err(|e| StorageError::db("updating an event", e))?;
        Ok(())
    }

    fn snapshot_path(&self, camera_id: i64, id: i64, which: Snapshot) -> std::path::PathBuf {
        self.dir()
            .join("snapshots")
            .join(camera_id.to_string())
            .join(match which {
                Snapshot::Full => format!("{id}.jpg"),
                Snapshot::Thumbnail => format!("{id}.thumb.jpg"),
                Snapshot::Clean => format!("{id}.clean.jpg"),
            })
    }

    /// Stores (or replaces) an event's snapshot and thumbnail, and for an
    /// object event the picture without its box drawn. Each file is
    /// written whole under a temporary name and renamed, so a reader never
    /// sees half a JPEG.
    pub fn save_snapshot(
        &self,
        camera_id: i64,
        id: i64,
        jpeg: &[u8],
        thumb: &[u8],
    ) -> Result<(), StorageError> {
        self.save_snapshots(camera_id, id, jpeg, thumb, None)
    }

    /// [`Store::save_snapshot`] with a clean picture beside the marked one.
    pub fn save_snapshots(
        &self,
        camera_id: i64,
        id: i64,
        jpeg: &[u8],
        thumb: &[u8],
        clean: Option<&[u8]>,
    ) -> Result<(), StorageError> {
        self.write_snapshot_files(camera_id, id, jpeg, thumb, clean)?;
        self.conn()
            .execute("UPDATE event SET snapshot = 1 WHERE id = ?1", [id])
            .map_err(|e| StorageError::db("recording a snapshot", e))?;
        Ok(())
    }

    fn write_snapshot_files(
        &self,
        camera_id: i64,
        id: i64,
        jpeg: &[u8],
        thumb: &[u8],
        clean: Option<&[u8]>,
    ) -> Result<(), StorageError> {
        let files = [
            (Some(jpeg), Snapshot::Full),
            (Some(thumb), Snapshot::Thumbnail),
            (clean, Snapshot::Clean),
        ];
        for (data, which) in files {
            let path = self.snapshot_path(camera_id, id, which);
            let Some(data) = data else {
                // No clean picture: none left from an earlier event of this id.
                let _ = std::fs::remove_file(&path);
                continue;
            };
            let what = || format!("writing snapshot {}", path.display());
            if let Some(d) = path.parent() {
                std::fs::create_dir_all(d).map_err(|e| StorageError::io(what(), e))?;
            }
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, data).map_err(|e| StorageError::io(what(), e))?;
            std::fs::rename(&tmp, &path).map_err(|e| StorageError::io(what(), e))?;
        }
        Ok(())
    }

    /// An event's snapshot (or thumbnail, or clean picture) JPEG, if it has one.
    pub fn snapshot(&self, id: i64, which: Snapshot) -> Result<Option<Vec<u8>>, StorageError> {
        let camera_id: Option<i64> = self
            .conn()
            .query_row(
                "SELECT camera_id FROM event WHERE id = ?1 AND snapshot = 1",
                [id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| StorageError::db("reading an event", e))?;
        let Some(camera_id) = camera_id else {
            return Ok(None);
        };
        match std::fs::read(self.snapshot_path(camera_id, id, which)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io("reading a snapshot", e)),
        }
    }

    /// Records an acknowledgement from the cloud app. The first one counts:
    /// a repeated message (after a reconnect) changes nothing. Returns false
    /// for an unknown event.
    pub fn ack_event(&self, id: i64, by: &str, at: Time90k) -> Result<bool, StorageError> {
        let n = self
            .conn()
            .execute(
                "UPDATE event SET acked_by = COALESCE(acked_by, ?2), \
                 acked_at_90k = COALESCE(acked_at_90k, ?3) WHERE id = ?1",
                params![id, by, at.0],
            )
            .map_err(|e| StorageError::db("recording an acknowledgement", e))?;
        Ok(n > 0)
    }

    pub fn event(&self, id: i64) -> Result<Option<Event>, StorageError> {
        Ok(self
            .events(&EventFilter {
                id: Some(id),
                ..Default::default()
            })?
            .pop())
    }
}

/// What an object event says of its object.
#[derive(Clone, Copy, Debug)]
pub struct ObjectResult<'a> {
    pub label: &'a str,
    pub score: f64,
    pub bbox: [f32; 4],
    pub zones: &'a [String],
}

fn box_json(b: [f32; 4]) -> String {
    // Four decimals: a tenth of a pixel at 4K, and no float noise.
    let r = |v: f32| (f64::from(v) * 10_000.0).round() / 10_000.0;
    serde_json::to_string(&[r(b[0]), r(b[1]), r(b[2]), r(b[3])]).unwrap_or_default()
}

fn zones_json(z: &[String]) -> String {
    serde_json::to_string(z).unwrap_or_else(|_| "[]".into())
}

impl From<&Event> for candor_wire::Event {
    fn from(e: &Event) -> candor_wire::Event {
        candor_wire::Event {
            id: e.id,
            camera: e.camera.clone(),
            kind: e.kind.clone(),
            source: e.source.clone(),
            start: e.start.to_string(),
            end: e.end.map(|t| t.to_string()),
            score: e.score,
            zone: e.zone.clone(),
            detail: e.detail.clone(),
            snapshot: e.snapshot,
            pinned: e.pinned,
            acked_by: e.acked.as_ref().map(|a| a.0.clone()),
            acked_at: e.acked.as_ref().map(|a| a.1.to_string()),
            label: e.label.clone(),
            bbox: e
                .bbox
                .map(|b| b.map(|v| (f64::from(v) * 10_000.0).round() / 10_000.0)),
            zones: e.zones.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_start_end_list_and_close() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let gate = store.ensure_camera("gate").unwrap();
        let yard = store.ensure_camera("yard").unwrap();
        let a = store
            .start_event(gate, "motion", "onvif", Time90k(1000), None)
            .unwrap();
        let b = store
            .start_event(yard, "input", "onvif", Time90k(2000), Some("InputToken=1"))
            .unwrap();
        store.end_event(a, Time90k(5000)).unwrap();
        store.end_event(a, Time90k(9000)).unwrap(); // ended once: kept
        let all = store.events(&EventFilter::default()).unwrap();
        assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), [b, a]);
        assert_eq!(all[1].end, Some(Time90k(5000)));
        assert_eq!(all[0].end, None);
        let g = store
            .events(&EventFilter {
                camera_id: Some(gate),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(g.len(), 1);
        assert_eq!(
            store
                .events(&EventFilter {
                    since: Some(Time90k(6000)),
                    ..Default::default()
                })
                .unwrap()
                .len(),
            1
        );
        assert_eq!(store.close_open_events(Time90k(3000)).unwrap(), 1);
        assert_eq!(store.snapshot(a, Snapshot::Full).unwrap(), None);
        store.save_snapshot(gate, a, b"full", b"small").unwrap();
        store.set_event_result(a, 0.25, Some("door")).unwrap();
        assert_eq!(
            store.snapshot(a, Snapshot::Full).unwrap().as_deref(),
            Some(&b"full"[..])
        );
        assert_eq!(
            store.snapshot(a, Snapshot::Thumbnail).unwrap().as_deref(),
            Some(&b"small"[..])
        );
        assert_eq!(store.snapshot(a, Snapshot::Clean).unwrap(), None);
        let ea = store.event(a).unwrap().unwrap();
        assert!(ea.snapshot);
        assert_eq!((ea.score, ea.zone.as_deref()), (Some(0.25), Some("door")));
        assert_eq!(store.event(b).unwrap().unwrap().end, Some(Time90k(3000)));
        assert_eq!(store.event(a + b + 100).unwrap(), None);
    }

    /// Events whose own span ended before their camera's oldest footage go,
    /// with their pictures; pinned, ongoing and later ones stay, and so do
    /// a camera's events while it has no footage at all.
    #[test]
    fn pruning_forgets_only_unpinned_events_older_than_the_footage() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let gate = store.ensure_camera("gate").unwrap();
        let yard = store.ensure_camera("yard").unwrap();
        {
            let conn = store.conn();
            conn.execute(
                "INSERT INTO sample_entry (id, codec, width, height, data) VALUES (1, 'avc1', 1, 1, x'00')",
                [],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO segment (camera_id, state, run_start, start_90k, wall_duration_90k, file_len, \
                 sample_entry_id) VALUES (?1, 1, 0, 10000, 100, 1, 1)",
                [gate],
            )
            .unwrap();
        }
        let event = |cam, start, end: Option<i64>| {
            let id = store
                .start_event(cam, "motion", "motion", Time90k(start), None)
                .unwrap();
            if let Some(end) = end {
                store.end_event(id, Time90k(end)).unwrap();
            }
            store.save_snapshot(cam, id, b"full", b"small").unwrap();
            id
        };
        let old = event(gate, 1000, Some(9999));
        let pinned = event(gate, 1000, Some(2000));
        assert!(store.set_event_pinned(pinned, Some((0, 0))).unwrap());
        let ongoing = event(gate, 1000, None);
        let touching = event(gate, 1000, Some(10000));
        let no_footage = event(yard, 1000, Some(2000));
        let old_files =
            [Snapshot::Full, Snapshot::Thumbnail].map(|w| store.snapshot_path(gate, old, w));
        assert!(old_files.iter().all(|f| f.exists()));

        assert_eq!(store.prune_events().unwrap(), 1);
        assert_eq!(store.event(old).unwrap(), None);
        assert!(old_files.iter().all(|f| !f.exists()), "{old_files:?}");
        for id in [pinned, ongoing, touching, no_footage] {
            let e = store.event(id).unwrap().unwrap();
            assert!(e.snapshot, "{id}");
            assert_eq!(
                store.snapshot(id, Snapshot::Full).unwrap().as_deref(),
                Some(&b"full"[..])
            );
        }
        assert_eq!(store.prune_events().unwrap(), 0);
        // Unpinned, the old pinned event goes on the next pass.
        assert!(store.set_event_pinned(pinned, None).unwrap());
        assert_eq!(store.prune_events().unwrap(), 1);
        assert_eq!(store.event(pinned).unwrap(), None);
        assert!(
            !store.set_event_pinned(pinned, Some((0, 0))).unwrap(),
            "a pruned event can't be pinned"
        );
    }

    #[test]
    fn object_events_keep_label_box_zones_and_a_clean_picture() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let gate = store.ensure_camera("gate").unwrap();
        let m = store
            .start_detected_event(gate, "motion", "motion", Time90k(10), 0.1, None)
            .unwrap();
        let zones = vec!["drive".to_owned()];
        let o = store
            .start_object_event(
                gate,
                Time90k(20),
                &ObjectResult {
                    label: "person",
                    score: 0.8,
                    bbox: [0.1, 0.2, 0.05, 0.3],
                    zones: &[],
                },
            )
            .unwrap();
        store
            .set_object_result(
                o,
                &ObjectResult {
                    label: "person",
                    score: 0.9,
                    bbox: [0.123_456_7, 0.2, 0.05, 0.3],
                    zones: &zones,
                },
            )
            .unwrap();
        store
            .save_snapshots(gate, o, b"marked", b"thumb", Some(b"clean"))
            .unwrap();
        let e = store.event(o).unwrap().unwrap();
        assert_eq!(
            (e.kind.as_str(), e.label.as_deref(), e.score),
            ("object", Some("person"), Some(0.9))
        );
        assert_eq!(e.bbox, Some([0.1235, 0.2, 0.05, 0.3]));
        assert_eq!((e.zones.clone(), e.zone.as_deref()), (zones, Some("drive")));
        assert_eq!(
            store.snapshot(o, Snapshot::Clean).unwrap().as_deref(),
            Some(&b"clean"[..])
        );
        // The label filter finds it and not the motion event.
        let f = |label: &str| {
            store
                .events(&EventFilter {
                    label: Some(label.into()),
                    ..Default::default()
                })
                .unwrap()
                .iter()
                .map(|e| e.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(f("person"), [o]);
        assert!(f("car").is_empty());
        let me = store.event(m).unwrap().unwrap();
        assert_eq!((me.label, me.bbox, me.zones.len()), (None, None, 0));
        // The API and MQTT shape carries the box.
        let w = candor_wire::Event::from(&e);
        assert_eq!(w.bbox, Some([0.1235, 0.2, 0.05, 0.3]));
    }
}
