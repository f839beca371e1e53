//! A camera's connectivity test, step by step, as an installer runs it when
//! a camera is down: can the recorder reach its RTSP port (TCP), does the
//! camera answer DESCRIBE with the configured credentials (RTSP), and is
//! its clock right (ONVIF GetSystemDateAndTime). Each step has its own
//! time limit; only the camera's configured addresses are contacted.

use crate::config::CameraConfig;
use std::time::{Duration, Instant};

/// How long each step may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(8);
/// A camera clock further off than this is reported as wrong: ONVIF
/// digests and event times go astray beyond a few seconds.
pub const CLOCK_TOLERANCE_SECS: i64 = 5;

#[derive(Clone, Debug, serde::Serialize)]
pub struct Step {
    /// `tcp`, `rtsp` or `onvif`.
    pub name: &'static str,
    pub ok: bool,
    pub ms: u64,
    pub detail: String,
}

async fn step<F, T>(name: &'static str, f: F, describe: impl FnOnce(T) -> (bool, String)) -> Step
where
    F: std::future::Future<Output = Result<T, String>>,
{
    let t = Instant::now();
    let (ok, detail) = match tokio::time::timeout(STEP_TIMEOUT, f).await {
        Ok(Ok(v)) => describe(v),
        Ok(Err(e)) => (false, e),
        Err(_) => (
            false,
            format!("no answer within {} s", STEP_TIMEOUT.as_secs()),
        ),
    };
    Step {
        name,
        ok,
        ms: t.elapsed().as_millis() as u64,
        detail,
    }
}

/// Runs the test on camera `c`. The RTSP step is skipped when TCP failed.
pub async fn test_camera(c: &CameraConfig) -> Vec<Step> {
    let url = c.url.url.clone();
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port().unwrap_or(554);
    let mut steps = vec![
        step(
            "tcp",
            async {
                tokio::net::TcpStream::connect((host.as_str(), port))
                    .await
                    .map_err(|e| format!("{host}:{port}: {e}"))
            },
            |s| {
                let peer = s.peer_addr().map(|a| a.to_string()).unwrap_or_default();
                (true, format!("connected to {peer}"))
            },
        )
        .await,
    ];
    if steps[0].ok {
        let creds = c
            .url
            .username
            .clone()
            .map(|username| retina::client::Credentials {
                username,
                password: c.url.password.clone().unwrap_or_default(),
            });
        let opts = retina::client::SessionOptions::default()
            .creds(creds)
            .user_agent(format!("Candor/{} (diagnostics)", candor_wire::version()));
        steps.push(
            step(
                "rtsp",
                async {
                    retina::client::Session::describe(url.clone(), opts)
                        .await
                        .map_err(|e| e.to_string())
                },
                |s| {
                    let media: Vec<String> = s
                        .streams()
                        .iter()
                        .map(|m| format!("{} {}", m.media(), m.encoding_name()))
                        .collect();
                    let video = s.streams().iter().any(|m| {
                        m.media() == "video" && matches!(m.encoding_name(), "h264" | "h265")
                    });
                    let detail = format!("DESCRIBE answered: {}", media.join(", "));
                    if video {
                        (true, detail)
                    } else {
                        (
                            false,
                            format!("{detail}; no H.264 or H.265 video to record"),
                        )
                    }
                },
            )
            .await,
        );
    }
    if let Some(onvif) = &c.onvif {
        let u = onvif.0.clone();
        steps.push(
            step(
                "onvif",
                async move {
                    crate::onvif::clock_offset(&u)
                        .await
                        .map_err(|e| e.to_string())
                },
                |off| {
                    let ok = off.abs() <= CLOCK_TOLERANCE_SECS;
                    let detail = format!(
                        "the camera's clock is {off:+} s from the recorder's{}",
                        if ok {
                            ""
                        } else {
                            ": set its time (NTP) on the camera"
                        }
                    );
                    (ok, detail)
                },
            )
            .await,
        );
    }
    steps
}
