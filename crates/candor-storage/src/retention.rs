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

/// Bytes of all footage, per camera and in total, open segments included:
/// what the budgets are checked against, whether or not a pass walked the
/// segments they come from.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    pub cameras: HashMap<i64, u64>,
    pub total: u64,
}

impl Totals {
    pub fn of(segs: &[Candidate]) -> Totals {
        let mut t = Totals::default();
        for s in segs {
            t.add(s.camera_id, s.bytes);
        }
        t
    }

    pub fn add(&mut self, camera_id: i64, bytes: u64) {
        let c = self.cameras.entry(camera_id).or_default();
        *c = c.saturating_add(bytes);
        self.total = self.total.saturating_add(bytes);
    }
}

/// A plan over the oldest segments.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub delete: Vec<(i64, Reason)>,
    /// A byte or free-space budget is still exceeded after every deletable
    /// segment given: a longer walk may find more.
    pub more: bool,
}

/// The start time from which no age or record-by-event rule can delete a
/// segment (its end is at least its start): a walk from the oldest segment
/// must reach it, and need go no further for those rules.
pub fn horizon(limits: &Limits, now_90k: i64) -> i64 {
    limits
        .cameras
        .values()
        .filter_map(|l| {
            let age = [l.max_age_90k, l.event_max_age_90k]
                .into_iter()
                .flatten()
                .min()
                .map(|a| now_90k.saturating_sub(a));
            let no_event = l.events_only.then(|| {
                now_90k
                    .saturating_sub(l.pre_capture_90k)
                    .saturating_sub(EVENTS_ONLY_MARGIN_90K)
            });
            age.max(no_event)
        })
        .max()
        .unwrap_or(i64::MIN)
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
    plan_oldest(
        segs,
        &Totals::of(segs),
        true,
        limits,
        now_90k,
        free,
        min_free,
    )
    .delete
}

/// [`plan`] over the oldest segments only: `segs` are all segments that
/// start before [`horizon`] (and maybe more), oldest first, `totals` count
/// all footage, and `whole` says whether `segs` is all of it. When the
/// result's `more` is false its deletions are exactly what [`plan`] would
/// choose given every segment (`plan_of_the_oldest_equals_the_plan_of_all`).
pub fn plan_oldest(
    segs: &[Candidate],
    totals: &Totals,
    whole: bool,
    limits: &Limits,
    now_90k: i64,
    free: u64,
    min_free: u64,
) -> Plan {
    struct State {
        out: Vec<(i64, Reason)>,
        cam_bytes: HashMap<i64, u64>,
        total: u64,
        free: u64,
    }
    impl State {
        fn delete(&mut self, s: &Candidate, r: Reason) {
            self.out.push((s.id, r));
            let c = self.cam_bytes.entry(s.camera_id).or_default();
            *c = c.saturating_sub(s.bytes);
            self.total = self.total.saturating_sub(s.bytes);
            self.free = self.free.saturating_add(s.bytes);
        }
    }
    let mut st = State {
        out: Vec::new(),
        cam_bytes: totals.cameras.clone(),
        total: totals.total,
        free,
    };
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
            && st.cam_bytes.get(&s.camera_id).copied().unwrap_or(0) > max
        {
            st.delete(s, Reason::CameraBytes);
        }
    }
    let camera_over = limits.cameras.iter().any(|(cam, l)| {
        l.max_bytes
            .is_some_and(|m| st.cam_bytes.get(cam).copied().unwrap_or(0) > m)
    });
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
    let over = limits.max_bytes.is_some_and(|m| st.total > m) || st.free < min_free;
    Plan {
        delete: st.out,
        more: !whole && (camera_over || over),
    }
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
/// event's window is [start − pre, end + post], open-ended while it goes on;
/// pre and post are the camera's, or a pin's own.
fn event_reach(
    windows: Vec<crate::events::EventWindow>,
    limits: &Limits,
) -> HashMap<i64, (Reach, Reach)> {
    // Per camera: every window, and the pinned ones.
    type Spans = Vec<(i64, i64)>;
    let mut by_cam: HashMap<i64, (Spans, Spans)> = HashMap::new();
    for w in windows {
        // A pin holds the window it was made with; other events follow the
        // camera's settings.
        let (pre, post) = w.pin_capture_90k.unwrap_or_else(|| {
            limits
                .cameras
                .get(&w.camera_id)
                .map_or((0, 0), |l| (l.pre_capture_90k, l.post_capture_90k))
        });
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

/// How many of the oldest segments a pass walks at least, and the factor
/// it walks further by when a budget needs more (see [`plan_oldest`]).
const FIRST_WALK: usize = 1024;
const WALK_GROWTH: usize = 16;

fn run_inner(
    store: &Store,
    limits: &Limits,
    now_90k: i64,
    emergency: bool,
) -> Result<Report, StorageError> {
    // What the budgets count: a few rows kept by triggers, and the open
    // segments' sizes from their files (one a camera), read after the
    // index lock is released.
    let (closed, open) = db::footage_totals(&store.conn())?;
    let mut totals = Totals::default();
    for (cam, bytes) in closed {
        totals.add(cam, bytes);
    }
    let open_bytes: HashMap<i64, u64> = open
        .into_iter()
        .map(|(id, cam)| {
            let len = std::fs::metadata(store.segment_path(cam, id)).map_or(0, |m| m.len());
            totals.add(cam, len);
            (id, len)
        })
        .collect();
    let (free, size) = disk_space(store)?;
    let extra = if emergency {
        (size / 20).max(1 << 20)
    } else {
        0
    };
    let min_free = limits.min_free.unwrap_or((1u64 << 30).min(size / 10)) + extra;
    // Only the oldest footage, from the covering index (db::all_places):
    // everything an age rule can reach, and as much more as the byte
    // budgets need. This pass runs every 10 s; a walk of all footage (a
    // month of 64 cameras is 2.8 M segments) cost seconds of CPU each time.
    let horizon = horizon(limits, now_90k);
    let mut want = FIRST_WALK;
    let (segs, plan) = loop {
        let mut segs = Vec::new();
        let mut whole = true;
        db::places_from_oldest(&store.conn(), |r| {
            if segs.len() >= want && r.start_90k >= horizon {
                whole = false;
                return false;
            }
            let end_90k = if r.open {
                i64::MAX
            } else {
                r.start_90k.saturating_add(r.wall_duration_90k.unwrap_or(0))
            };
            let bytes = match r.file_len {
                Some(l) if !r.open => l.max(0) as u64,
                _ => open_bytes.get(&r.id).copied().unwrap_or(0),
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
            true
        })?;
        // Only the events that can reach the walked segments: starting
        // before the last one ends, plus the longest pre-capture; and every
        // pinned one (few), whose own pre-capture may be longer than any
        // camera's now. A pin made after this read is caught by
        // `delete_planned`, not here.
        let max_pre = limits
            .cameras
            .values()
            .map(|l| l.pre_capture_90k.max(0))
            .max()
            .unwrap_or(0);
        let reach_to = segs
            .iter()
            .map(|s| s.end_90k)
            .max()
            .unwrap_or(i64::MIN)
            .saturating_add(max_pre);
        let mut windows = store.event_windows_before(reach_to)?;
        windows.extend(
            crate::events::pinned_event_windows(&store.conn())?
                .into_iter()
                .filter(|w| w.start_90k >= reach_to),
        );
        let reach = event_reach(windows, limits);
        for s in &mut segs {
            if let Some((all, pinned)) = reach.get(&s.camera_id) {
                s.in_event = all.overlaps(s.start_90k, s.end_90k);
                s.deletable &= !pinned.overlaps(s.start_90k, s.end_90k);
            }
        }
        let plan = plan_oldest(&segs, &totals, whole, limits, now_90k, free, min_free);
        if plan.more {
            // From what this walk reached (past the horizon it may be far
            // more than `want`), so that a long prefix is not walked again
            // and again.
            want = want.max(segs.len()).saturating_mul(WALK_GROWTH);
            continue;
        }
        break (segs, plan.delete);
    };
    let mut report = Report::default();
    if plan.is_empty() {
        if free < min_free {
            warn!(
                "disk free {free} B is below the reserve {min_free} B and nothing more can be deleted (open or pinned footage only)"
            );
        }
        return Ok(report);
    }
    delete_planned(store, limits, &plan, &segs, &mut report)?;
    match store.prune_events() {
        Ok(0) => {}
        Ok(n) => info!("forgot {n} event(s) whose footage is gone"),
        Err(e) => warn!("pruning events: {e}"),
    }
    info!(deleted = report.deleted, bytes = report.bytes, reasons = ?report.by_reason, "retention freed space");
    Ok(report)
}

/// Deletes what a pass planned, rows in one transaction, then files.
/// `segs` holds every planned segment.
///
/// The walk read the pins before planning, so a pin made since then (an
/// operator pinning an event, or a segment) would be lost if the plan were
/// trusted as it stands. The transaction takes the write lock first, reads
/// the pinned events again under it, and skips whatever they hold; a
/// segment's own pin is checked by the DELETE. A pin made after the commit
/// comes after the deletion and finds the footage already gone.
fn delete_planned(
    store: &Store,
    limits: &Limits,
    plan: &[(i64, Reason)],
    segs: &[Candidate],
    report: &mut Report,
) -> Result<(), StorageError> {
    let planned: std::collections::HashSet<i64> = plan.iter().map(|(id, _)| *id).collect();
    let by_id: HashMap<i64, &Candidate> = segs
        .iter()
        .filter(|s| planned.contains(&s.id))
        .map(|s| (s.id, s))
        .collect();
    let mut deleted = Vec::with_capacity(plan.len());
    {
        let mut conn = store.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| StorageError::db("retention transaction", e))?;
        let pinned = event_reach(crate::events::pinned_event_windows(&tx)?, limits);
        for (id, reason) in plan {
            let Some(s) = by_id.get(id) else {
                warn!("retention planned segment {id}, which it never walked; skipped");
                continue;
            };
            if pinned
                .get(&s.camera_id)
                .is_some_and(|(_, p)| p.overlaps(s.start_90k, s.end_90k))
            {
                continue;
            }
            let n = tx
                .execute(
                    "DELETE FROM segment WHERE id = ?1 AND state = 1 AND pinned = 0",
                    [id],
                )
                .map_err(|e| StorageError::db("deleting segment", e))?;
            // Only the rows the DELETE removed lose their files.
            if n == 1 {
                deleted.push((*s, *reason));
            }
        }
        tx.commit()
            .map_err(|e| StorageError::db("committing retention", e))?;
    }
    for (s, reason) in deleted {
        let path = store.segment_path(s.camera_id, s.id);
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            warn!("can't remove {}: {e} (recovery will retry)", path.display());
        }
        report.deleted += 1;
        report.bytes += s.bytes;
        *report.by_reason.entry(reason_str(reason)).or_default() += 1;
    }
    Ok(())
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
                    let pinned = next(3) == 0;
                    EventWindow {
                        camera_id: next(3),
                        start_90k: start,
                        end_90k: (next(5) != 0).then(|| start + next(100)),
                        pinned,
                        pin_capture_90k: (pinned && next(2) == 0).then(|| (next(60), next(60))),
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
                let (mut in_event, mut pinned) = (false, false);
                for w in windows.iter().filter(|w| w.camera_id == cam) {
                    let (pre, post) = w.pin_capture_90k.unwrap_or_else(|| {
                        limits
                            .cameras
                            .get(&cam)
                            .map_or((0, 0), |l| (l.pre_capture_90k, l.post_capture_90k))
                    });
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

    /// A pass walks only the oldest segments: every one that starts before
    /// the horizon, then more while a budget asks. On random footage,
    /// limits and disks, whenever the walk of a prefix says it needs no
    /// more, its plan is the plan of all segments; and the walk of all
    /// never asks for more.
    #[test]
    fn plan_of_the_oldest_equals_the_plan_of_all() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        let (mut stopped_early, mut asked_more, mut no_event) = (0, 0, 0);
        // Times in units of 10,000 ticks, so that the events-only margin
        // (900,000 ticks) is 90 units of a 1,000-unit span.
        const U: i64 = 10_000;
        for _ in 0..3_000 {
            let now = 1_000 * U;
            let mut segs: Vec<Candidate> = (0..next(40))
                .map(|i| {
                    let start = next(1_000) as i64 * U;
                    Candidate {
                        id: i as i64,
                        camera_id: next(3) as i64,
                        start_90k: start,
                        end_90k: if next(15) == 0 {
                            i64::MAX
                        } else {
                            start + next(60) as i64 * U
                        },
                        bytes: next(100),
                        deletable: next(6) != 0,
                        in_event: next(4) == 0,
                    }
                })
                .collect();
            segs.sort_by_key(|s| (s.start_90k, s.id));
            let mut limits = Limits::default();
            for cam in 0..3 {
                if next(4) == 0 {
                    continue;
                }
                let opt = |v: i64, n: &mut dyn FnMut(u64) -> u64| (n(2) == 0).then_some(v);
                limits.cameras.insert(
                    cam,
                    CameraLimits {
                        max_age_90k: opt(next(1_200) as i64 * U, &mut next),
                        max_bytes: opt(next(2_000) as i64, &mut next).map(|v| v as u64),
                        event_max_age_90k: opt(next(1_200) as i64 * U, &mut next),
                        events_only: next(4) == 0,
                        pre_capture_90k: next(50) as i64 * U,
                        post_capture_90k: next(50) as i64 * U,
                    },
                );
            }
            if next(2) == 0 {
                limits.max_bytes = Some(next(3_000));
            }
            let (free, min_free) = (next(500), next(600));
            let all = plan(&segs, &limits, now, free, min_free);
            let totals = Totals::of(&segs);
            let whole = plan_oldest(&segs, &totals, true, &limits, now, free, min_free);
            assert_eq!((&whole.delete, whole.more), (&all, false));
            no_event += all.iter().filter(|(_, r)| *r == Reason::NoEvent).count();
            let h = horizon(&limits, now);
            let reach = segs.iter().take_while(|s| s.start_90k < h).count();
            for k in reach..segs.len() {
                let p = plan_oldest(&segs[..k], &totals, false, &limits, now, free, min_free);
                if p.more {
                    asked_more += 1;
                } else {
                    stopped_early += 1;
                    assert_eq!(p.delete, all, "prefix of {k} of {segs:?}, {limits:?}");
                }
            }
        }
        // Both ways were taken, many times.
        assert!(
            stopped_early > 1_000 && asked_more > 1_000 && no_event > 1_000,
            "{stopped_early} {asked_more} {no_event}"
        );
    }

    /// A pass against a real index, walking further than its first 1,024
    /// segments for a byte budget: it deletes what a plan over every
    /// segment chooses, and no more.
    #[test]
    fn a_pass_deletes_what_the_plan_of_all_footage_chooses() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let (a, b) = (
            store.ensure_camera("a").unwrap(),
            store.ensure_camera("b").unwrap(),
        );
        closed_segments(
            &store,
            (0..6_000i64).map(|i| {
                (
                    if i % 3 == 0 { b } else { a },
                    i * 100,
                    1_000 + i % 7,
                    i % 97 == 5,
                )
            }),
        );
        let all = || {
            let mut segs = Vec::new();
            db::all_places(&store.conn(), |r| {
                segs.push(Candidate {
                    id: r.id,
                    camera_id: r.camera_id,
                    start_90k: r.start_90k,
                    end_90k: r.start_90k + 100,
                    bytes: r.file_len.unwrap() as u64,
                    deletable: !r.pinned,
                    in_event: false,
                })
            })
            .unwrap();
            segs
        };
        let mut limits = Limits {
            min_free: Some(0),
            ..Default::default()
        };
        // Camera a over its budget by about 3,000 segments, then an age
        // limit on b and a total budget.
        limits.cameras.insert(
            a,
            CameraLimits {
                max_bytes: Some(1_000_000),
                ..Default::default()
            },
        );
        let now = 600_000;
        for round in 0..3 {
            if round == 1 {
                limits.cameras.insert(
                    b,
                    CameraLimits {
                        max_age_90k: Some(200_000),
                        ..Default::default()
                    },
                );
            }
            if round == 2 {
                limits.max_bytes = Some(1_200_000);
            }
            let before = all();
            let want = plan(&before, &limits, now, u64::MAX / 2, 0);
            assert!(
                want.len() > if round < 2 { 1_024 } else { 100 },
                "round {round}: {}",
                want.len()
            );
            let report = run_once(&store, &limits, now, false).unwrap();
            assert_eq!(report.deleted, want.len(), "round {round}");
            let gone: std::collections::HashSet<i64> = want.iter().map(|(id, _)| *id).collect();
            let left: Vec<i64> = all().iter().map(|s| s.id).collect();
            let want_left: Vec<i64> = before
                .iter()
                .map(|s| s.id)
                .filter(|id| !gone.contains(id))
                .collect();
            assert_eq!(left, want_left, "round {round}");
            let (totals, _) = db::footage_totals(&store.conn()).unwrap();
            assert_eq!(totals, Totals::of(&all()).cameras, "round {round}");
        }
    }

    /// Pins made after the walk planned a deletion hold: a segment pinned
    /// directly keeps its row, and so does one an event pinned since then
    /// covers (with the pre- and post-capture the pin was made with, on its
    /// own camera only). Only what the DELETE removed is unlinked and
    /// counted.
    #[test]
    fn pins_made_after_the_plan_hold_their_footage() {
        use candor_media::Time90k;
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let a = store.ensure_camera("a").unwrap();
        let b = store.ensure_camera("b").unwrap();
        // Segments 1–4 on a, 5–8 on b, each camera's at 0, 100, 200, 300.
        let cams = [a, a, a, a, b, b, b, b];
        closed_segments(
            &store,
            cams.iter()
                .zip(0..)
                .map(|(&c, i)| (c, (i % 4) * 100, 3, false)),
        );
        let segs: Vec<Candidate> = cams
            .iter()
            .zip(0..)
            .map(|(&c, i)| Candidate {
                end_90k: (i % 4) * 100 + 100,
                ..seg(i + 1, c, (i % 4) * 100, 3)
            })
            .collect();
        for s in &segs {
            let p = store.segment_path(s.camera_id, s.id);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"abc").unwrap();
        }
        // The plan, as the walk made it: all eight.
        let plan: Vec<(i64, Reason)> = segs.iter().map(|s| (s.id, Reason::Age)).collect();
        // Then, before the deletion: segment 2 pinned; on a, an event
        // starting inside segment 4 pinned, whose pre-capture reaches back
        // into segment 3 (and which must hold nothing of b's); on b, one
        // ending inside segment 5 whose post-capture reaches into 6.
        store
            .conn()
            .execute("UPDATE segment SET pinned = 1 WHERE id = 2", [])
            .unwrap();
        // Each pin keeps the window it was made with: a's pre-capture has
        // since been lowered to 0, and b is no longer configured.
        for (cam, start, end, capture) in [(a, 320, 330, (50, 0)), (b, 50, 90, (0, 20))] {
            let ev = store
                .start_event(cam, "motion", "test", Time90k(start), None)
                .unwrap();
            store.end_event(ev, Time90k(end)).unwrap();
            assert!(store.set_event_pinned(ev, Some(capture)).unwrap());
        }
        let mut limits = Limits::default();
        limits.cameras.insert(a, CameraLimits::default());
        let mut report = Report::default();
        delete_planned(&store, &limits, &plan, &segs, &mut report).unwrap();
        assert_eq!((report.deleted, report.bytes), (3, 9));
        let exists: Vec<bool> = segs
            .iter()
            .map(|s| store.segment_path(s.camera_id, s.id).exists())
            .collect();
        assert_eq!(exists, [false, true, true, true, true, true, false, false]);
        let mut left = Vec::new();
        db::all_places(&store.conn(), |r| left.push(r.id)).unwrap();
        left.sort();
        assert_eq!(left, [2, 3, 4, 5, 6]);
    }

    /// `check` compares the counts retention trusts with the rows, and
    /// says where they differ.
    #[test]
    fn check_finds_footage_totals_that_drifted() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let a = store.ensure_camera("a").unwrap();
        {
            let conn = store.conn();
            conn.execute(
                "INSERT INTO sample_entry (id, codec, width, height, data) VALUES (1, 'avc1', 1, 1, x'00')",
                [],
            )
            .unwrap();
            // An open row with no file yet: consistent, and counted.
            conn.execute(
                "INSERT INTO segment (camera_id, state, run_start, start_90k, sample_entry_id) VALUES (?1, 0, 1, 0, 1)",
                [a],
            )
            .unwrap();
        }
        assert_eq!(store.check().unwrap(), Vec::<String>::new());
        store
            .conn()
            .execute(
                "UPDATE segment_usage SET bytes = 10 WHERE camera_id = ?1",
                [a],
            )
            .unwrap();
        let problems = store.check().unwrap();
        assert_eq!(
            problems,
            [format!(
                "footage totals: camera {a}: segment_usage says 1 segments of 10 bytes, the rows say 1 segments of 0 bytes"
            )]
        );
        // A camera the rows no longer have, and values of the wrong type,
        // are reported as what they are; an empty camera's 0/0 row is fine.
        store
            .conn()
            .execute_batch(
                "UPDATE segment_usage SET bytes = 0; INSERT INTO segment_usage VALUES (77, 'x', 0); \
                 INSERT INTO segment_usage VALUES (78, 0, x'30'); INSERT INTO segment_usage VALUES (79, 0, 0)",
            )
            .unwrap();
        assert_eq!(
            store.check().unwrap(),
            [
                "footage totals: camera 77: segment_usage says 'x' segments of 0 bytes, the rows say 0 segments of 0 bytes",
                "footage totals: camera 78: segment_usage says 0 segments of X'30' bytes, the rows say 0 segments of 0 bytes",
            ]
        );
        // A camera with rows and no usage row; and lengths whose sum
        // overflows a 64-bit integer, which the triggers hold as a float
        // (SQLite's arithmetic): consistent, and the check still runs.
        let b = store.ensure_camera("b").unwrap();
        store
            .conn()
            .execute(
                "INSERT INTO segment (camera_id, state, run_start, start_90k, wall_duration_90k, file_len, sample_entry_id) \
                 VALUES (?1, 1, 0, 0, 100, 9000000000000000000, 1), (?1, 1, 0, 100, 100, 9000000000000000000, 1)",
                [b],
            )
            .unwrap();
        store
            .conn()
            .execute("DELETE FROM segment_usage WHERE camera_id != ?1", [b])
            .unwrap();
        let mut problems = store.check().unwrap();
        // (Those rows have no files, which the check also says.)
        problems.retain(|p| p.starts_with("footage totals"));
        assert_eq!(
            problems,
            [format!(
                "footage totals: camera {a}: segment_usage says 0 segments of 0 bytes, the rows say 1 segments of 0 bytes"
            )]
        );
    }

    /// The events a pass reads end where its walk can be reached: those
    /// starting before the last walked segment's end plus the longest
    /// pre-capture. A pinned event that starts just after the first walk's
    /// last segment, and reaches back over it by its pre-capture, still
    /// holds that segment when a byte budget would take it.
    #[test]
    fn an_event_just_past_the_walk_still_pins_by_its_pre_capture() {
        // Pinned by an older build (the camera's pre-capture now holds), and
        // with its own window after the camera's was lowered to 0 (the walk
        // must read it although no camera's pre-capture reaches it).
        for own_window in [false, true] {
            pinned_just_past_the_walk(own_window);
        }
    }

    fn pinned_just_past_the_walk(own_window: bool) {
        use candor_media::Time90k;
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let a = store.ensure_camera("a").unwrap();
        closed_segments(&store, (0..3_000i64).map(|i| (a, i * 100, 1000, false)));
        let pre = 5_000;
        let last = FIRST_WALK as i64 - 1;
        // Starts one tick before the last walked segment's end plus the
        // pre-capture: its window reaches back into that segment.
        let start = (last + 1) * 100 + pre - 1;
        let ev = store
            .start_event(a, "motion", "test", Time90k(start), None)
            .unwrap();
        store.end_event(ev, Time90k(start + 50)).unwrap();
        if own_window {
            assert!(store.set_event_pinned(ev, Some((pre, 0))).unwrap());
        } else {
            store
                .conn()
                .execute("UPDATE event SET pinned = 1 WHERE id = ?1", [ev])
                .unwrap();
        }
        let mut limits = Limits {
            min_free: Some(0),
            ..Default::default()
        };
        // Over its budget by exactly the first walk's segments.
        limits.cameras.insert(
            a,
            CameraLimits {
                max_bytes: Some((3_000 - FIRST_WALK as u64) * 1_000),
                pre_capture_90k: if own_window { 0 } else { pre },
                ..Default::default()
            },
        );
        let report = run_once(&store, &limits, 400_000, false).unwrap();
        assert_eq!(report.deleted, FIRST_WALK, "own window: {own_window}");
        let mut left = Vec::new();
        db::all_places(&store.conn(), |r| left.push(r.start_90k / 100)).unwrap();
        // The pinned window, from its start less the pre-capture to its
        // end, covers segments `last` to `last + 51`: they stay, and the
        // budget's last segment is the one after them.
        let held: Vec<i64> = (last..=last + 51).collect();
        assert_eq!(&left[..52], &held[..], "{:?}", &left[..4]);
        assert_eq!(left[52], last + 53);
        assert_eq!(left.len(), 3_000 - FIRST_WALK);
    }

    /// Closed segments of 100 ticks each, as (camera, start, length,
    /// pinned), in one transaction, with the sample entry they name.
    fn closed_segments(store: &Store, rows: impl IntoIterator<Item = (i64, i64, i64, bool)>) {
        let mut conn = store.conn();
        let tx = conn.transaction().unwrap();
        tx.execute(
            "INSERT OR IGNORE INTO sample_entry (id, codec, width, height, data) VALUES (1, 'avc1', 1, 1, x'00')",
            [],
        )
        .unwrap();
        for (cam, start, len, pinned) in rows {
            tx.execute(
                "INSERT INTO segment (camera_id, state, run_start, start_90k, wall_duration_90k, file_len, \
                 sample_entry_id, pinned) VALUES (?1, 1, 0, ?2, 100, ?3, 1, ?4)",
                rusqlite::params![cam, start, len, pinned],
            )
            .unwrap();
        }
        tx.commit().unwrap();
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
