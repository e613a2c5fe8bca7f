#![no_main]
//! See `lakehouse_fuzz::flight_data`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| lakehouse_fuzz::flight_data(data));
