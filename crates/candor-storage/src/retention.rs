//! Retention: which segments to delete, and deleting them.
//!
//! [`plan`] is pure (tested exhaustively below); [`run_once`] gathers its
//! inputs and executes the plan. Oldest footage goes first; pinned and open
//! segments are never deleted. The row deletion commits before files are
//! unlinked, so a crash in between leaves only orphan files, which recovery
//! removes.

use crate::{StorageError, Store, db};
use std::collections::HashMap;
use tracing::{info, warn};

#[derive(Clone, Debug, Default)]
pub struct CameraLimits {
    pub max_age_90k: Option<i64>,
    pub max_bytes: Option<u64>,
    /// Footage around events (see [`Candidate::in_event`]) is kept this long
    /// instead of `max_age_90k`.
    pub event_max_age_90k: Option<i64>,
    /// Record by event: footage outside every event window is deleted once
    /// it ends more than `pre_capture_90k` (plus a margin) ago, since only
    /// an event starting later could still want it.
    pub events_only: bool,
    /// An event's window is [start − pre, end + post].
    pub pre_capture_90k: i64,
    pub post_capture_90k: i64,
}

/// Footage that ends more than this past the pre-capture is no longer
/// wanted by an event yet to come (detection lags motion by under 1 s).
pub const EVENTS_ONLY_MARGIN_90K: i64 = 10 * 90_000;

#[derive(Clone, Debug, Default)]
pub struct Limits {
    pub cameras: HashMap<i64, CameraLimits>,
    pub max_bytes: Option<u64>,
    /// Free space to keep on the filesystem. `None`: 1 GB, capped at 10% of the filesystem.
    pub min_free: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub id: i64,
    pub camera_id: i64,
    pub start_90k: i64,
    pub end_90k: i64,
    pub bytes: u64,
    pub deletable: bool,
    /// Overlaps an event's window (pre/post capture included).
    pub in_event: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    Age,
    /// Recording by event: not near any event.
    NoEvent,
    CameraBytes,
    TotalBytes,
    DiskFree,
}

/// Decides what to delete. `segs` must be sorted oldest first and include
/// undeletable ones (open, pinned) so that they count towards budgets.
pub fn plan(
    segs: &[Candidate],
    limits: &Limits,
    now_90k: i64,
    free: u64,
    min_free: u64,
) -> Vec<(i64, Reason)> {
    struct State {
        out: Vec<(i64, Reason)>,
        cam_bytes: HashMap<i64, u64>,
        total: u64,
        free: u64,
    }
    impl State {
        fn delete(&mut self, s: &Candidate, r: Reason) {
            self.out.push((s.id, r));
            *self.cam_bytes.get_mut(&s.camera_id).expect("counted") -= s.bytes;
            self.total -= s.bytes;
            self.free = self.free.saturating_add(s.bytes);
        }
    }
    let mut st = State {
        out: Vec::new(),
        cam_bytes: HashMap::new(),
        total: 0,
        free,
    };
    for s in segs {
        *st.cam_bytes.entry(s.camera_id).or_default() += s.bytes;
        st.total += s.bytes;
    }
    for s in segs.iter().filter(|s| s.deletable) {
        let lim = limits.cameras.get(&s.camera_id);
        let max_age = match lim {
            Some(l) if s.in_event => l.event_max_age_90k.or(l.max_age_90k),
            Some(l) => l.max_age_90k,
            None => None,
        };
        if let Some(l) = lim
            && l.events_only
            && !s.in_event
            && s.end_90k < now_90k - l.pre_capture_90k - EVENTS_ONLY_MARGIN_90K
        {
            st.delete(s, Reason::NoEvent);
        } else if let Some(age) = max_age
            && s.end_90k < now_90k - age
        {
            st.delete(s, Reason::Age);
        } else if let Some(max) = lim.and_then(|l| l.max_bytes)
            && st.cam_bytes[&s.camera_id] > max
        {
            st.delete(s, Reason::CameraBytes);
        }
    }
    // A set, not a search of the list: a first pass with a new, shorter
    // max_age can choose a month of segments at once.
    let chosen: std::collections::HashSet<i64> = st.out.iter().map(|(id, _)| *id).collect();
    for s in segs.iter().filter(|s| s.deletable) {
        if chosen.contains(&s.id) {
            continue;
        }
        if limits.max_bytes.is_some_and(|m| st.total > m) {
            st.delete(s, Reason::TotalBytes);
        } else if st.free < min_free {
            st.delete(s, Reason::DiskFree);
        } else {
            break;
        }
    }
    st.out
}

/// Event windows of one camera, sorted by start, with the running maximum
/// of their ends: whether a segment overlaps any of them is one binary
/// search, not a walk of every event (a month of motion events is tens of
/// thousands, against as many segments).
#[derive(Debug, Default)]
struct Reach {
    starts: Vec<i64>,
    max_end: Vec<i64>,
}

impl Reach {
    fn new(mut windows: Vec<(i64, i64)>) -> Reach {
        windows.sort_unstable();
        let mut max = i64::MIN;
        let (starts, max_end) = windows
            .into_iter()
            .map(|(s, e)| {
                max = max.max(e);
                (s, max)
            })
            .unzip();
        Reach { starts, max_end }
    }

    /// Whether some window `[s, e)` has `s < end` and `start < e`.
    fn overlaps(&self, start: i64, end: i64) -> bool {
        let k = self.starts.partition_point(|&s| s < end);
        k > 0 && self.max_end[k - 1] > start
    }
}

/// Per camera: all its events' windows, and its pinned events' windows. An
/// event's window is [start − pre, end + post], open-ended while it goes on.
fn event_reach(
    windows: Vec<crate::events::EventWindow>,
    limits: &Limits,
) -> HashMap<i64, (Reach, Reach)> {
    let mut by_cam: HashMap<i64, (Vec<(i64, i64)>, Vec<(i64, i64)>)> = HashMap::new();
    for w in windows {
        let (pre, post) = limits
            .cameras
            .get(&w.camera_id)
            .map_or((0, 0), |l| (l.pre_capture_90k, l.post_capture_90k));
        let span = (
            w.start_90k.saturating_sub(pre),
            w.end_90k.map_or(i64::MAX, |e| e.saturating_add(post)),
        );
        let e = by_cam.entry(w.camera_id).or_default();
        e.0.push(span);
        if w.pinned {
            e.1.push(span);
        }
    }
    by_cam
        .into_iter()
        .map(|(cam, (all, pinned))| (cam, (Reach::new(all), Reach::new(pinned))))
        .collect()
}

#[derive(Debug, Default, Clone)]
pub struct Report {
    pub deleted: usize,
    pub bytes: u64,
    pub by_reason: HashMap<&'static str, usize>,
}

pub fn disk_space(store: &Store) -> Result<(u64, u64), StorageError> {
    let st = rustix::fs::statvfs(store.dir()).map_err(|e| StorageError::io("statvfs", e.into()))?;
    Ok((st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize))
}

/// One retention pass. `emergency` (after a failed write: the disk filled up
/// although the reserve said otherwise, e.g. another program wrote to it)
/// raises the free-space target by 5% of the filesystem (at least 1 MiB).
pub fn run_once(
    store: &Store,
    limits: &Limits,
    now_90k: i64,
    emergency: bool,
) -> Result<Report, StorageError> {
    if emergency {
        // The disk is full: SQLite needs room to commit the deletions.
        store.release_ballast();
    }
    let r = run_inner(store, limits, now_90k, emergency);
    if emergency {
        store.ensure_ballast();
    }
    r
}

fn run_inner(
    store: &Store,
    limits: &Limits,
    now_90k: i64,
    emergency: bool,
) -> Result<Report, StorageError> {
    // Every segment, walked under the index lock from the covering index
    // (db::all_places) and kept as a 48-byte candidate: this pass runs
    // every 10 s over all footage, a month of it included.
    let mut segs = Vec::new();
    let mut to_stat = Vec::new();
    db::all_places(&store.conn(), |r| {
        let end_90k = if r.open {
            i64::MAX
        } else {
            r.start_90k.saturating_add(r.wall_duration_90k.unwrap_or(0))
        };
        let bytes = match r.file_len {
            Some(l) if !r.open => l as u64,
            _ => {
                to_stat.push(segs.len());
                0
            }
        };
        segs.push(Candidate {
            id: r.id,
            camera_id: r.camera_id,
            start_90k: r.start_90k,
            end_90k,
            bytes,
            deletable: !r.open && !r.pinned,
            in_event: false,
        });
    })?;
    // Events are read after the segments, so that an event pinned while
    // they were walked still protects its footage in this pass.
    let reach = event_reach(store.event_windows()?, limits);
    for s in &mut segs {
        if let Some((all, pinned)) = reach.get(&s.camera_id) {
            s.in_event = all.overlaps(s.start_90k, s.end_90k);
            s.deletable &= !pinned.overlaps(s.start_90k, s.end_90k);
        }
    }
    // Open segments' sizes are known only from their files, read after the
    // index lock is released (one a camera).
    for i in to_stat {
        let s = &mut segs[i];
        s.bytes = std::fs::metadata(store.segment_path(s.camera_id, s.id))
            .map(|m| m.len())
            .unwrap_or(0);
    }
    let (free, size) = disk_space(store)?;
    let extra = if emergency {
        (size / 20).max(1 << 20)
    } else {
        0
    };
    let min_free = limits.min_free.unwrap_or((1u64 << 30).min(size / 10)) + extra;
    let plan = plan(&segs, limits, now_90k, free, min_free);
    let mut report = Report::default();
    if plan.is_empty() {
        if free < min_free {
            warn!(
                "disk free {free} B is below the reserve {min_free} B and nothing more can be deleted (open or pinned footage only)"
            );
        }
        return Ok(report);
    }
    let planned: std::collections::HashSet<i64> = plan.iter().map(|(id, _)| *id).collect();
    let by_id: HashMap<i64, &Candidate> = segs
        .iter()
        .filter(|s| planned.contains(&s.id))
        .map(|s| (s.id, s))
        .collect();
    {
        let mut conn = store.conn();
        let tx = conn
            .transaction()
            .map_err(|e| StorageError::db("retention transaction", e))?;
        for (id, _) in &plan {
            tx.execute(
                "DELETE FROM segment WHERE id = ?1 AND state = 1 AND pinned = 0",
                [id],
            )
            .map_err(|e| StorageError::db("deleting segment", e))?;
        }
        tx.commit()
            .map_err(|e| StorageError::db("committing retention", e))?;
    }
    for (id, reason) in &plan {
        let s = by_id[id];
        let path = store.segment_path(s.camera_id, s.id);
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            warn!("can't remove {}: {e} (recovery will retry)", path.display());
        }
        report.deleted += 1;
        report.bytes += s.bytes;
        *report.by_reason.entry(reason_str(*reason)).or_default() += 1;
    }
    match store.prune_events() {
        Ok(0) => {}
        Ok(n) => info!("forgot {n} event(s) whose footage is gone"),
        Err(e) => warn!("pruning events: {e}"),
    }
    info!(deleted = report.deleted, bytes = report.bytes, reasons = ?report.by_reason, "retention freed space");
    Ok(report)
}

pub fn reason_str(r: Reason) -> &'static str {
    match r {
        Reason::Age => "max_age",
        Reason::NoEvent => "record = events",
        Reason::CameraBytes => "camera max_bytes",
        Reason::TotalBytes => "storage max_bytes",
        Reason::DiskFree => "min_free",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The binary search against the walk it replaced, on windows and
    /// segments drawn to collide: open and closed, overlapping, touching.
    #[test]
    fn event_reach_agrees_with_walking_every_window() {
        use crate::events::EventWindow;
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % m) as i64
        };
        for round in 0..200 {
            let windows: Vec<EventWindow> = (0..next(12))
                .map(|_| {
                    let start = next(1_000);
                    EventWindow {
                        camera_id: next(3),
                        start_90k: start,
                        end_90k: (next(5) != 0).then(|| start + next(100)),
                        pinned: next(3) == 0,
                    }
                })
                .collect();
            let mut limits = Limits::default();
            limits.cameras.insert(
                1,
                CameraLimits {
                    pre_capture_90k: round % 40,
                    post_capture_90k: round % 70,
                    ..Default::default()
                },
            );
            let reach = event_reach(windows.clone(), &limits);
            for _ in 0..50 {
                let (cam, start) = (next(3), next(1_200));
                let end = if next(6) == 0 {
                    i64::MAX
                } else {
                    start + next(150)
                };
                let (pre, post) = limits
                    .cameras
                    .get(&cam)
                    .map_or((0, 0), |l| (l.pre_capture_90k, l.post_capture_90k));
                let (mut in_event, mut pinned) = (false, false);
                for w in windows.iter().filter(|w| w.camera_id == cam) {
                    let (ws, we) = (w.start_90k - pre, w.end_90k.map_or(i64::MAX, |e| e + post));
                    if ws < end && start < we {
                        in_event = true;
                        pinned |= w.pinned;
                    }
                }
                let got = reach.get(&cam).map_or((false, false), |(a, p)| {
                    (a.overlaps(start, end), p.overlaps(start, end))
                });
                assert_eq!(
                    got,
                    (in_event, pinned),
                    "camera {cam} [{start}, {end}) {windows:?}"
                );
            }
        }
    }

    fn seg(id: i64, cam: i64, start: i64, bytes: u64) -> Candidate {
        Candidate {
            id,
            camera_id: cam,
            start_90k: start,
            end_90k: start + 10,
            bytes,
            deletable: true,
            in_event: false,
        }
    }

    #[test]
    fn deletes_oldest_first_until_under_total_budget() {
        let segs = [
            seg(1, 1, 0, 100),
            seg(2, 2, 10, 100),
            seg(3, 1, 20, 100),
            seg(4, 2, 30, 100),
        ];
        let limits = Limits {
            max_bytes: Some(250),
            ..Default::default()
        };
        assert_eq!(
            plan(&segs, &limits, 100, u64::MAX, 0),
            vec![(1, Reason::TotalBytes), (2, Reason::TotalBytes)]
        );
    }

    #[test]
    fn per_camera_age_and_size_apply_only_to_that_camera() {
        let segs = [
            seg(1, 1, 0, 100),
            seg(2, 2, 10, 100),
            seg(3, 1, 20, 100),
            seg(4, 1, 95, 100),
        ];
        let mut limits = Limits::default();
        limits.cameras.insert(
            1,
            CameraLimits {
                max_age_90k: Some(50),
                ..Default::default()
            },
        );
        limits.cameras.insert(
            2,
            CameraLimits {
                max_bytes: Some(1000),
                ..Default::default()
            },
        );
        assert_eq!(
            plan(&segs, &limits, 100, u64::MAX, 0),
            vec![(1, Reason::Age), (3, Reason::Age)]
        );
        limits.cameras.insert(
            1,
            CameraLimits {
                max_bytes: Some(150),
                ..Default::default()
            },
        );
        assert_eq!(
            plan(&segs, &limits, 100, u64::MAX, 0),
            vec![(1, Reason::CameraBytes), (3, Reason::CameraBytes)]
        );
    }

    #[test]
    fn disk_reserve_frees_space_but_never_touches_pinned_or_open() {
        let mut segs = [seg(1, 1, 0, 100), seg(2, 1, 10, 100), seg(3, 1, 20, 100)];
        segs[0].deletable = false; // pinned
        assert_eq!(
            plan(&segs, &Limits::default(), 100, 50, 200),
            vec![(2, Reason::DiskFree), (3, Reason::DiskFree)]
        );
        assert_eq!(plan(&segs, &Limits::default(), 100, 500, 200), vec![]);
    }

    #[test]
    fn event_footage_outlives_continuous_footage_and_events_only_drops_the_rest() {
        const S: i64 = 90_000;
        let mut segs: Vec<Candidate> = (0..6)
            .map(|i| {
                let mut c = seg(i + 1, 1, i * 60 * S, 100);
                c.end_90k = c.start_90k + 60 * S;
                c
            })
            .collect();
        segs[1].in_event = true;
        segs[4].in_event = true;
        let now = 8 * 60 * S;
        let mut limits = Limits::default();
        let cam = CameraLimits {
            max_age_90k: Some(3 * 60 * S),
            event_max_age_90k: Some(60 * 60 * S),
            pre_capture_90k: 5 * S,
            post_capture_90k: 5 * S,
            ..Default::default()
        };
        limits.cameras.insert(1, cam.clone());
        // Continuous: old footage goes by max_age, event footage stays.
        assert_eq!(
            plan(&segs, &limits, now, u64::MAX, 0),
            vec![(1, Reason::Age), (3, Reason::Age), (4, Reason::Age)]
        );
        // Events only: everything outside event windows goes as soon as no
        // future event's pre-capture can reach it; the newest segment stays.
        limits.cameras.insert(
            1,
            CameraLimits {
                events_only: true,
                max_age_90k: None,
                ..cam
            },
        );
        let now = 6 * 60 * S + 5 * S;
        assert_eq!(
            plan(&segs, &limits, now, u64::MAX, 0),
            vec![
                (1, Reason::NoEvent),
                (3, Reason::NoEvent),
                (4, Reason::NoEvent)
            ]
        );
        // Pinned (an event's pin makes the segment undeletable): kept whatever.
        segs[0].deletable = false;
        assert_eq!(
            plan(&segs, &limits, now, u64::MAX, 0)[0],
            (3, Reason::NoEvent)
        );
    }
}
