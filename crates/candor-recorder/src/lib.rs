//! The Candor site recorder: configuration, one ingest task per camera, the
//! storage writer and continuous retention, wired together by [`Recorder`].

pub mod bus;
pub mod config;
pub mod config_edit;
pub mod ingest;
pub mod live;
pub mod motion;
pub mod mqtt;
pub mod onvif;
pub mod snapshot;
pub mod webhook;

pub use config::{Config, ConfigError};
pub use ingest::{CameraState, CameraStatus};

use candor_media::Time90k;
use candor_storage::retention::{self, CameraLimits, Limits};
use candor_storage::writer::{CameraStats, Writer, WriterOptions};
use candor_storage::{RecoveryReport, StorageError, Store};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;
use tokio::sync::watch;
use tracing::{error, info};

/// How often retention runs when nothing asks it to run sooner.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(10);

pub struct Recorder {
    store: Arc<Store>,
    writer: Option<Writer>,
    cameras: Vec<(i64, Arc<Mutex<CameraStatus>>)>,
    live: Vec<(String, live::LiveSender)>,
    motion: Arc<Vec<(String, watch::Sender<config::MotionConfig>)>>,
    events: bus::EventBus,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
    started: std::time::Instant,
    retention_stop: Option<mpsc::Sender<bool>>,
    retention_thread: Option<std::thread::JoinHandle<()>>,
    pub recovery: RecoveryReport,
}

#[derive(Debug, Clone)]
pub struct Status {
    pub camera: CameraStatus,
    pub storage: CameraStats,
}

impl Recorder {
    /// Opens storage (running recovery), then starts the writer, retention and
    /// one ingest task per camera. Must be called within a tokio runtime.
    pub async fn start(config: &Config) -> Result<Recorder, StorageError> {
        let dir = config.storage.path.clone();
        let (store, recovery) = tokio::task::spawn_blocking(move || Store::open(&dir))
            .await
            .expect("open task")?;
        // Events left "ongoing" by a crash end now: nothing follows them any more.
        if let Ok(n) = store.close_open_events(Time90k::now())
            && n > 0
        {
            info!("closed {n} event(s) left open by the last run");
        }
        let store = Arc::new(store);
        let mut limits = Limits {
            max_bytes: config.storage.max_bytes.map(|b| b.0),
            min_free: config.storage.min_free.map(|b| b.0),
            ..Default::default()
        };
        let mut ids = Vec::new();
        for c in &config.cameras {
            let id = store.ensure_camera(&c.name.get_ref().0)?;
            limits.cameras.insert(
                id,
                CameraLimits {
                    max_age_90k: c.max_age.map(|d| d90k(d.0)),
                    max_bytes: c.max_bytes.map(|b| b.0),
                    event_max_age_90k: c.event_max_age.map(|d| d90k(d.0)),
                    events_only: c.record == config::RecordMode::Events,
                    pre_capture_90k: d90k(c.pre_capture.0),
                    post_capture_90k: d90k(c.post_capture.0),
                },
            );
            ids.push(id);
        }
        let (kick_tx, kick_rx) = mpsc::channel::<bool>();
        let kick = kick_tx.clone();
        let kick_fn: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            let _ = kick.send(true);
        });
        let writer = Writer::spawn(
            store.clone(),
            WriterOptions {
                fsync_interval: config.storage.fsync_interval.0,
                on_write_error: Some(kick_fn),
                segment_target_90k: candor_media::Duration90k::from_std(
                    config.storage.segment_duration.0,
                )
                .0,
            },
        );
        let retention_thread = {
            let store = store.clone();
            std::thread::Builder::new()
                .name("retention".into())
                .spawn(move || retention_loop(&store, &limits, kick_rx))
                .expect("spawning retention thread")
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let events = bus::bus();
        let mut cameras = Vec::new();
        let mut lives = Vec::new();
        let mut tasks = Vec::new();
        let mut motion_settings = Vec::new();
        for (c, id) in config.cameras.iter().zip(ids) {
            let status = Arc::new(Mutex::new(CameraStatus {
                name: c.name.get_ref().0.clone(),
                state: CameraState::Connecting,
                last_error: None,
                reconnects: 0,
                frames: 0,
                codec: None,
                resolution: None,
                motion: c.motion.enabled.then(|| motion::MotionStatus {
                    state: "starting".into(),
                    ..Default::default()
                }),
            }));
            let live = live::channel();
            lives.push((c.name.get_ref().0.clone(), live.clone()));
            let task = ingest::CameraTask {
                live: live.clone(),
                cfg: Arc::new(c.clone()),
                camera_id: id,
                tx: Some(writer.sender()),
                status: status.clone(),
                shutdown: shutdown_rx.clone(),
            };
            tasks.push(tokio::spawn(task.run()));
            // Detect on the sub stream when there is one: decoding it costs a
            // fraction of the main stream. The detector task exists for every
            // camera, idle while motion is off, so the web app can turn it on.
            let frames = match c.sub_stream() {
                Some(url) => {
                    let sub = live::channel();
                    let mut cfg = c.clone();
                    cfg.url = url;
                    let sub_status = Arc::new(Mutex::new(CameraStatus {
                        name: format!("{}(sub)", c.name.get_ref().0),
                        state: CameraState::Connecting,
                        last_error: None,
                        reconnects: 0,
                        frames: 0,
                        codec: None,
                        resolution: None,
                        motion: None,
                    }));
                    tasks.push(tokio::spawn(
                        ingest::CameraTask {
                            live: sub.clone(),
                            cfg: Arc::new(cfg),
                            camera_id: id,
                            tx: None,
                            status: sub_status,
                            shutdown: shutdown_rx.clone(),
                        }
                        .run(),
                    ));
                    sub
                }
                None => live.clone(),
            };
            let (motion_tx, motion_rx) = watch::channel(c.motion.clone());
            motion_settings.push((c.name.get_ref().0.clone(), motion_tx));
            let m = motion::MotionTask {
                camera: c.name.get_ref().0.clone(),
                camera_id: id,
                store: store.clone(),
                bus: events.clone(),
                frames,
                status: status.clone(),
            };
            tasks.push(tokio::spawn(m.run(motion_rx, shutdown_rx.clone())));
            cameras.push((id, status));
        }
        for w in &config.webhooks {
            tasks.push(tokio::spawn(webhook::run(
                w.clone(),
                events.clone(),
                shutdown_rx.clone(),
            )));
        }
        if let Some(m) = &config.mqtt {
            let names = config
                .cameras
                .iter()
                .map(|c| c.name.get_ref().0.clone())
                .collect();
            tasks.push(tokio::spawn(mqtt::run(
                m.clone(),
                names,
                events.clone(),
                shutdown_rx.clone(),
            )));
        }
        Ok(Recorder {
            store,
            writer: Some(writer),
            cameras,
            live: lives,
            motion: Arc::new(motion_settings),
            events,
            tasks,
            shutdown,
            started: std::time::Instant::now(),
            retention_stop: Some(kick_tx),
            retention_thread: Some(retention_thread),
            recovery,
        })
    }

    /// Event changes as they happen (for integrations and the web app).
    pub fn events(&self) -> &bus::EventBus {
        &self.events
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn status(&self) -> Vec<Status> {
        self.status_source().status()
    }

    /// A cheap, cloneable way to read [`Recorder::status`] from elsewhere (the web server).
    pub fn status_source(&self) -> StatusSource {
        StatusSource {
            cameras: self.cameras.clone(),
            live: Arc::new(self.live.clone()),
            motion: self.motion.clone(),
            started: self.started,
            events: self.events.clone(),
            stats: self.writer.as_ref().map(|w| w.stats_handle()),
        }
    }

    /// Stops ingest, closes and fsyncs every segment, commits the index.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        if let Some(w) = self.writer.take() {
            let _ = tokio::task::spawn_blocking(move || w.shutdown()).await;
        }
        if let Some(stop) = self.retention_stop.take() {
            let _ = stop.send(false);
        }
        if let Some(t) = self.retention_thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        info!("recorder stopped cleanly");
    }
}

#[derive(Clone)]
pub struct StatusSource {
    cameras: Vec<(i64, Arc<Mutex<CameraStatus>>)>,
    live: Arc<Vec<(String, live::LiveSender)>>,
    motion: Arc<Vec<(String, watch::Sender<config::MotionConfig>)>>,
    started: std::time::Instant,
    events: bus::EventBus,
    stats: Option<Arc<Mutex<std::collections::HashMap<i64, CameraStats>>>>,
}

impl StatusSource {
    /// A source with no cameras, for tests and fuzzing of the web layer.
    pub fn empty() -> StatusSource {
        StatusSource {
            cameras: Vec::new(),
            live: Arc::new(Vec::new()),
            motion: Arc::new(Vec::new()),
            started: std::time::Instant::now(),
            events: bus::bus(),
            stats: None,
        }
    }

    /// A receiver of the named camera's live frames.
    pub fn subscribe(
        &self,
        camera: &str,
    ) -> Option<tokio::sync::broadcast::Receiver<Arc<live::LiveFrame>>> {
        self.live
            .iter()
            .find(|(n, _)| n == camera)
            .map(|(_, s)| s.subscribe())
    }

    /// A camera's motion settings now.
    pub fn motion_settings(&self, camera: &str) -> Option<config::MotionConfig> {
        self.motion
            .iter()
            .find(|(n, _)| n == camera)
            .map(|(_, s)| s.borrow().clone())
    }

    /// Applies new motion settings to a running camera (the detector
    /// restarts with them). False if there is no such camera.
    pub fn set_motion_settings(&self, camera: &str, cfg: config::MotionConfig) -> bool {
        match self.motion.iter().find(|(n, _)| n == camera) {
            Some((_, s)) => {
                s.send_replace(cfg);
                true
            }
            None => false,
        }
    }

    /// Live viewers per camera, for metrics.
    pub fn viewers(&self) -> Vec<(String, usize)> {
        self.live
            .iter()
            .map(|(n, s)| (n.clone(), s.receiver_count()))
            .collect()
    }

    /// Event changes as they happen.
    pub fn subscribe_events(&self) -> tokio::sync::broadcast::Receiver<bus::EventChange> {
        self.events.subscribe()
    }

    /// When the recorder started.
    pub fn started(&self) -> std::time::Instant {
        self.started
    }

    pub fn status(&self) -> Vec<Status> {
        let stats = self
            .stats
            .as_ref()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .unwrap_or_default();
        self.cameras
            .iter()
            .map(|(id, s)| Status {
                camera: s.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                storage: stats.get(id).cloned().unwrap_or_default(),
            })
            .collect()
    }
}

fn d90k(d: Duration) -> i64 {
    candor_media::Duration90k::from_std(d).0
}

/// Runs retention every [`RETENTION_INTERVAL`], or at once when kicked with
/// `true` (a write failed: free extra space, see [`retention::run_once`]), and
/// stops on `false`.
fn retention_loop(store: &Store, limits: &Limits, rx: mpsc::Receiver<bool>) {
    let mut emergency = false;
    loop {
        if let Err(e) = retention::run_once(store, limits, Time90k::now().0, emergency) {
            error!("retention failed: {e}");
        }
        match rx.recv_timeout(RETENTION_INTERVAL) {
            Ok(true) => emergency = true,
            Ok(false) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => emergency = false,
        }
    }
}
