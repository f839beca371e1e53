//! Object detection per camera, inside its motion worker (see
//! `docs/design/objects.md`): where the motion detector sees motion, or an
//! object is being followed, squares of the decoded picture go to the
//! model; detections are followed across frames ([`candor_detect::Tracker`])
//! and become object events with snapshots.
//!
//! The model runs on a fixed set of sessions shared by every camera
//! ([`Engine`]), one core each. A camera that finds them all busy skips
//! that frame: frames are skipped, never queued, and since each camera
//! looks at most `fps` times a second at most [`MAX_REGIONS`] squares, one
//! camera in constant motion cannot take more than its share.

use crate::bus::ObjectInfo;
use crate::config::{AlarmOn, ObjectsConfig, ObjectsRuntimeConfig};
use candor_detect::{Change, Detection, INPUT, Label, Ssd, Track, Tracker, Yuv420};
use candor_motion::{Analysis, Frame, Picture, Zone};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Squares analysed per look at most.
pub const MAX_REGIONS: usize = 4;
/// A picture whose longer side shrinks at least this much to the model's
/// input is looked at whole rather than in several squares.
const WHOLE_SCALE: f32 = 0.45;

/// The least time between looks while only confirmed objects move (90 kHz).
const FOLLOW: i64 = 90_000;

/// Looks have been wanted since `since` (the last at `wanted`) and the last
/// one done was at `done`: starved when none was done for [`STARVED`].
fn starved(wanted: Option<i64>, done: Option<i64>, since: i64) -> bool {
    match (wanted, done) {
        (Some(w), Some(d)) if w > d => w - d.max(since) >= STARVED,
        (Some(w), None) => w - since >= STARVED,
        _ => false,
    }
}

/// An object's box grown by half its size each way: where it may be by
/// the next look.
fn grown(o: &[f32; 4]) -> [f32; 4] {
    let (gx, gy) = (o[2] * 0.5, o[3] * 0.5);
    [o[0] - gx, o[1] - gy, o[2] + 2.0 * gx, o[3] + 2.0 * gy]
}

/// The share of box `b` that lies on `boxes` (one blob of motion often
/// spans two people walking side by side).
fn covered(boxes: &[[f32; 4]], b: &[f32; 4]) -> f32 {
    // On an 8×8 grid of points inside `b`: overlapping boxes count once.
    const N: usize = 8;
    let mut on = 0;
    for i in 0..N {
        for j in 0..N {
            let x = b[0] + b[2] * (i as f32 + 0.5) / N as f32;
            let y = b[1] + b[3] * (j as f32 + 0.5) / N as f32;
            if boxes
                .iter()
                .any(|o| x >= o[0] && y >= o[1] && x <= o[0] + o[2] && y <= o[1] + o[3])
            {
                on += 1;
            }
        }
    }
    on as f32 / (N * N) as f32
}

/// Looks wanted and not done for this long (90 kHz): detection is not
/// working, and motion raises the alarms.
const STARVED: i64 = 10 * 90_000;
/// After the runtime failed to load, try again this much later (the owner
/// may have fixed the file).
const RETRY: Duration = Duration::from_secs(60);

/// The model's sessions, shared by every camera.
pub struct Engine {
    runtime: Option<PathBuf>,
    threads: usize,
    state: Mutex<State>,
}

enum State {
    Idle,
    Ready {
        rt: Arc<candor_detect::Runtime>,
        free: Vec<Ssd>,
        made: usize,
    },
    Failed(String, Instant),
}

/// A session lent to one camera for one look; returned when dropped.
pub struct Lease<'a> {
    engine: &'a Engine,
    ssd: Option<Ssd>,
}

impl Lease<'_> {
    fn ssd(&mut self) -> &mut Ssd {
        self.ssd
            .as_mut()
            .expect("a lease holds its session until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.ssd.take()
            && let State::Ready { free, .. } = &mut *self.engine.lock()
        {
            free.push(s);
        }
    }
}

impl Engine {
    pub fn new(cfg: &ObjectsRuntimeConfig) -> Engine {
        Engine {
            runtime: cfg.runtime.clone(),
            threads: cfg.threads(),
            state: Mutex::new(State::Idle),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A session for one look. `Err`: detection cannot run (why, for the
    /// camera's status); `Ok(None)`: every session is busy, skip this frame.
    pub fn lease(&self) -> Result<Option<Lease<'_>>, String> {
        let mut st = self.lock();
        if let State::Failed(_, at) = &*st
            && at.elapsed() >= RETRY
        {
            *st = State::Idle;
        }
        if matches!(*st, State::Idle) {
            *st = match &self.runtime {
                None => State::Failed(
                    "object detection needs ONNX Runtime: set [objects] runtime to the absolute path of libonnxruntime.so (README, \"Object detection\")".into(),
                    Instant::now(),
                ),
                Some(p) => match candor_detect::Runtime::load(p) {
                    Ok(rt) => State::Ready {
                        rt,
                        free: Vec::new(),
                        made: 0,
                    },
                    Err(e) => State::Failed(e.to_string(), Instant::now()),
                },
            };
        }
        let rt = match &mut *st {
            State::Failed(why, _) => return Err(why.clone()),
            State::Idle => return Ok(None),
            State::Ready { free, made, rt } => {
                if let Some(ssd) = free.pop() {
                    return Ok(Some(Lease {
                        engine: self,
                        ssd: Some(ssd),
                    }));
                }
                if *made >= self.threads {
                    return Ok(None);
                }
                // A new session, made outside the lock (it takes a while:
                // the model's checksum, then ONNX Runtime's optimisation);
                // the slot is taken meanwhile, so none is made twice.
                *made += 1;
                rt.clone()
            }
        };
        drop(st);
        match Ssd::built_in(&rt) {
            Ok(ssd) => Ok(Some(Lease {
                engine: self,
                ssd: Some(ssd),
            })),
            Err(e) => {
                // Kept (and retried after RETRY) rather than tried again by
                // every camera at every look.
                let why = e.to_string();
                *self.lock() = State::Failed(why.clone(), Instant::now());
                Err(why)
            }
        }
    }
}

/// Counters for the camera's status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectStats {
    /// `off`, `running`, or why detection can't run.
    pub state: String,
    /// Frames the model looked at, squares it analysed, and frames skipped
    /// because every session was busy.
    pub looks: u64,
    pub inferences: u64,
    pub skipped: u64,
    /// Inferences that failed.
    pub errors: u64,
    /// Detection works ([`CameraObjects::working`]); while it doesn't,
    /// motion raises the camera's alarms.
    pub working: bool,
    /// Time spent in the model (µs).
    pub busy_us: u64,
}

/// What a look found that the motion worker must record.
pub struct Found {
    pub change: Change,
    pub track: Track,
    /// The zones the object stands in now.
    pub zones: Vec<String>,
    /// The picture, for new and better objects (their snapshot).
    pub picture: Option<Picture>,
}

/// One camera's detector state, owned by its motion worker.
pub struct CameraObjects {
    pub cfg: ObjectsConfig,
    zones: Vec<Zone>,
    /// Motion's masks: nothing standing there is reported.
    masks: Vec<candor_motion::Polygon>,
    /// The last time a look was wanted (motion or a moving object), and
    /// the last one done: detection that stays wanted and undone (every
    /// session busy, inference failing) is not working, and motion raises
    /// the alarms meanwhile.
    wanted_90k: Option<i64>,
    done_90k: Option<i64>,
    wanted_since_90k: i64,
    tracker: Tracker,
    min_step_90k: i64,
    last_look: Option<i64>,
    rgb: Vec<u8>,
    pub stats: ObjectStats,
}

impl CameraObjects {
    pub fn new(
        cfg: ObjectsConfig,
        zones: Vec<Zone>,
        masks: Vec<candor_motion::Polygon>,
    ) -> CameraObjects {
        CameraObjects {
            masks,
            wanted_90k: None,
            done_90k: None,
            wanted_since_90k: 0,
            min_step_90k: (90_000.0 / cfg.fps.clamp(0.1, 30.0) * 0.9) as i64,
            tracker: Tracker::new(candor_detect::track::Settings {
                threshold: cfg.threshold,
                ..Default::default()
            }),
            cfg,
            zones,
            last_look: None,
            rgb: vec![0; candor_detect::INPUT * candor_detect::INPUT * 3],
            stats: ObjectStats {
                state: "running".into(),
                ..Default::default()
            },
        }
    }

    /// Zones whose polygon holds where the object stands (its box's
    /// bottom centre).
    pub fn zones_of(&self, bbox: &[f32; 4]) -> Vec<String> {
        let (x, y) = (bbox[0] + bbox[2] / 2.0, bbox[1] + bbox[3]);
        self.zones
            .iter()
            .filter(|z| z.polygon.contains(x, y))
            .map(|z| z.name.clone())
            .collect()
    }

    /// Whether an object event of `label` that entered `zones` raises an
    /// alarm under this camera's rules.
    pub fn alarms(&self, label: Label, zones: &[String]) -> bool {
        if self.cfg.alarm == AlarmOn::Motion {
            return false;
        }
        self.cfg.zones.is_empty()
            || self
                .cfg
                .zones
                .iter()
                .any(|(z, labels)| labels.contains(&label) && zones.contains(z))
    }

    /// Looks at an analysed frame at `t_90k` if there is motion or a moving
    /// object, and not too soon after the last look. `None`: no look.
    pub fn observe(
        &mut self,
        engine: &Engine,
        t_90k: i64,
        frame: &Frame<'_>,
        a: &Analysis,
    ) -> Option<Vec<Found>> {
        let moving: Vec<[f32; 4]> = self.tracker.moving().collect();
        if a.boxes.is_empty() && moving.is_empty() {
            return None;
        }
        // Following objects already confirmed needs fewer looks than
        // finding new ones: when every motion box lies on a confirmed
        // moving object, look at most every FOLLOW; motion anywhere else
        // (someone new) is looked at at the full rate.
        let tracks = self.tracker.tracks();
        let followed: Vec<[f32; 4]> = tracks
            .iter()
            .filter(|t| t.confirmed && !t.stationary)
            .map(|t| grown(&t.bbox))
            .collect();
        let settled = a.boxes.iter().all(|b| covered(&followed, b) >= 0.8);
        let step = if settled {
            self.min_step_90k.max(FOLLOW)
        } else {
            self.min_step_90k
        };
        if self
            .last_look
            .is_some_and(|l| t_90k - l < step && t_90k >= l)
        {
            return None;
        }
        // The start of a stretch of wanted looks: after one that was done,
        // or after a quiet spell (nothing wanted for long).
        if self
            .wanted_90k
            .is_none_or(|w| w <= self.done_90k.unwrap_or(i64::MIN) || t_90k - w > STARVED / 2)
        {
            self.wanted_since_90k = t_90k;
        }
        self.wanted_90k = Some(t_90k);
        let mut lease = match engine.lease() {
            Ok(Some(l)) => l,
            Ok(None) => {
                self.stats.skipped += 1;
                return None;
            }
            Err(why) => {
                self.stats.state = why;
                return None;
            }
        };
        self.stats.state = "running".into();
        self.last_look = Some(t_90k);
        self.stats.looks += 1;
        let [y, u, v] = frame.planes();
        let pic = Yuv420 {
            y: y.data,
            u: u.data,
            v: v.data,
            strides: [y.stride, u.stride, v.stride],
            width: y.width,
            height: y.height,
        };
        let (w, h) = (y.width as f32, y.height as f32);
        let mut squares = candor_detect::regions(y.width, y.height, &moving, &a.boxes, MAX_REGIONS);
        // A small picture (a 640×360 sub stream) fits the model whole at
        // close to half size: when motion needs more than one square, one
        // look at the whole picture costs less and sees as much. (The
        // model was trained on whole pictures resized to its input.)
        if squares.len() > 1 && INPUT as f32 / y.width.max(y.height) as f32 >= WHOLE_SCALE {
            squares = vec![[0, 0, y.width, y.height]];
        }
        let floor = self
            .cfg
            .labels
            .iter()
            .map(|&l| self.cfg.min_score_of(l))
            .fold(1.0f32, f32::min);
        let t0 = Instant::now();
        let mut found: Vec<Detection> = Vec::new();
        let mut ran = false;
        let mut looked = Vec::with_capacity(squares.len());
        for sq in squares {
            let Ok([x0, y0, cw, ch]) = candor_detect::crop_to_rgb(&pic, sq, &mut self.rgb) else {
                continue;
            };
            looked.push([x0 as f32 / w, y0 as f32 / h, cw as f32 / w, ch as f32 / h]);
            self.stats.inferences += 1;
            let ds = match lease.ssd().detect(&self.rgb, &self.cfg.labels, floor) {
                Ok(ds) => ds,
                Err(_) => {
                    self.stats.errors += 1;
                    continue;
                }
            };
            ran = true;
            for d in ds {
                if d.score < self.cfg.min_score_of(d.label) {
                    continue;
                }
                let b = d.bbox;
                let bbox = [
                    (x0 as f32 + b[0] * cw as f32) / w,
                    (y0 as f32 + b[1] * ch as f32) / h,
                    b[2] * cw as f32 / w,
                    b[3] * ch as f32 / h,
                ];
                // Where it stands: masked areas (the street, the
                // neighbour's garden) report nothing, as for motion.
                let (fx, fy) = (bbox[0] + bbox[2] / 2.0, bbox[1] + bbox[3]);
                if self.masks.iter().any(|m| m.contains(fx, fy)) {
                    continue;
                }
                found.push(Detection { bbox, ..d });
            }
        }
        drop(lease);
        // Done if the model ran, or there was nothing to look at.
        if ran || looked.is_empty() {
            self.done_90k = Some(t_90k);
        }
        self.stats.busy_us += t0.elapsed().as_micros() as u64;
        // Overlapping squares see one object twice: one detection each.
        let found =
            candor_detect::nms(found, candor_detect::NMS_IOU, candor_detect::MAX_DETECTIONS);
        let changes = self.tracker.update(t_90k, &looked, &found);
        let mut picture: Option<Picture> = None;
        let mut out = Vec::with_capacity(changes.len());
        for change in changes {
            let Some(track) = self.tracker.get(change.id()).cloned() else {
                continue;
            };
            let pic = matches!(change, Change::New(_) | Change::Better(_))
                .then(|| picture.get_or_insert_with(|| frame.to_picture()).clone());
            out.push(Found {
                zones: self.zones_of(&track.bbox),
                change,
                track,
                picture: pic,
            });
        }
        Some(out)
    }

    /// Whether detection works: its runtime loaded (or not yet tried), and
    /// looks wanted for [`STARVED`] were done. Else motion raises the
    /// camera's alarms, so an alarm is never lost to a busy or broken
    /// detector.
    pub fn working(&self) -> bool {
        self.stats.state == "running"
            && !starved(self.wanted_90k, self.done_90k, self.wanted_since_90k)
    }

    /// The tracks currently followed (for zones entered while they last).
    pub fn tracks(&self) -> &[Track] {
        self.tracker.tracks()
    }

    /// The stream stopped: every open object event ends.
    pub fn finish(&mut self) -> Vec<Found> {
        let ends = self.tracker.finish();
        ends.into_iter()
            .filter_map(|change| {
                let track = self.tracker.get(change.id())?;
                Some(Found {
                    zones: self.zones_of(&track.bbox),
                    change,
                    track: track.clone(),
                    picture: None,
                })
            })
            .collect()
    }
}

/// Whether a camera's motion events (Candor's or the camera's own) raise
/// alarms, from its object settings and its detector's status: unless
/// object detection works on it and alarms come from objects alone.
pub fn motion_alarms(cfg: &ObjectsConfig, status: &crate::CameraStatus) -> bool {
    let working = status
        .motion
        .as_ref()
        .is_some_and(|m| m.state == "running" && m.objects.as_ref().is_some_and(|o| o.working));
    motion_raises_alarms(cfg, working)
}

/// The rule itself: motion raises alarms unless detection is on, `working`,
/// and alarms come from objects alone.
pub fn motion_raises_alarms(cfg: &ObjectsConfig, working: bool) -> bool {
    !(cfg.enabled && cfg.alarm == AlarmOn::Objects && working)
}

/// An object event this camera has open.
pub struct OpenObject {
    pub event_id: i64,
    pub start: candor_media::Time90k,
    pub info: ObjectInfo,
    pub alarm: bool,
    pub has_snapshot: bool,
}

/// The snapshot's box colour (YCbCr of a bright green, seen on any scene).
pub const BOX_COLOUR: [u8; 3] = [173, 42, 26];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::motion::MotionStatus;

    fn status(motion: &str, objects: Option<bool>) -> crate::CameraStatus {
        crate::CameraStatus {
            name: "gate".into(),
            state: crate::ingest::CameraState::Stopped,
            last_error: None,
            reconnects: 0,
            frames: 0,
            codec: None,
            resolution: None,
            recent_errors: Default::default(),
            motion: Some(MotionStatus {
                state: motion.into(),
                objects: objects.map(|working| ObjectStats {
                    state: "running".into(),
                    working,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn motion_raises_alarms_unless_detection_works_and_objects_raise_them() {
        let on = ObjectsConfig {
            enabled: true,
            ..Default::default()
        };
        assert!(!motion_alarms(&on, &status("running", Some(true))));
        // Detection starved or failing, not started, or the stream can't
        // be decoded: motion alarms, so nothing is lost.
        assert!(motion_alarms(&on, &status("running", Some(false))));
        assert!(motion_alarms(&on, &status("running", None)));
        assert!(motion_alarms(
            &on,
            &status("H.265 can't be decoded", Some(true))
        ));
        // The owner's choice, and objects off.
        for alarm in [AlarmOn::Motion, AlarmOn::Both] {
            assert!(motion_alarms(
                &ObjectsConfig {
                    alarm,
                    ..on.clone()
                },
                &status("running", Some(true))
            ));
        }
        assert!(motion_alarms(
            &ObjectsConfig::default(),
            &status("running", Some(true))
        ));
    }

    #[test]
    fn motion_on_followed_objects_is_covered_and_elsewhere_is_not() {
        let people = [grown(&[0.4, 0.3, 0.1, 0.3]), grown(&[0.55, 0.3, 0.1, 0.3])];
        assert_eq!(covered(&people, &[0.42, 0.35, 0.05, 0.2]), 1.0);
        // One blob over two people side by side.
        assert!(covered(&people, &[0.38, 0.25, 0.3, 0.4]) >= 0.8);
        // Someone new, and a blob mostly elsewhere.
        assert_eq!(covered(&people, &[0.9, 0.3, 0.05, 0.2]), 0.0);
        assert!(covered(&people, &[0.3, 0.1, 0.6, 0.8]) < 0.8);
        assert_eq!(covered(&[], &[0.1, 0.1, 0.1, 0.1]), 0.0);
        // Two overlapping followed boxes and a blob half outside both:
        // overlaps are not counted twice.
        let side_by_side = [[0.35, 0.15, 0.2, 0.6], [0.35, 0.15, 0.2, 0.6]];
        let c = covered(&side_by_side, &[0.45, 0.3, 0.2, 0.2]);
        assert!((0.4..=0.6).contains(&c), "{c}");
    }

    #[test]
    fn detection_is_starved_only_after_ten_seconds_of_wanted_looks_undone() {
        let s = 90_000;
        assert!(!starved(None, None, 0));
        assert!(
            !starved(Some(5 * s), Some(5 * s), 0),
            "the last wanted look was done"
        );
        assert!(!starved(Some(9 * s), Some(2 * s), 3 * s), "6 s undone");
        assert!(starved(Some(13 * s), Some(2 * s), 3 * s), "10 s undone");
        assert!(
            starved(Some(12 * s), None, s),
            "never done, wanted for 11 s"
        );
        assert!(!starved(Some(12 * s), None, 5 * s));
    }
}
