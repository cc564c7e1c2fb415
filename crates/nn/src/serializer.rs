//! Model files: one safetensors file holding the configuration (JSON, in the metadata), one
//! tensor per parameter under DL4J's key (`"0_W"`, `"0_b"`, `"dense1_W"`) in the parameter's
//! natural shape — so `safetensors` in Python loads each weight by name — and optionally the
//! updater state, layer state (batch-norm running statistics, `"1.running_mean"`) and a fitted
//! normalizer. Both kinds of network use the same format; [`ModelSerializer::restore`] tells
//! them apart. Files of the first format (one flat `"params"` tensor) still load.
//!
//! Everything is checked before it is used: format, kind, dtype, the configuration, every
//! tensor's dtype and shape against the configuration. Corrupt, truncated or mismatched files
//! are errors naming the file and what was wrong; writes are crash-safe
//! ([`crate::atomic_file`]).

use std::collections::HashMap;
use std::path::Path;

use dl4rs_array::{DataType, NdArray};
use dl4rs_data::normalizer::Normalizer;
use safetensors::SafeTensorError;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::atomic_file::write_atomic;
use crate::conf::{ComputationGraphConfiguration, MultiLayerConfiguration};
use crate::error::NnError;
use crate::graph::ComputationGraph;
use crate::model::{Model, ModelKind};
use crate::multi_layer::MultiLayerNetwork;

const FORMAT_MLN: &str = "dl4rs-multilayer-network";
const FORMAT_GRAPH: &str = "dl4rs-computation-graph";
const VERSION: &str = "2";

/// Writes and restores networks (DL4J's `ModelSerializer`).
pub struct ModelSerializer;

/// A network read from a model file, of whichever kind the file holds.
pub enum RestoredModel<T: DataType> {
    /// A [`MultiLayerNetwork`].
    MultiLayer(MultiLayerNetwork<T>),
    /// A [`ComputationGraph`].
    Graph(ComputationGraph<T>),
}

impl<T: DataType> RestoredModel<T> {
    /// As a [`Model`].
    pub fn into_model(self) -> Box<dyn Model<T>> {
        match self {
            RestoredModel::MultiLayer(m) => Box::new(m),
            RestoredModel::Graph(g) => Box::new(g),
        }
    }

    /// The model, borrowed.
    pub fn as_model_mut(&mut self) -> &mut dyn Model<T> {
        match self {
            RestoredModel::MultiLayer(m) => m,
            RestoredModel::Graph(g) => g,
        }
    }
}

fn dtype_name<T: DataType>() -> &'static str {
    if size_of::<T>() == 4 { "f32" } else { "f64" }
}

fn to_bytes<T: DataType>(values: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(std::mem::size_of_val(values));
    for v in values {
        if size_of::<T>() == 4 {
            out.extend_from_slice(&(v.to_f64() as f32).to_le_bytes());
        } else {
            out.extend_from_slice(&v.to_f64().to_le_bytes());
        }
    }
    out
}

fn from_bytes<T: DataType>(bytes: &[u8]) -> Vec<T> {
    if size_of::<T>() == 4 {
        bytes
            .chunks_exact(4)
            .map(|c| T::from_f64(f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))))
            .collect()
    } else {
        bytes
            .chunks_exact(8)
            .map(|c| T::from_f64(f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))))
            .collect()
    }
}

fn dtype<T: DataType>() -> Dtype {
    if size_of::<T>() == 4 {
        Dtype::F32
    } else {
        Dtype::F64
    }
}

impl ModelSerializer {
    /// The model file's bytes.
    pub fn to_bytes<T: DataType>(
        net: &dyn Model<T>,
        save_updater: bool,
    ) -> Result<Vec<u8>, NnError> {
        Self::encode(net, save_updater, None)
    }

    /// The model file's bytes with a fitted normalizer stored beside the network (inference
    /// must apply it to raw inputs: [`ModelSerializer::restore_normalizer`]).
    pub fn to_bytes_with_normalizer<T: DataType>(
        net: &dyn Model<T>,
        save_updater: bool,
        normalizer: Option<&Normalizer>,
    ) -> Result<Vec<u8>, NnError> {
        Self::encode(net, save_updater, normalizer)
    }

    fn encode<T: DataType>(
        net: &dyn Model<T>,
        save_updater: bool,
        normalizer: Option<&Normalizer>,
    ) -> Result<Vec<u8>, NnError> {
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        let params = net.params().to_vec()?;
        for entry in net.param_table() {
            tensors.push((
                entry.key.clone(),
                entry.shape.clone(),
                to_bytes(&params[entry.range.clone()]),
            ));
        }
        if save_updater {
            let state = net.updater_state().to_vec()?;
            if !state.is_empty() {
                tensors.push(("updater_state".into(), vec![state.len()], to_bytes(&state)));
            }
        }
        for (key, values) in net.layer_states() {
            tensors.push((key, vec![values.len()], to_bytes(&values)));
        }
        let views = tensors
            .iter()
            .map(|(name, shape, data)| {
                TensorView::new(dtype::<T>(), shape.clone(), data)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| NnError::Input(format!("model file: tensor {name}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut meta = HashMap::new();
        let format = match net.kind() {
            ModelKind::MultiLayerNetwork => FORMAT_MLN,
            ModelKind::ComputationGraph => FORMAT_GRAPH,
        };
        meta.insert("format".to_string(), format.to_string());
        meta.insert("version".to_string(), VERSION.to_string());
        meta.insert("dtype".to_string(), dtype_name::<T>().to_string());
        meta.insert("iteration".to_string(), net.iteration_count().to_string());
        meta.insert("epoch".to_string(), net.epoch_count().to_string());
        meta.insert("configuration".to_string(), net.conf_json()?);
        if let Some(n) = normalizer {
            meta.insert("normalizer".to_string(), n.to_json()?);
        }
        safetensors::serialize(views, Some(meta))
            .map_err(|e| NnError::Input(format!("model file: can't serialize: {e}")))
    }

    /// Writes the model to `path` crash-safely; with `save_updater` the updater state too, so
    /// training can resume exactly.
    pub fn write_model<T: DataType>(
        net: &dyn Model<T>,
        path: impl AsRef<Path>,
        save_updater: bool,
    ) -> Result<(), NnError> {
        write_atomic(path.as_ref(), &Self::to_bytes(net, save_updater)?)
    }

    /// Writes the model and a fitted normalizer to `path` crash-safely.
    pub fn write_model_with_normalizer<T: DataType>(
        net: &dyn Model<T>,
        path: impl AsRef<Path>,
        save_updater: bool,
        normalizer: &Normalizer,
    ) -> Result<(), NnError> {
        write_atomic(
            path.as_ref(),
            &Self::encode(net, save_updater, Some(normalizer))?,
        )
    }

    fn read_file(path: &Path) -> Result<Vec<u8>, NnError> {
        std::fs::read(path).map_err(|e| NnError::File {
            path: path.display().to_string(),
            message: format!("can't read the model file: {e}"),
        })
    }

    /// The normalizer stored in a model file, if any.
    pub fn restore_normalizer(path: impl AsRef<Path>) -> Result<Option<Normalizer>, NnError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let bytes = Self::read_file(path)?;
        let meta = Self::metadata(&bytes, &name)?;
        match meta.get("normalizer") {
            None => Ok(None),
            Some(json) => Normalizer::from_json(json)
                .map(Some)
                .map_err(|e| NnError::File {
                    path: name,
                    message: format!("invalid normalizer in the model file: {e}"),
                }),
        }
    }

    /// Reads a model file of either kind.
    pub fn restore<T: DataType>(
        path: impl AsRef<Path>,
        load_updater: bool,
    ) -> Result<RestoredModel<T>, NnError> {
        let path = path.as_ref();
        Self::restore_from_bytes(
            &Self::read_file(path)?,
            &path.display().to_string(),
            load_updater,
        )
    }

    /// Reads a model file holding a [`MultiLayerNetwork`].
    pub fn restore_multi_layer_network<T: DataType>(
        path: impl AsRef<Path>,
        load_updater: bool,
    ) -> Result<MultiLayerNetwork<T>, NnError> {
        let path = path.as_ref();
        Self::from_bytes(
            &Self::read_file(path)?,
            &path.display().to_string(),
            load_updater,
        )
    }

    /// Reads a model file holding a [`ComputationGraph`].
    pub fn restore_computation_graph<T: DataType>(
        path: impl AsRef<Path>,
        load_updater: bool,
    ) -> Result<ComputationGraph<T>, NnError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        match Self::restore_from_bytes(&Self::read_file(path)?, &name, load_updater)? {
            RestoredModel::Graph(g) => Ok(g),
            RestoredModel::MultiLayer(_) => Err(NnError::File {
                path: name,
                message: "the file holds a MultiLayerNetwork, not a ComputationGraph: restore \
                          it with restore_multi_layer_network (or restore)"
                    .into(),
            }),
        }
    }

    /// Restores a [`MultiLayerNetwork`] from bytes; `name` labels errors.
    pub fn from_bytes<T: DataType>(
        bytes: &[u8],
        name: &str,
        load_updater: bool,
    ) -> Result<MultiLayerNetwork<T>, NnError> {
        match Self::restore_from_bytes(bytes, name, load_updater)? {
            RestoredModel::MultiLayer(m) => Ok(m),
            RestoredModel::Graph(_) => Err(NnError::File {
                path: name.to_string(),
                message: "the file holds a ComputationGraph, not a MultiLayerNetwork: restore \
                          it with restore_computation_graph (or restore)"
                    .into(),
            }),
        }
    }

    fn metadata(bytes: &[u8], name: &str) -> Result<HashMap<String, String>, NnError> {
        let bad = |message: String| NnError::File {
            path: name.to_string(),
            message,
        };
        let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| match e {
            SafeTensorError::MetadataIncompleteBuffer | SafeTensorError::InvalidHeaderLength => {
                bad(format!(
                    "corrupt or truncated model file ({e}): write it again"
                ))
            }
            e => bad(format!(
                "not a dl4rs model file (unreadable safetensors header: {e})"
            )),
        })?;
        metadata.metadata().clone().ok_or_else(|| {
            bad("not a dl4rs model file: the safetensors header has no metadata".into())
        })
    }

    /// Restores a network of either kind from bytes; `name` labels errors.
    pub fn restore_from_bytes<T: DataType>(
        bytes: &[u8],
        name: &str,
        load_updater: bool,
    ) -> Result<RestoredModel<T>, NnError> {
        let bad = |message: String| NnError::File {
            path: name.to_string(),
            message,
        };
        let meta = Self::metadata(bytes, name)?;
        let format = meta.get("format").map(String::as_str);
        if format != Some(FORMAT_MLN) && format != Some(FORMAT_GRAPH) {
            return Err(bad(format!(
                "not a dl4rs model file: format {format:?}, expected {FORMAT_MLN:?} or \
                 {FORMAT_GRAPH:?}"
            )));
        }
        let stored = meta.get("dtype").map(String::as_str).unwrap_or("?");
        if stored != dtype_name::<T>() {
            return Err(bad(format!(
                "the model stores {stored} parameters but was restored as {}: restore it with \
                 the {stored} element type",
                dtype_name::<T>()
            )));
        }
        let json = meta
            .get("configuration")
            .ok_or_else(|| bad("the model file has no configuration".into()))?;
        let tensors = SafeTensors::deserialize(bytes)
            .map_err(|e| bad(format!("corrupt or truncated model file: {e}")))?;
        // The parameters the configuration claims must fit in the file before a network of
        // that size is built (a small file must not make the reader allocate terabytes).
        let fits = |layers: &mut dyn Iterator<Item = &crate::conf::LayerConf>| {
            let claimed = layers.fold(0usize, |acc, l| acc.saturating_add(l.num_params()));
            let needed = claimed.saturating_mul(size_of::<T>());
            if needed > bytes.len() {
                return Err(bad(format!(
                    "the configuration has {claimed} parameters ({needed} bytes of {}), but \
                     the file is only {} bytes long: corrupt or truncated model file",
                    dtype_name::<T>(),
                    bytes.len()
                )));
            }
            Ok(())
        };
        let mut model = if format == Some(FORMAT_MLN) {
            let conf = MultiLayerConfiguration::from_json(json)
                .map_err(|e| bad(format!("invalid configuration in the model file: {e}")))?;
            fits(&mut conf.layers.iter())?;
            RestoredModel::MultiLayer(MultiLayerNetwork::<T>::new(conf)?)
        } else {
            let conf = ComputationGraphConfiguration::from_json(json)
                .map_err(|e| bad(format!("invalid configuration in the model file: {e}")))?;
            fits(&mut conf.vertices.iter().filter_map(|v| match &v.vertex {
                crate::conf::VertexConf::Layer { layer, .. } => Some(layer),
                _ => None,
            }))?;
            RestoredModel::Graph(ComputationGraph::<T>::new(conf)?)
        };
        let net = model.as_model_mut();
        let read = |key: &str, shape: Option<&[usize]>| -> Result<Vec<T>, NnError> {
            let t = tensors
                .tensor(key)
                .map_err(|e| bad(format!("missing tensor {key:?}: {e}")))?;
            if t.dtype() != dtype::<T>() {
                return Err(bad(format!(
                    "tensor {key:?} has dtype {:?}, expected {:?}",
                    t.dtype(),
                    dtype::<T>()
                )));
            }
            if let Some(shape) = shape
                && t.shape() != shape
            {
                return Err(bad(format!(
                    "tensor {key:?} has shape {:?} but the configuration says {shape:?}",
                    t.shape()
                )));
            }
            Ok(from_bytes(t.data()))
        };
        let names = tensors.names();
        let params = if names.contains(&"params") {
            // The first format: one flat tensor.
            read("params", Some(&[net.num_params()])).map_err(|e| {
                bad(format!(
                    "{e} (the configuration has {} parameters)",
                    net.num_params()
                ))
            })?
        } else {
            let mut flat = vec![T::ZERO; net.num_params()];
            for entry in net.param_table() {
                let values = read(&entry.key, Some(&entry.shape))?;
                flat[entry.range.clone()].copy_from_slice(&values);
            }
            flat
        };
        net.set_params(&dl4rs_array::AsView::view(&NdArray::from_slice_detached(
            &[params.len()],
            &params,
        )?))?;
        if load_updater && names.contains(&"updater_state") {
            let state = read("updater_state", None)?;
            net.set_updater_state(&dl4rs_array::AsView::view(&NdArray::from_slice_detached(
                &[state.len()],
                &state,
            )?))
            .map_err(|e| bad(format!("updater state: {e}")))?;
        }
        for &tensor in &names {
            let Some((prefix, key)) = tensor.rsplit_once('.') else {
                continue;
            };
            // The first format named layer state "layer{i}.{key}".
            let prefix = prefix
                .strip_prefix("layer")
                .filter(|p| p.parse::<usize>().is_ok())
                .unwrap_or(prefix);
            let values = read(tensor, None)?;
            net.set_layer_state(&format!("{prefix}.{key}"), &values)
                .map_err(|e| bad(format!("tensor {tensor:?}: {e}")))?;
        }
        let number = |k: &str| meta.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        net.set_counters(number("iteration"), number("epoch"));
        Ok(model)
    }
}
