#![no_main]
//! See `lakehouse_fuzz::action_bodies`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| lakehouse_fuzz::action_bodies(data));
