//! Explicit workspaces: run a loop in a workspace, keep a result with `detach()`, see a misuse
//! caught, and print the memory report.
//!
//! `cargo run --release -p dl4rs --example workspaces`

use dl4rs::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cfg = WorkspaceConfig::default();
    let weights = NdArray::<f32>::rand_uniform(&[64, 32], -0.1, 0.1, 1)?; // heap: lives on
    let mut kept = None;
    let mut leaked = None;
    for i in 0..5 {
        let _cycle = get_and_activate_workspace(&cfg, "LOOP")?;
        let x = NdArray::<f32>::full(&[8, 64], i as f32)?; // in the workspace
        let y = x.matmul(&weights)?.relu()?; // so is every result
        if i == 4 {
            kept = Some(y.view().detach()?); // a heap copy survives the cycle
        }
        leaked = Some(y); // an attached array kept past its cycle ...
    }
    // ... is refused with an explanation instead of showing reused memory:
    if let Err(e) = leaked.expect("set in the loop").to_vec() {
        println!("misuse caught:\n{e}\n");
    }
    println!("kept: {:?}", kept.expect("set in the loop"));
    println!("{}", allocation_report());
    Ok(())
}
