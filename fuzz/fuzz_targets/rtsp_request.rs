#![no_main]
// Bytes from any RTSP client reaching the simulator.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    use candor_camsim::rtsp::{camera_index, client_ports, parse, Parsed};
    if let Parsed::Request { req, consumed } = parse(data) {
        assert!(consumed <= data.len());
        let _ = camera_index(&req.url);
        if let Some(t) = req.transport {
            let _ = client_ports(&t);
        }
    }
});
