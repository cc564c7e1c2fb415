// Fuzz harness bodies for the dl4rs-nn readers, shared (via `include!`) by the cargo-fuzz
// targets in `fuzz/fuzz_targets/` and the corpus replay in `crates/nn/tests/fuzz_corpus.rs`, so
// `cargo test` runs exactly what the fuzzer ran. Each takes untrusted bytes; any panic, abort or
// unbounded allocation is a bug (an `Err` is the right answer to bad input).

/// Networks built from a fuzzed configuration only when they are this small (the readers must
/// bound sizes themselves; this keeps the fuzzer fast).
#[allow(dead_code)]
const FUZZ_MAX_PARAMS: usize = 1 << 16;

/// The model-file reader: `ModelSerializer::restore_from_bytes` on the raw file bytes.
#[allow(dead_code)]
pub fn fuzz_model_file(data: &[u8]) {
    use dl4rs_nn::ModelSerializer;
    if let Ok(mut m) = ModelSerializer::restore_from_bytes::<f32>(data, "fuzz.safetensors", true) {
        let net = m.as_model_mut();
        // What was read must be consistent: writing it again and reading that back works.
        let bytes = ModelSerializer::to_bytes(&*net, true).expect("re-encode a restored model");
        let again = ModelSerializer::restore_from_bytes::<f32>(&bytes, "again", true)
            .expect("restore a re-encoded model");
        assert_eq!(again.into_model().num_params(), net.num_params());
    }
}

/// `MultiLayerConfiguration::from_json`; a configuration that parses must round-trip, and a
/// small one must build a network.
#[allow(dead_code)]
pub fn fuzz_mln_json(data: &[u8]) {
    use dl4rs_nn::{MultiLayerConfiguration, MultiLayerNetwork};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(conf) = MultiLayerConfiguration::from_json(text) {
        let json = conf.to_json().expect("a parsed configuration serializes");
        let back = MultiLayerConfiguration::from_json(&json).expect("round trip");
        assert_eq!(back, conf);
        let params: Option<usize> = conf
            .layers
            .iter()
            .try_fold(0usize, |acc, l| acc.checked_add(l.num_params()));
        if params.is_some_and(|p| p <= FUZZ_MAX_PARAMS) {
            let _ = MultiLayerNetwork::<f32>::new(conf);
        }
    }
}

/// `ComputationGraphConfiguration::from_json`, as for the MultiLayerNetwork configuration.
#[allow(dead_code)]
pub fn fuzz_graph_json(data: &[u8]) {
    use dl4rs_nn::{ComputationGraph, ComputationGraphConfiguration};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(conf) = ComputationGraphConfiguration::from_json(text) {
        let json = conf.to_json().expect("a parsed configuration serializes");
        let back = ComputationGraphConfiguration::from_json(&json).expect("round trip");
        assert_eq!(back, conf);
        let params: Option<usize> = conf
            .vertices
            .iter()
            .filter_map(|v| match &v.vertex {
                dl4rs_nn::conf::VertexConf::Layer { layer, .. } => Some(layer),
                _ => None,
            })
            .try_fold(0usize, |acc, l| acc.checked_add(l.num_params()));
        if params.is_some_and(|p| p <= FUZZ_MAX_PARAMS) {
            let _ = ComputationGraph::<f32>::new(conf);
        }
    }
}
