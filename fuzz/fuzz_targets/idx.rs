#![no_main]
include!("../harness/data.rs");
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_idx(data));
