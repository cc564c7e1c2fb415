//! The convolution and pooling ops on arrays: the batched im2col equals per-image im2col,
//! pooling checks its input shape, and products, im2col and pooling give the same bits on
//! one product thread and on a thread's team.

use dl4rs_array::ops::{
    self, Conv2dGeometry, PoolOp, ProductThreads, im2col_batch_into, im2col_into, pool2d_into,
    set_product_threads,
};
use dl4rs_array::{AsView, NdArray};

#[test]
fn batched_im2col_lays_each_image_in_its_columns() {
    let g = Conv2dGeometry::square(3, 9, 8, 3, 2, 1, 1);
    let (oh, ow) = g.output_size().unwrap();
    let (taps, ohw, n) = (27, oh * ow, 4);
    let x = NdArray::<f32>::rand_uniform(&[n, 3, 9, 8], -1.0, 1.0, 5).unwrap();
    let mut cols = NdArray::<f32>::zeros(&[taps, n * ohw]).unwrap();
    im2col_batch_into(&x, &g, &mut cols).unwrap();
    let all = cols.to_vec().unwrap();
    for j in 0..n {
        let mut one = NdArray::<f32>::zeros(&[taps, ohw]).unwrap();
        im2col_into(&x.view().index_axis(0, j).unwrap(), &g, &mut one).unwrap();
        let one = one.to_vec().unwrap();
        for r in 0..taps {
            assert_eq!(
                &all[r * n * ohw + j * ohw..][..ohw],
                &one[r * ohw..(r + 1) * ohw]
            );
        }
    }
}

#[test]
fn pooling_names_the_expected_and_found_shapes() {
    let g = Conv2dGeometry::square(2, 6, 6, 2, 2, 0, 1);
    let x = NdArray::<f32>::zeros(&[4, 3, 6, 6]).unwrap();
    let mut y = NdArray::<f32>::zeros(&[4, 2, 3, 3]).unwrap();
    let e = pool2d_into(PoolOp::Max, &x, &g, &mut y)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("[batch, 2, 6, 6]") && e.contains("[4, 3, 6, 6]"),
        "{e}"
    );
}

/// A LeNet-sized step's ops on the calling thread alone, then on its team of 2 and 3.
fn run(threads: usize) -> Vec<Vec<f32>> {
    set_product_threads(ProductThreads::Fixed(threads));
    let g = Conv2dGeometry::square(20, 12, 12, 5, 1, 0, 1);
    let x = NdArray::<f32>::rand_uniform(&[16, 20, 12, 12], -1.0, 1.0, 7).unwrap();
    let w = NdArray::<f32>::rand_uniform(&[50, 500], -1.0, 1.0, 8).unwrap();
    let mut cols = NdArray::<f32>::zeros(&[500, 16 * 64]).unwrap();
    im2col_batch_into(&x, &g, &mut cols).unwrap();
    let z = ops::matmul(&w, &cols).unwrap();
    let mut dx = NdArray::<f32>::zeros(&[16, 20, 12, 12]).unwrap();
    ops::col2im_batch_into(&cols, &g, &mut dx).unwrap();
    let p = Conv2dGeometry::square(20, 12, 12, 2, 2, 0, 1);
    let mut y = NdArray::<f32>::zeros(&[16, 20, 6, 6]).unwrap();
    pool2d_into(PoolOp::Max, &x, &p, &mut y).unwrap();
    let mut dp = NdArray::<f32>::zeros(&[16, 20, 12, 12]).unwrap();
    ops::pool2d_backward_into(PoolOp::Max, &x, &y, &y, &p, &mut dp).unwrap();
    set_product_threads(ProductThreads::Auto);
    [cols, z, dx, y, dp]
        .iter()
        .map(|a| a.to_vec().unwrap())
        .collect()
}

#[test]
fn one_thread_and_a_team_give_the_same_bits() {
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
}
