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
}

#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub camera_id: Option<i64>,
    pub since: Option<Time90k>,
    pub limit: Option<u32>,
}

impl Store {
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
                "SELECT e.id, c.name, e.kind, e.source, e.start_90k, e.end_90k, e.zone, e.score, e.detail, e.pinned \
                 FROM event e JOIN camera c ON c.id = e.camera_id \
                 WHERE (?1 IS NULL OR e.camera_id = ?1) AND (?2 IS NULL OR e.end_90k IS NULL OR e.end_90k >= ?2) \
                 ORDER BY e.start_90k DESC, e.id DESC LIMIT ?3",
            )
            .map_err(|e| StorageError::db("listing events", e))?;
        let limit = i64::from(f.limit.unwrap_or(1000).min(100_000));
        let rows = stmt
            .query_map(params![f.camera_id, f.since.map(|t| t.0), limit], |r| {
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
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| StorageError::db("listing events", e))?;
        Ok(rows)
    }

    pub fn event(&self, id: i64) -> Result<Option<Event>, StorageError> {
        let camera_id: Option<i64> = self
            .conn()
            .query_row("SELECT camera_id FROM event WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| StorageError::db("reading an event", e))?;
        let Some(camera_id) = camera_id else {
            return Ok(None);
        };
        Ok(self
            .events(&EventFilter {
                camera_id: Some(camera_id),
                limit: Some(100_000),
                ..Default::default()
            })?
            .into_iter()
            .find(|e| e.id == id))
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
        assert_eq!(store.event(b).unwrap().unwrap().end, Some(Time90k(3000)));
    }
}
