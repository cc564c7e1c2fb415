#![no_main]
include!("../harness/nn.rs");
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_graph_json(data));
