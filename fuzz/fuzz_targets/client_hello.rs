#![no_main]
// Remote access routes browsers by the ClientHello's server name, read
// before any TLS is answered: the first bytes any stranger sends.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = candor_cloud::relay::sni::peek(data);
});
