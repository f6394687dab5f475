#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| wx_edge::fuzz_api::headers(data));
