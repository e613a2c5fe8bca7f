#![no_main]
//! See `lakehouse_fuzz::statement_handles`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| lakehouse_fuzz::statement_handles(data));
