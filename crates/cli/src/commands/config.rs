//! Network configurations from JSON files for `dl4rs train --config`: a MultiLayerNetwork or a
//! ComputationGraph (told apart by the graph's `vertices`), in the JSON `to_json` writes. What
//! the file leaves out is taken from the data: the input type (a first layer without `n_in` and
//! no `input_type`, or a one-input graph without `input_types`: rows of `n_in` values, or
//! sequences of `n_in` channels per step) and the number of outputs (an output layer —
//! `Output` or `RnnOutputLayer` — without `n_out`). `--workspaces` overrides the file's
//! workspace modes, `--tbptt K` its backprop type (truncated BPTT, forward = backward = K).

use std::path::Path;

use dl4rs::nn::{
    ComputationGraph, ComputationGraphConfiguration, InputType, Model, MultiLayerConfiguration,
    MultiLayerNetwork, WorkspaceMode,
};
use serde_json::{Value, json};

use super::CliError;

/// Reads `path` and builds the network it describes for the data's `input` (per example:
/// `InputType::feed_forward(n_in)` for rows, `InputType::recurrent(channels)` for sequences)
/// and `n_out` outputs.
pub fn load(
    path: &Path,
    input: InputType,
    n_out: usize,
    workspaces: Option<WorkspaceMode>,
) -> Result<Box<dyn Model<f32>>, CliError> {
    load_with(path, input, n_out, workspaces, None)
}

/// [`load`], with truncated BPTT in segments of `tbptt` steps (forward and backward length)
/// when given.
pub fn load_with(
    path: &Path,
    input: InputType,
    n_out: usize,
    workspaces: Option<WorkspaceMode>,
    tbptt: Option<usize>,
) -> Result<Box<dyn Model<f32>>, CliError> {
    let name = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("{name}: can't read the configuration: {e}")))?;
    let mut value: Value = serde_json::from_str(&text)
        .map_err(|e| CliError::Usage(format!("{name}: not valid JSON: {e}")))?;
    let Some(obj) = value.as_object_mut() else {
        return Err(CliError::Usage(format!(
            "{name}: expected a JSON object (a MultiLayerNetwork or ComputationGraph \
             configuration)"
        )));
    };
    if let Some(mode) = workspaces {
        let mode = match mode {
            WorkspaceMode::Enabled => "ENABLED",
            WorkspaceMode::None => "NONE",
        };
        obj.insert("training_workspace_mode".into(), json!(mode));
        obj.insert("inference_workspace_mode".into(), json!(mode));
    }
    if let Some(k) = tbptt {
        obj.insert("backprop_type".into(), json!("TruncatedBPTT"));
        obj.insert("tbptt_forward_length".into(), json!(k));
        obj.insert("tbptt_backward_length".into(), json!(k));
    }
    let bad = |e: dl4rs::nn::NnError| CliError::Usage(format!("{name}: {e}"));
    let input = serde_json::to_value(input)
        .map_err(|e| CliError::Usage(format!("can't write the input type: {e}")))?;
    if obj.contains_key("vertices") {
        fill_graph(obj, input, n_out);
        let conf = ComputationGraphConfiguration::from_json(&value.to_string()).map_err(bad)?;
        Ok(Box::new(ComputationGraph::<f32>::new(conf).map_err(bad)?))
    } else {
        fill_layers(obj, input, n_out);
        let conf = MultiLayerConfiguration::from_json(&value.to_string()).map_err(bad)?;
        Ok(Box::new(MultiLayerNetwork::<f32>::new(conf).map_err(bad)?))
    }
}

/// A layer with a loss and an `n_out` (an `RnnLossLayer` has no `n_out`: its size is its
/// input's).
fn is_output_layer(layer: &Value) -> bool {
    matches!(
        layer.get("type").and_then(Value::as_str),
        Some("Output" | "RnnOutputLayer")
    )
}

fn fill_layers(obj: &mut serde_json::Map<String, Value>, input: Value, n_out: usize) {
    let has_input_type = obj.get("input_type").is_some_and(|v| !v.is_null());
    let Some(layers) = obj.get_mut("layers").and_then(Value::as_array_mut) else {
        return;
    };
    let first_has_n_in = layers
        .first()
        .and_then(|l| l.get("n_in"))
        .is_some_and(|v| !v.is_null());
    if let Some(last) = layers.last_mut()
        && is_output_layer(last)
        && last.get("n_out").is_none_or(Value::is_null)
    {
        last["n_out"] = json!(n_out);
    }
    if !has_input_type && !first_has_n_in {
        obj.insert("input_type".into(), input);
    }
}

fn fill_graph(obj: &mut serde_json::Map<String, Value>, input: Value, n_out: usize) {
    let one_input = obj
        .get("inputs")
        .and_then(Value::as_array)
        .is_some_and(|i| i.len() == 1);
    let no_types = obj
        .get("input_types")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if one_input && no_types {
        obj.insert("input_types".into(), json!([input]));
    }
    let outputs: Vec<String> = obj
        .get("outputs")
        .and_then(Value::as_array)
        .map(|o| {
            o.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if outputs.len() != 1 {
        return;
    }
    let Some(vertices) = obj.get_mut("vertices").and_then(Value::as_array_mut) else {
        return;
    };
    for v in vertices {
        if v.get("name").and_then(Value::as_str) == Some(outputs[0].as_str())
            && let Some(layer) = v.get_mut("vertex").and_then(|x| x.get_mut("layer"))
            && is_output_layer(layer)
            && layer.get("n_out").is_none_or(Value::is_null)
        {
            layer["n_out"] = json!(n_out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/configs")
            .join(name)
    }

    #[test]
    fn shipped_configurations_load_sized_from_the_data() {
        let rows = InputType::feed_forward(784);
        let lenet = load(&shipped("lenet.json"), rows, 10, None).unwrap();
        // conv 5x5x20, conv 5x5x50, dense 800-500, output 500-10.
        assert_eq!(lenet.num_params(), 520 + 25_050 + 400_500 + 5_010);
        let mlp = load(&shipped("mlp.json"), rows, 10, Some(WorkspaceMode::None)).unwrap();
        assert_eq!(mlp.num_params(), 235_146);
        assert_eq!(
            mlp.global_conf().training_workspace_mode,
            WorkspaceMode::None
        );
        let graph = load(&shipped("residual.json"), rows, 10, None).unwrap();
        assert_eq!(graph.output_types()[0].1.flat_size(), 10);
        assert_eq!(graph.input_types()[0].1.flat_size(), 784);
        // Two stacked LSTMs of 48 over 28 channels per step, the second read at its last step.
        let lstm = load(&shipped("lstm.json"), InputType::recurrent(28), 10, None).unwrap();
        assert_eq!(
            lstm.num_params(),
            4 * 48 * (28 + 48 + 1) + 4 * 48 * (48 + 48 + 1) + 490
        );
        assert_eq!(lstm.input_types()[0].1, InputType::recurrent(28));
        assert_eq!(lstm.output_types()[0].1, InputType::feed_forward(10));
        // A bidirectional GRU of 32 (concat: 64 per step) under a GRU of 48 read at its last
        // step; a GRU of n over m has W [m, 3n], RW [n, 3n] and 4n biases.
        let gru = |m: usize, n: usize| 3 * n * (m + n) + 4 * n;
        let bigru = load(&shipped("bigru.json"), InputType::recurrent(28), 10, None).unwrap();
        assert_eq!(bigru.num_params(), 2 * gru(28, 32) + gru(64, 48) + 490);
        assert_eq!(bigru.output_types()[0].1, InputType::feed_forward(10));
        // An LSTM of 48 with a per-step softmax head (for --tbptt).
        let per_step = load(
            &shipped("lstm-per-step.json"),
            InputType::recurrent(28),
            10,
            None,
        )
        .unwrap();
        assert_eq!(per_step.num_params(), 4 * 48 * (28 + 48 + 1) + 490);
        assert_eq!(per_step.output_types()[0].1, InputType::recurrent(10));
    }
}
