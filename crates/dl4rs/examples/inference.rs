//! Allocation-free inference: write the network's output into a workspace you own, cycle after
//! cycle, and compare with `output()`, which returns a detached (heap) array.
//!
//! `cargo run --release -p dl4rs --example inference`

use dl4rs::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let conf = NeuralNetConfiguration::builder()
        .seed(7)
        .list()
        .layer(LayerConf::dense(128).n_in(784).activation(Activation::Relu))
        .layer(LayerConf::output(LossFunction::Mcxent, 10).activation(Activation::Softmax))
        .build()?;
    let mut net = MultiLayerNetwork::<f32>::new(conf)?;
    let requests = NdArray::<f32>::rand_uniform(&[32, 784], 0.0, 1.0, 3)?;
    // A server's per-request workspace: grows to the largest batch, then serves from its block.
    let cfg = WorkspaceConfig::builder()
        .policy_spill(SpillPolicy::Reallocate)
        .build()?;
    let ws = get_workspace_for_current_thread(&cfg, "REQUEST")?;
    for batch in [1usize, 8, 32, 8, 1] {
        let _request = ws.notify_scope_entered()?;
        let x = requests.view().slice_axis(0, 0, batch, 1)?;
        let probabilities = net.output_in(&x, false, &ws)?; // lives in REQUEST
        let classes = probabilities.argmax(1)?;
        println!("batch {batch:>2}: first class {}", classes.get(&[0])?);
    } // each request's arrays die here; nothing reached the heap after the first ones
    let detached = net.output(&requests, false)?; // the convenient form: one heap array
    println!("detached output: {:?}", detached.shape());
    println!("{}", allocation_report());
    Ok(())
}
