#![no_main]
// avcC/hvcC records and length-prefixed samples come from files and cameras.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    use candor_media::h26x::{nals, DecoderConfig};
    for c in [DecoderConfig::parse_avcc(data), DecoderConfig::parse_hvcc(data)].into_iter().flatten() {
        let _ = c.sdp_fmtp();
    }
    for len in [1, 2, 4] {
        for n in nals(data, len) {
            if n.is_err() {
                break;
            }
        }
    }
});
