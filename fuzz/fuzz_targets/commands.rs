#![no_main]
//! See `lakehouse_fuzz::commands`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| lakehouse_fuzz::commands(data));
