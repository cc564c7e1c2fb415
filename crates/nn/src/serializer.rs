//! Model files: the configuration as JSON and the parameters (optionally the updater state,
//! and layer state such as batch-norm running statistics) as safetensors tensors, in one
//! safetensors file. Corrupt, truncated or mismatched files are errors naming the file and
//! what was wrong; writes are atomic (temporary file, fsync, rename).

use std::collections::HashMap;
use std::path::Path;

use dl4rs_array::{DataType, NdArray};
use dl4rs_data::normalizer::Normalizer;
use safetensors::SafeTensorError;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::conf::MultiLayerConfiguration;
use crate::error::NnError;
use crate::listeners::write_atomic;
use crate::network::MultiLayerNetwork;

const FORMAT: &str = "dl4rs-multilayer-network";
const VERSION: &str = "1";

/// Writes and restores [`MultiLayerNetwork`]s (DL4J's `ModelSerializer`).
pub struct ModelSerializer;

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

impl ModelSerializer {
    /// The model file's bytes.
    pub fn to_bytes<T: DataType>(
        net: &MultiLayerNetwork<T>,
        save_updater: bool,
    ) -> Result<Vec<u8>, NnError> {
        Self::encode(net, save_updater, None)
    }

    fn encode<T: DataType>(
        net: &MultiLayerNetwork<T>,
        save_updater: bool,
        normalizer: Option<&Normalizer>,
    ) -> Result<Vec<u8>, NnError> {
        let dtype = if size_of::<T>() == 4 {
            Dtype::F32
        } else {
            Dtype::F64
        };
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        tensors.push((
            "params".into(),
            vec![net.num_params()],
            to_bytes(&net.params().to_vec()?),
        ));
        if save_updater {
            let state = net.updater_state().to_vec()?;
            tensors.push(("updater_state".into(), vec![state.len()], to_bytes(&state)));
        }
        for (i, layer) in net.layers().iter().enumerate() {
            for (key, values) in layer.state() {
                tensors.push((
                    format!("layer{i}.{key}"),
                    vec![values.len()],
                    to_bytes(&values),
                ));
            }
        }
        let views = tensors
            .iter()
            .map(|(name, shape, data)| {
                TensorView::new(dtype, shape.clone(), data)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| NnError::Input(format!("model file: tensor {name}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), FORMAT.to_string());
        meta.insert("version".to_string(), VERSION.to_string());
        meta.insert("dtype".to_string(), dtype_name::<T>().to_string());
        meta.insert("iteration".to_string(), net.iteration_count().to_string());
        meta.insert("epoch".to_string(), net.epoch_count().to_string());
        meta.insert("configuration".to_string(), net.conf().to_json()?);
        if let Some(n) = normalizer {
            meta.insert("normalizer".to_string(), n.to_json()?);
        }
        safetensors::serialize(views, Some(meta))
            .map_err(|e| NnError::Input(format!("model file: can't serialize: {e}")))
    }

    /// The model file's bytes with a fitted normalizer stored beside the network (inference
    /// must apply it to raw inputs: [`ModelSerializer::restore_normalizer`]).
    pub fn to_bytes_with_normalizer<T: DataType>(
        net: &MultiLayerNetwork<T>,
        save_updater: bool,
        normalizer: Option<&Normalizer>,
    ) -> Result<Vec<u8>, NnError> {
        Self::encode(net, save_updater, normalizer)
    }

    /// Writes the model and a fitted normalizer to `path` atomically.
    pub fn write_model_with_normalizer<T: DataType>(
        net: &MultiLayerNetwork<T>,
        path: impl AsRef<Path>,
        save_updater: bool,
        normalizer: &Normalizer,
    ) -> Result<(), NnError> {
        write_atomic(
            path.as_ref(),
            &Self::encode(net, save_updater, Some(normalizer))?,
        )
    }

    /// The normalizer stored in a model file, if any.
    pub fn restore_normalizer(path: impl AsRef<Path>) -> Result<Option<Normalizer>, NnError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| NnError::File {
            path: name.clone(),
            message: format!("can't read the model file: {e}"),
        })?;
        let (_, metadata) = SafeTensors::read_metadata(&bytes).map_err(|e| NnError::File {
            path: name.clone(),
            message: format!("not a dl4rs model file (unreadable safetensors header: {e})"),
        })?;
        match metadata
            .metadata()
            .as_ref()
            .and_then(|m| m.get("normalizer"))
        {
            None => Ok(None),
            Some(json) => Normalizer::from_json(json)
                .map(Some)
                .map_err(|e| NnError::File {
                    path: name,
                    message: format!("invalid normalizer in the model file: {e}"),
                }),
        }
    }

    /// Writes the model to `path` atomically; with `save_updater` the updater state too, so
    /// training can resume exactly.
    pub fn write_model<T: DataType>(
        net: &MultiLayerNetwork<T>,
        path: impl AsRef<Path>,
        save_updater: bool,
    ) -> Result<(), NnError> {
        write_atomic(path.as_ref(), &Self::to_bytes(net, save_updater)?)
    }

    /// Reads a model file written by [`ModelSerializer::write_model`].
    pub fn restore_multi_layer_network<T: DataType>(
        path: impl AsRef<Path>,
        load_updater: bool,
    ) -> Result<MultiLayerNetwork<T>, NnError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| NnError::File {
            path: path.display().to_string(),
            message: format!("can't read the model file: {e}"),
        })?;
        Self::from_bytes(&bytes, &path.display().to_string(), load_updater)
    }

    /// Restores a model from bytes; `name` labels errors.
    pub fn from_bytes<T: DataType>(
        bytes: &[u8],
        name: &str,
        load_updater: bool,
    ) -> Result<MultiLayerNetwork<T>, NnError> {
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
        let meta = metadata.metadata().as_ref().ok_or_else(|| {
            bad("not a dl4rs model file: the safetensors header has no metadata".into())
        })?;
        if meta.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(bad(format!(
                "not a dl4rs model file: format {:?}, expected {FORMAT:?}",
                meta.get("format")
            )));
        }
        let stored = meta.get("dtype").map(String::as_str).unwrap_or("?");
        if stored != dtype_name::<T>() {
            return Err(bad(format!(
                "the model stores {stored} parameters but was restored as {}: restore it with \
                 MultiLayerNetwork::<{stored}>",
                dtype_name::<T>()
            )));
        }
        let json = meta
            .get("configuration")
            .ok_or_else(|| bad("the model file has no configuration".into()))?;
        let conf = MultiLayerConfiguration::from_json(json)
            .map_err(|e| bad(format!("invalid configuration in the model file: {e}")))?;
        let tensors = SafeTensors::deserialize(bytes)
            .map_err(|e| bad(format!("corrupt or truncated model file: {e}")))?;
        let mut net = MultiLayerNetwork::<T>::new(conf)?;
        let read = |key: &str| -> Result<Vec<T>, NnError> {
            let t = tensors
                .tensor(key)
                .map_err(|e| bad(format!("missing tensor {key:?}: {e}")))?;
            Ok(from_bytes(t.data()))
        };
        let params = read("params")?;
        if params.len() != net.num_params() {
            return Err(bad(format!(
                "the configuration has {} parameters but the file stores {}",
                net.num_params(),
                params.len()
            )));
        }
        net.set_params(&NdArray::from_slice_detached(&[params.len()], &params)?)?;
        if load_updater && tensors.names().contains(&"updater_state") {
            let state = read("updater_state")?;
            net.set_updater_state(&NdArray::from_slice_detached(&[state.len()], &state)?)
                .map_err(|e| bad(format!("updater state: {e}")))?;
        }
        for name in tensors.names() {
            if let Some(rest) = name.strip_prefix("layer")
                && let Some((index, key)) = rest.split_once('.')
            {
                let index: usize = index
                    .parse()
                    .map_err(|_| bad(format!("bad tensor name {name:?}")))?;
                let values = read(name)?;
                net.set_layer_state(index, key, &values)
                    .map_err(|e| bad(format!("tensor {name:?}: {e}")))?;
            }
        }
        let number = |k: &str| meta.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        net.set_counters(number("iteration"), number("epoch"));
        Ok(net)
    }
}
