#![no_main]
// Frames from the cloud reach the recorder's link decoder.
libfuzzer_sys::fuzz_target!(|data: &[u8]| candor_link::fuzz_decode(data));
