#![no_main]
// The config file is edited by hand and by installers' tools.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = candor_recorder::Config::parse(s);
    }
});
