//! Streams started together do not send their frames together: each starts
//! at a random point within one frame interval after its PLAY, as
//! independent cameras' clocks would. Without that, a recorder whose
//! sessions start in the same millisecond gets every camera's frame in one
//! burst and takes them all in one wake-up, which flattered the recording
//! benchmark's figures by up to half (issue 17, BENCHMARKS.md).

use candor_camsim::{CamSim, Source};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CLIP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../assets/clips/vtest-h264-10s.mp4"
);
const SESSIONS: usize = 16;

/// Sends one request and reads its answer's head; returns the Session id.
async fn request(s: &mut TcpStream, req: String) -> String {
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).await.unwrap(), 1, "answer cut short");
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("RTSP/1.0 200"), "{head}");
    head.lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .unwrap_or_default()
}

/// Offsets of each session's first interleaved byte from the first PLAY.
async fn first_frames(sim: &CamSim) -> Vec<Duration> {
    let mut conns = Vec::new();
    for i in 0..SESSIONS {
        let mut s = TcpStream::connect(sim.local_addr()).await.unwrap();
        let url = sim.url(i);
        let id = request(
            &mut s,
            format!(
                "SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\n\
                 Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
            ),
        )
        .await;
        conns.push((s, url, id));
    }
    // Readers first, so that a loaded machine that is slow to schedule
    // them cannot bunch up what they see; then every PLAY written before
    // any answer is read: the sessions start within a millisecond or so of
    // each other.
    let t0 = Instant::now();
    let mut firsts = Vec::new();
    let mut writers = Vec::new();
    for (s, url, id) in conns {
        let (mut rd, wr) = s.into_split();
        writers.push((wr, url, id));
        firsts.push(tokio::spawn(async move {
            let mut answer = Vec::new();
            let mut b = [0u8; 1];
            loop {
                assert_eq!(rd.read(&mut b).await.unwrap(), 1, "stream ended");
                if b[0] == b'$' {
                    let answer = String::from_utf8_lossy(&answer);
                    assert!(answer.starts_with("RTSP/1.0 200"), "PLAY answered {answer}");
                    return t0.elapsed();
                }
                answer.push(b[0]);
            }
        }));
    }
    for (wr, url, id) in &mut writers {
        wr.write_all(format!("PLAY {url} RTSP/1.0\r\nCSeq: 2\r\nSession: {id}\r\n\r\n").as_bytes())
            .await
            .unwrap();
    }
    let mut out = Vec::new();
    for f in firsts {
        out.push(
            tokio::time::timeout(Duration::from_secs(10), f)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_started_together_are_spread_over_a_frame_interval() {
    let src = Arc::new(Source::from_mp4(&std::fs::read(CLIP).unwrap()).unwrap());
    let sim = CamSim::start(([127, 0, 0, 1], 0).into(), SESSIONS, src)
        .await
        .unwrap();
    let firsts = first_frames(&sim).await;
    let (min, max) = (firsts.iter().min().unwrap(), firsts.iter().max().unwrap());
    // The clip is 10 fps: 16 phases drawn from 100 ms span about 88 ms on
    // average (15/17 of it), and less than 20 ms with a probability near
    // 1e-9. Without phases they span only the time the PLAYs took to write
    // and answer.
    assert!(
        *max - *min >= Duration::from_millis(20),
        "first frames arrived within {:?} of each other: {firsts:?}",
        *max - *min
    );
    // No stream waits more than one interval (plus scheduling slack).
    assert!(*max < Duration::from_millis(600), "{firsts:?}");
}
