#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tillpay::fuzz::wechat_bill(data));
