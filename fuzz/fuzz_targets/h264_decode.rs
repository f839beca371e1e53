#![no_main]
// Camera H.264 reaches openh264 (C) through motion detection and snapshots.
// The input is split into a parameter-set part and a sample part, so the
// fuzzer can mangle either.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let cut = usize::from(data[0]).min(data.len() - 1);
    let (params, sample) = data[1..].split_at(cut.min(data.len() - 1));
    let (sps, pps) = params.split_at(params.len() / 2);
    let cfg = candor_media::h26x::DecoderConfig {
        codec: candor_media::Codec::H264,
        length_size: 4,
        vps: Vec::new(),
        sps: vec![sps.to_vec()],
        pps: vec![pps.to_vec()],
    };
    if let Ok(mut d) = candor_motion::H264Decoder::new(&cfg) {
        let _ = d.decode(sample, true).map(|f| f.map(|f| f.to_picture()));
    }
});
