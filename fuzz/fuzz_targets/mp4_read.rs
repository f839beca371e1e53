#![no_main]
// MP4 sources given to camsim (`--source`) and, later, uploaded clips.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(clip) = candor_media::mp4::read::parse(data) {
        let _ = clip.duration_90k();
    }
});
