#![no_main]
include!("../harness/nn.rs");
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_mln_json(data));
