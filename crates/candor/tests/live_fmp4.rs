//! The live view's fragmented MP4, judged by ffprobe and ffmpeg: an init
//! segment plus one fragment per frame, built from a real clip exactly as
//! `candor-web::live` builds them, must be a valid stream with every frame at
//! its time.

mod common;
use candor_media::mp4::{frag, read};
use common::*;

fn build(clip: &[u8]) -> (Vec<u8>, usize, f64) {
    let c = read::parse(clip).unwrap();
    let mut out = frag::init_segment(&c.sample_entry, c.width, c.height);
    for (i, s) in c.samples.iter().enumerate() {
        let data = &clip[s.offset as usize..s.offset as usize + s.size as usize];
        out.extend(frag::fragment_header(
            i as u32 + 1,
            s.time_90k as u64,
            s.duration_90k,
            s.key,
            s.size,
        ));
        out.extend_from_slice(data);
    }
    (out, c.samples.len(), c.duration_90k() as f64 / 90_000.0)
}

#[test]
fn live_fragments_form_a_stream_ffmpeg_decodes() {
    for (clip, codec) in [(H264_CLIP, "h264"), (H265_CLIP, "hevc")] {
        let bytes = std::fs::read(clip).unwrap();
        let (fmp4, frames, secs) = build(&bytes);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("live.mp4");
        std::fs::write(&path, fmp4).unwrap();
        let p = ffprobe(&path);
        assert_eq!(p.codec, codec);
        assert_eq!(
            p.frames as usize, frames,
            "{codec}: every fragment is a frame"
        );
        assert!(
            (p.duration - secs).abs() < 0.11,
            "{codec}: {} s vs {secs} s",
            p.duration
        );
        ffmpeg_decodes(&path).unwrap_or_else(|e| panic!("{codec}: {e}"));
    }
}
