//! A picture of what a camera sees now: the next key frame of its live
//! stream, decoded and encoded as JPEG. For drawing motion zones and masks,
//! and for anyone who wants a still without a video player.

use crate::live::LiveFrame;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("no key frame from the camera within {0:?}; is it streaming?")]
    Timeout(Duration),
    #[error("the camera's stream ended")]
    Closed,
    #[error("{0}")]
    Decode(#[from] candor_motion::DecodeError),
    #[error("{0}")]
    Encode(#[from] candor_motion::SnapshotError),
    #[error("the stream has no decoder configuration")]
    NoConfig,
    #[error("the decoder produced no picture from the key frame")]
    NoPicture,
}

/// Waits for the next key frame on `rx` and returns it as a JPEG.
pub async fn grab(
    mut rx: broadcast::Receiver<Arc<LiveFrame>>,
    timeout: Duration,
) -> Result<Vec<u8>, SnapshotError> {
    let key = tokio::time::timeout(timeout, async {
        loop {
            match rx.recv().await {
                Ok(f) if f.key => return Ok(f),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return Err(SnapshotError::Closed),
            }
        }
    })
    .await
    .map_err(|_| SnapshotError::Timeout(timeout))??;
    drop(rx);
    tokio::task::spawn_blocking(move || {
        let cfg = key.init.decoder.as_ref().ok_or(SnapshotError::NoConfig)?;
        let mut d = candor_motion::H264Decoder::new(cfg)?;
        let pic = d
            .decode(&key.data, true)?
            .map(|f| f.to_picture())
            .ok_or(SnapshotError::NoPicture)?;
        Ok(pic.jpeg(85)?)
    })
    .await
    .map_err(|_| SnapshotError::NoPicture)?
}
