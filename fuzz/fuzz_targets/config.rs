#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tillpay::fuzz::config(data));
