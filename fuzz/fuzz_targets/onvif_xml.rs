#![no_main]
// Answers from cameras and from anything on the LAN that answers a
// WS-Discovery probe.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        candor_onvif::fuzz_parsers(s);
    }
});
