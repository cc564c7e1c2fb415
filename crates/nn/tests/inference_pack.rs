//! Dense layers keep W packed for inference between weight updates. The cache must never be
//! seen: inference gives the bits of a network that never cached anything, and any change of
//! the weights (set_params, a write through params_mut, a training step, a model loaded
//! into the network) is seen by the next call. f32 and f64, batch sizes that read the cache
//! and ones that don't (one row, the narrow output layer).

use dl4rs_array::{AsView, DataType, NdArray};
use dl4rs_nn::*;

fn conf() -> MultiLayerConfiguration {
    NeuralNetConfiguration::builder()
        .seed(7)
        .updater(Updater::sgd(0.1))
        .list()
        .layer(
            LayerConf::dense(48)
                .n_in(20)
                .activation(Activation::Relu)
                .build(),
        )
        .layer(LayerConf::dense(40).activation(Activation::Tanh).build())
        .layer(
            LayerConf::output(LossFunction::Mcxent, 10)
                .activation(Activation::Softmax)
                .build(),
        )
        .build()
        .unwrap()
}

fn bits<T: DataType>(a: &NdArray<T>) -> Vec<u64> {
    a.to_vec()
        .unwrap()
        .iter()
        .map(|v| v.to_f64().to_bits())
        .collect()
}

/// The output of a network made afresh with `params` (it has cached nothing).
fn fresh_output<T: DataType>(params: &NdArray<T>, x: &NdArray<T>) -> Vec<u64> {
    let mut net = MultiLayerNetwork::<T>::new(conf()).unwrap();
    net.set_params(&params.view()).unwrap();
    bits(&net.output(x, false).unwrap())
}

fn labels<T: DataType>(batch: usize) -> NdArray<T> {
    let mut y = vec![T::from_f64(0.0); batch * 10];
    for r in 0..batch {
        y[r * 10 + (r * 7) % 10] = T::from_f64(1.0);
    }
    NdArray::from_slice_detached(&[batch, 10], &y).unwrap()
}

fn check<T: DataType>() {
    for batch in [1usize, 5, 16, 64] {
        let x = NdArray::<T>::rand_uniform(&[batch, 20], T::from_f64(-1.0), T::from_f64(1.0), 3)
            .unwrap();
        let mut net = MultiLayerNetwork::<T>::new(conf()).unwrap();
        let first = bits(&net.output(&x, false).unwrap());
        assert_eq!(
            first,
            bits(&net.output(&x, false).unwrap()),
            "batch {batch}: second call"
        );
        assert_eq!(
            first,
            fresh_output(net.params(), &x),
            "batch {batch}: vs a fresh network"
        );

        // set_params with other weights.
        let other = NdArray::<T>::rand_uniform(
            &[net.num_params()],
            T::from_f64(-0.5),
            T::from_f64(0.5),
            11,
        )
        .unwrap();
        net.set_params(&other.view()).unwrap();
        let after = bits(&net.output(&x, false).unwrap());
        assert_ne!(after, first, "batch {batch}: set_params not seen");
        assert_eq!(
            after,
            fresh_output(&other, &x),
            "batch {batch}: after set_params"
        );

        // A write through params_mut (the first weight of the first layer).
        {
            let mut w = net.params_mut().write().unwrap();
            w.as_slice_mut().unwrap()[0] = T::from_f64(3.0);
        }
        let written = bits(&net.output(&x, false).unwrap());
        assert_eq!(
            written,
            fresh_output(net.params(), &x),
            "batch {batch}: params_mut write"
        );

        // A training step.
        net.fit_arrays(&x, &labels::<T>(batch)).unwrap();
        let trained = bits(&net.output(&x, false).unwrap());
        assert_ne!(trained, written, "batch {batch}: the step changed nothing?");
        assert_eq!(
            trained,
            fresh_output(net.params(), &x),
            "batch {batch}: after fit"
        );
    }
}

#[test]
fn cached_packing_is_never_stale_f32() {
    check::<f32>();
}

#[test]
fn cached_packing_is_never_stale_f64() {
    check::<f64>();
}
