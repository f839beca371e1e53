//! Following objects across analysed frames, so that one person crossing
//! the scene is one event and a parked car is reported once.
//!
//! Detections are matched to tracks of their label greedily, best overlap
//! first: by IoU, or, for an object that moved further than its own size
//! between two looks, by centre distance. A track is *confirmed* (an event
//! starts) once seen in [`Settings::min_hits`] looks; it ends when it has
//! been missed where the model looked, or not seen at all for long. A
//! confirmed track whose box stays put for [`Settings::stationary_after_90k`]
//! becomes *stationary*: its event ends, and it raises nothing until it
//! moves again, which starts a new event.

use crate::{Detection, Label, iou};

/// Looks in a row that must miss a track (as well as `lost_after_90k`)
/// before it is gone.
pub const MISSES: u32 = 3;

/// Scores kept per track for its median.
pub const RECENT: usize = 10;

/// How much the best score must rise before it is announced again: a
/// snapshot costs a JPEG encoding, not worth it for every hundredth.
pub const BETTER: f32 = 0.05;

#[derive(Clone, Debug)]
pub struct Settings {
    /// Looks a track must be seen in before it is an event (one-frame
    /// false positives raise nothing) …
    pub min_hits: u32,
    /// … over at least this long: a person crossing is in view for
    /// seconds, a ghost in the leaves for a moment.
    pub min_seen_90k: i64,
    /// A moving track missed where the model looked this long ends.
    pub lost_after_90k: i64,
    /// A moving track not seen at all this long ends, looked at or not.
    pub forget_after_90k: i64,
    /// A box that stays within [`Settings::stationary_move`] this long is
    /// stationary.
    pub stationary_after_90k: i64,
    /// Movement that counts, as a fraction of the box's larger side.
    pub stationary_move: f32,
    /// Tracks per camera; a new one then displaces the one unseen longest.
    pub max_tracks: usize,
    /// Least IoU that matches a detection to a track.
    pub match_iou: f32,
    /// The median of a track's recent scores must reach this before it is
    /// an event (Frigate's `threshold`): a detection at the floor
    /// (`min_score`) may start a track, only a steady one confirms it.
    pub threshold: f32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            min_hits: 3,
            min_seen_90k: 90_000,
            lost_after_90k: 2 * 90_000,
            forget_after_90k: 30 * 90_000,
            stationary_after_90k: 30 * 90_000,
            stationary_move: 0.1,
            max_tracks: 64,
            match_iou: 0.3,
            threshold: 0.7,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Track {
    pub id: u64,
    pub label: Label,
    /// Where it was last seen, `[x, y, w, h]` in 0..1.
    pub bbox: [f32; 4],
    /// Its score in the last look that saw it.
    pub score: f32,
    pub best_score: f32,
    pub best_box: [f32; 4],
    pub first_seen_90k: i64,
    pub last_seen_90k: i64,
    pub hits: u32,
    pub confirmed: bool,
    pub stationary: bool,
    /// The best score last announced ([`Change::Better`] needs a clear rise).
    reported: f32,
    /// The last [`RECENT`] scores, for the median that confirms it.
    recent: Vec<f32>,
    /// Looks in a row that looked where it was and missed it.
    misses: u32,
    /// Where it settled, and since when (for stationary).
    anchor: [f32; 4],
    anchor_since_90k: i64,
}

/// What happened to a track in one update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Confirmed, or moving again after being stationary: an event starts.
    New(u64),
    /// Its best score rose clearly ([`BETTER`]; a better snapshot): the
    /// event is updated.
    Better(u64),
    /// It has not moved for long: its event ends, the track stays.
    Stationary(u64),
    /// It left: its event (if any is open) ends, the track is gone.
    End(u64),
}

impl Change {
    pub fn id(self) -> u64 {
        match self {
            Change::New(id) | Change::Better(id) | Change::Stationary(id) | Change::End(id) => id,
        }
    }
}

pub struct Tracker {
    settings: Settings,
    tracks: Vec<Track>,
    /// Tracks the last update removed (their events' last state).
    gone: Vec<Track>,
    next_id: u64,
}

impl Tracker {
    pub fn new(settings: Settings) -> Tracker {
        Tracker {
            settings,
            tracks: Vec::new(),
            gone: Vec::new(),
            next_id: 1,
        }
    }

    /// A track, or one the last update removed.
    pub fn get(&self, id: u64) -> Option<&Track> {
        self.tracks.iter().chain(&self.gone).find(|t| t.id == id)
    }

    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Boxes the model must keep looking at: tracks that are not stationary.
    pub fn moving(&self) -> impl Iterator<Item = [f32; 4]> + '_ {
        self.tracks.iter().filter(|t| !t.stationary).map(|t| t.bbox)
    }

    /// One look at time `t_90k`: the model analysed `looked` (boxes in
    /// 0..1) and found `found` there. Returns what changed, in order.
    pub fn update(&mut self, t_90k: i64, looked: &[[f32; 4]], found: &[Detection]) -> Vec<Change> {
        let s = self.settings.clone();
        self.gone.clear();
        let mut changes = Vec::new();
        // Candidate pairs, best first: IoU, else (for fast movers) a
        // closeness in 0..match_iou from the centres' distance.
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (ti, t) in self.tracks.iter().enumerate() {
            for (di, d) in found.iter().enumerate() {
                if d.label != t.label {
                    continue;
                }
                let o = iou(&t.bbox, &d.bbox);
                let q = if o >= s.match_iou {
                    o
                } else {
                    let reach = t.bbox[2].max(t.bbox[3]).max(d.bbox[2].max(d.bbox[3]));
                    let dist = centre_distance(&t.bbox, &d.bbox);
                    if reach > 0.0 && dist < reach {
                        s.match_iou * (1.0 - dist / reach) * 0.99
                    } else {
                        continue;
                    }
                };
                pairs.push((q, ti, di));
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut track_hit = vec![false; self.tracks.len()];
        let mut det_used = vec![false; found.len()];
        for (_, ti, di) in pairs {
            if track_hit[ti] || det_used[di] {
                continue;
            }
            track_hit[ti] = true;
            det_used[di] = true;
            let d = &found[di];
            let t = &mut self.tracks[ti];
            t.bbox = d.bbox;
            t.score = d.score;
            t.misses = 0;
            t.last_seen_90k = t_90k;
            t.hits = t.hits.saturating_add(1);
            if t.recent.len() >= RECENT {
                t.recent.remove(0);
            }
            t.recent.push(d.score);
            let moved = centre_distance(&t.anchor, &d.bbox)
                > s.stationary_move * t.anchor[2].max(t.anchor[3]);
            if moved {
                t.anchor = d.bbox;
                t.anchor_since_90k = t_90k;
            }
            let better = d.score > t.best_score;
            if better {
                t.best_score = d.score;
                t.best_box = d.bbox;
            }
            if !t.confirmed {
                if t.hits >= s.min_hits
                    && t_90k - t.first_seen_90k >= s.min_seen_90k
                    && median(&t.recent) >= s.threshold
                {
                    t.confirmed = true;
                    t.reported = t.best_score;
                    changes.push(Change::New(t.id));
                }
            } else if t.stationary && moved {
                // It drives off: a new event, with this look's picture.
                t.stationary = false;
                t.best_score = d.score;
                t.best_box = d.bbox;
                t.first_seen_90k = t_90k;
                t.reported = d.score;
                changes.push(Change::New(t.id));
            } else if !t.stationary && t_90k - t.anchor_since_90k >= s.stationary_after_90k {
                t.stationary = true;
                changes.push(Change::Stationary(t.id));
            } else if !t.stationary && t.best_score >= t.reported + BETTER {
                t.reported = t.best_score;
                changes.push(Change::Better(t.id));
            }
        }
        // Tracks missed where the model looked, or not seen for long.
        let mut i = 0;
        while i < self.tracks.len() {
            let t = &mut self.tracks[i];
            let unseen = t_90k - t.last_seen_90k;
            let was_looked_at = !track_hit.get(i).copied().unwrap_or(true)
                && looked.iter().any(|r| contains_centre(r, &t.bbox));
            if was_looked_at {
                t.misses = t.misses.saturating_add(1);
            }
            // Missed where the model looked, for long and more than once or
            // twice (at one look a second, two misses are not enough).
            let missed = t.misses >= MISSES && unseen >= s.lost_after_90k;
            let gone = if t.stationary {
                missed
            } else {
                missed || unseen >= s.forget_after_90k
            };
            if gone {
                let t = self.tracks.remove(i);
                track_hit.remove(i);
                if t.confirmed && !t.stationary {
                    changes.push(Change::End(t.id));
                }
                self.gone.push(t);
            } else {
                i += 1;
            }
        }
        for (d, used) in found.iter().zip(det_used) {
            if used {
                continue;
            }
            if self.tracks.len() >= s.max_tracks {
                // Room is made only by an unconfirmed track not seen in this
                // look (nothing to end), the one unseen longest. A confirmed
                // object is never dropped for a new detection (a flood of
                // ghosts would end real events, and a parked car evicted
                // would be announced again); with none to spare, the new
                // detection waits for a later look.
                let Some((victim, _)) = self
                    .tracks
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| !t.confirmed && t.last_seen_90k != t_90k)
                    .min_by_key(|(_, t)| t.last_seen_90k)
                else {
                    break;
                };
                let t = self.tracks.remove(victim);
                self.gone.push(t);
            }
            let id = self.next_id;
            self.next_id += 1;
            let confirmed = s.min_hits <= 1 && s.min_seen_90k <= 0 && d.score >= s.threshold;
            self.tracks.push(Track {
                id,
                label: d.label,
                bbox: d.bbox,
                score: d.score,
                best_score: d.score,
                best_box: d.bbox,
                first_seen_90k: t_90k,
                last_seen_90k: t_90k,
                hits: 1,
                confirmed,
                stationary: false,
                reported: d.score,
                recent: vec![d.score],
                misses: 0,
                anchor: d.bbox,
                anchor_since_90k: t_90k,
            });
            if confirmed {
                changes.push(Change::New(id));
            }
        }
        changes
    }

    /// The stream stopped: every open event ends, every track is forgotten.
    pub fn finish(&mut self) -> Vec<Change> {
        self.gone = std::mem::take(&mut self.tracks);
        self.gone
            .iter()
            .filter(|t| t.confirmed && !t.stationary)
            .map(|t| Change::End(t.id))
            .collect()
    }
}

fn median(v: &[f32]) -> f32 {
    let mut s = v.to_vec();
    s.sort_by(f32::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn centre(b: &[f32; 4]) -> (f32, f32) {
    (b[0] + b[2] / 2.0, b[1] + b[3] / 2.0)
}

fn centre_distance(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let ((ax, ay), (bx, by)) = (centre(a), centre(b));
    ((ax - bx).powi(2) + (ay - by).powi(2)).sqrt()
}

fn contains_centre(region: &[f32; 4], b: &[f32; 4]) -> bool {
    let (x, y) = centre(b);
    x >= region[0] && y >= region[1] && x <= region[0] + region[2] && y <= region[1] + region[3]
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 90_000;
    const ALL: [[f32; 4]; 1] = [[0.0, 0.0, 1.0, 1.0]];

    fn person(x: f32, score: f32) -> Detection {
        Detection {
            label: Label::Person,
            score,
            bbox: [x, 0.4, 0.05, 0.2],
        }
    }

    #[test]
    fn one_person_crossing_is_one_event_that_ends_when_they_leave() {
        let mut t = Tracker::new(Settings::default());
        let mut changes = Vec::new();
        // 5 looks a second, 2% of the width per look (a brisk walk).
        for i in 0..40 {
            let at = i * S / 5;
            changes.extend(t.update(
                at,
                &ALL,
                &[person(0.1 + 0.02 * i as f32, 0.6 + 0.005 * i as f32)],
            ));
        }
        let news = changes
            .iter()
            .filter(|c| matches!(c, Change::New(_)))
            .count();
        assert_eq!(news, 1, "{changes:?}");
        assert!(changes.iter().any(|c| matches!(c, Change::Better(_))));
        // Gone from where the model looks: ended 2 s later, not before.
        let start = 40 * S / 5;
        assert!(t.update(start + S / 2, &ALL, &[]).is_empty());
        assert!(t.update(start + S, &ALL, &[]).is_empty());
        assert!(
            t.update(start + 3 * S / 2, &ALL, &[]).is_empty(),
            "three misses, but not yet 2 s"
        );
        let end = t.update(start + 2 * S + S / 5, &ALL, &[]);
        assert!(matches!(end[..], [Change::End(_)]), "{end:?}");
        assert!(t.tracks().is_empty());
    }

    #[test]
    fn a_moment_is_not_an_event_and_two_people_are_two() {
        let mut t = Tracker::new(Settings::default());
        // Seen in five looks over 0.8 s, then gone: a ghost, no event.
        for i in 0..5 {
            assert!(t.update(i * S / 5, &ALL, &[person(0.5, 0.95)]).is_empty());
        }
        for i in 5..20 {
            assert!(t.update(i * S / 5, &ALL, &[]).is_empty(), "look {i}");
        }
        assert!(t.tracks().is_empty());
        // Two people, the second appearing a look later: each is an event
        // once seen for a second.
        let t0 = 100 * S;
        let mut news = Vec::new();
        for i in 0..8 {
            let mut d = vec![person(0.2 + 0.005 * i as f32, 0.9)];
            if i > 0 {
                d.push(person(0.7, 0.8));
            }
            for c in t.update(t0 + i * S / 5, &ALL, &d) {
                news.push((i, c));
            }
        }
        assert!(
            matches!(news[..], [(5, Change::New(_)), (6, Change::New(_))]),
            "{news:?}"
        );
        // A car in the same place as a person is another object.
        let car = Detection {
            label: Label::Car,
            score: 0.9,
            bbox: [0.24, 0.4, 0.05, 0.2],
        };
        assert!(
            t.update(t0 + 8 * S / 5, &ALL, &[person(0.24, 0.9), car])
                .is_empty()
        );
        assert_eq!(t.tracks().len(), 3);
    }

    #[test]
    fn a_track_needs_a_steady_score_to_be_an_event() {
        let mut t = Tracker::new(Settings::default());
        // A shape the model half believes in, now and then: never an event.
        for i in 0..20 {
            let s = if i % 3 == 0 { 0.75 } else { 0.55 };
            assert!(
                t.update(i * S / 5, &ALL, &[person(0.3, s)]).is_empty(),
                "look {i}"
            );
        }
        // Once it is steadily above the threshold, it is.
        let mut news = 0;
        for i in 20..30 {
            news += t
                .update(i * S / 5, &ALL, &[person(0.3, 0.8)])
                .iter()
                .filter(|c| matches!(c, Change::New(_)))
                .count();
        }
        assert_eq!(news, 1);
        assert_eq!(median(&[0.1, 0.9, 0.5, 0.7]), 0.6);
    }

    #[test]
    fn a_fast_mover_that_overlaps_no_more_stays_one_track() {
        let mut t = Tracker::new(Settings::default());
        let mut news = 0;
        // Moves 80% of its width per look: IoU is small, the centres close.
        for i in 0..10 {
            let c = t.update(i * S / 5, &ALL, &[person(0.1 + 0.04 * i as f32, 0.8)]);
            news += c.iter().filter(|c| matches!(c, Change::New(_))).count();
        }
        assert_eq!(news, 1);
        assert_eq!(t.tracks().len(), 1);
    }

    #[test]
    fn a_parked_car_is_reported_once_until_it_drives_off() {
        let mut t = Tracker::new(Settings::default());
        let car = |x: f32| Detection {
            label: Label::Car,
            score: 0.8,
            bbox: [x, 0.5, 0.2, 0.1],
        };
        let mut changes = Vec::new();
        // Ten minutes parked, looked at five times a second, jittering.
        for i in 0..3000 {
            let jitter = if i % 2 == 0 { 0.0 } else { 0.004 };
            changes.extend(t.update(i * S / 5, &ALL, &[car(0.3 + jitter)]));
        }
        assert!(
            matches!(changes[..], [Change::New(_), Change::Stationary(_)]),
            "{changes:?}"
        );
        assert_eq!(t.moving().count(), 0, "the model need not look at it");
        // Not looked at for an hour: still known, still silent.
        let later = 3000 * S / 5 + 3600 * S;
        assert!(t.update(later, &[], &[]).is_empty());
        assert_eq!(t.tracks().len(), 1);
        // It drives off: a new event.
        let c = t.update(later + S / 5, &ALL, &[car(0.36)]);
        assert!(matches!(c[..], [Change::New(_)]), "{c:?}");
        // And it leaves the picture: that event ends.
        // Followed at one look a second: two misses are not enough …
        assert!(t.update(later + 6 * S / 5, &ALL, &[]).is_empty());
        assert!(t.update(later + 11 * S / 5, &ALL, &[]).is_empty());
        // … the third, 3 s on, is.
        let c = t.update(later + 16 * S / 5, &ALL, &[]);
        assert!(matches!(c[..], [Change::End(_)]), "{c:?}");
    }

    #[test]
    fn a_stationary_object_that_is_gone_when_looked_at_ends_silently() {
        let mut t = Tracker::new(Settings {
            stationary_after_90k: S,
            ..Settings::default()
        });
        let car = Detection {
            label: Label::Car,
            score: 0.8,
            bbox: [0.3, 0.5, 0.2, 0.1],
        };
        for i in 0..10 {
            t.update(i * S / 5, &ALL, std::slice::from_ref(&car));
        }
        assert!(t.tracks()[0].stationary);
        // Looked at elsewhere: kept.
        assert!(t.update(10 * S, &[[0.0, 0.0, 0.1, 0.1]], &[]).is_empty());
        assert_eq!(t.tracks().len(), 1);
        // Looked at where it was and missing: forgotten without an event.
        for k in 0..3 {
            assert!(t.update(11 * S + k * S, &ALL, &[]).is_empty());
        }
        assert!(t.tracks().is_empty());
    }

    #[test]
    fn a_flood_of_detections_is_bounded_and_never_evicts_what_is_in_view() {
        let mut t = Tracker::new(Settings::default());
        // A parked car, stationary, and a person walking, both in view.
        let car = Detection {
            label: Label::Car,
            score: 0.9,
            bbox: [0.05, 0.05, 0.1, 0.05],
        };
        let mut changes = Vec::new();
        for i in 0..200 {
            changes.extend(t.update(i * S / 5, &ALL, std::slice::from_ref(&car)));
        }
        assert!(
            matches!(changes[..], [Change::New(_), Change::Stationary(_)]),
            "{changes:?}"
        );
        let car_id = changes[0].id();
        // Then 200 ghosts a look, each seen once (a band of its own per
        // look, too far from the last to match), for five looks.
        for k in 0..5 {
            let at = 200 * S / 5 + k * S;
            let mut look: Vec<Detection> = (0..200)
                .map(|i| Detection {
                    label: Label::Person,
                    score: 0.9,
                    bbox: [
                        (i % 40) as f32 / 40.0,
                        0.15 + 0.16 * k as f32 + (i / 40) as f32 * 0.03,
                        0.02,
                        0.02,
                    ],
                })
                .collect();
            look.push(car.clone());
            let c = t.update(at, &ALL, &look);
            assert!(t.tracks().len() <= Settings::default().max_tracks);
            assert!(
                c.iter()
                    .all(|c| !matches!(c, Change::New(_) | Change::End(_))),
                "ghosts seen once raise nothing: {c:?}"
            );
            assert!(
                t.get(car_id).is_some_and(|c| c.stationary),
                "the parked car stays known"
            );
        }
        // Not seen in this look and not the car: the ghosts made room.
        assert!(t.tracks().iter().any(|x| x.id == car_id));
        t.finish();
        assert!(t.tracks().is_empty());
    }
}
