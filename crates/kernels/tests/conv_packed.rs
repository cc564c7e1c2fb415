//! im2col straight into gemm's packed layout, on every dispatch path the CPU has, f32 and
//! f64, against im2col + `pack_b` and im2col + `gemm`:
//!
//! * `im2col_packed` writes exactly the elements `pack_b` makes of `im2col_batch`'s matrix,
//!   and `im2col_packed_t` exactly those of its transpose (padding, stride, dilation, several
//!   images, 1 and 2 threads);
//! * `gemm_prepacked` on them gives `gemm`'s bits on the column matrix (m >= 2; m == 1 runs
//!   on the tiles and is checked against an f64 reference);
//! * `conv2d_forward` gives the bits of `gemm(W, im2col(image)) + b` per image, for 1 thread
//!   and a team of 2;
//! * `conv2d_input_grad` gives `col2im(gemm(Wᵀ, dz_j))`'s bits per image, 1 thread and a team;
//! * `conv2d_weight_grad` gives `gemm(dz, colsᵀ)`'s bits on both of its paths, and
//!   `to_channel_major` is the transpose of images and channels.

mod common;
use common::{bits, fill, lock, team2};

use dl4rs_kernels::{
    Conv2dGeometry, Dispatch, Float, MatMut, MatRef, Parallelism, available_dispatches, col2im,
    conv2d_forward, conv2d_forward_scratch_len, conv2d_input_grad, conv2d_input_grad_scratch_len,
    conv2d_weight_grad, conv2d_weight_grad_scratch_len, gemm, gemm_prepacked,
    gemm_prepacked_scratch_len, gemm_scratch_len, im2col_batch, im2col_packed, im2col_packed_len,
    im2col_packed_t, im2col_packed_t_len, pack_b, packed_b_len, set_dispatch, to_channel_major,
};

/// (geometry, images): LeNet's two layers, and shapes with padding (also uneven), stride,
/// dilation, a kernel wider than the tile, more than one KC block of taps, and a single
/// output column per row.
fn cases() -> Vec<(Conv2dGeometry, usize)> {
    let mut odd = Conv2dGeometry::square(2, 7, 9, 3, 2, 1, 1);
    odd.pad_h_end = 2;
    odd.pad_w_end = 0;
    let mut wide = Conv2dGeometry::square(1, 6, 40, 1, 1, 0, 1);
    wide.kernel_w = 37;
    vec![
        (Conv2dGeometry::square(1, 28, 28, 5, 1, 0, 1), 3),
        (Conv2dGeometry::square(20, 12, 12, 5, 1, 0, 1), 2),
        (Conv2dGeometry::square(3, 8, 8, 3, 1, 1, 1), 2),
        (odd, 3),
        (Conv2dGeometry::square(2, 9, 9, 3, 1, 2, 2), 1),
        (Conv2dGeometry::square(30, 5, 5, 3, 1, 1, 1), 2),
        (wide, 2),
        (Conv2dGeometry::square(4, 5, 1, 1, 1, 0, 1), 5),
    ]
}

fn ohw(g: &Conv2dGeometry) -> usize {
    let (oh, ow) = g.output_size().unwrap();
    oh * ow
}

fn taps(g: &Conv2dGeometry) -> usize {
    g.channels * g.kernel_h * g.kernel_w
}

fn checks<T: Float>(path: &str) {
    for (ci, (g, images)) in cases().into_iter().enumerate() {
        let x = fill::<T>(images * g.input_len(), 7 + ci as u64);
        let (k, n) = (taps(&g), images * ohw(&g));
        let mut cols = vec![T::ZERO; k * n];
        im2col_batch(&x, images, &g, &mut cols, Parallelism::None).unwrap();
        let cm = MatRef::row_major(&cols, k, n).unwrap();

        // The packed column matrix, and its transpose.
        let sentinel = T::from_f64(f64::NAN);
        let mut want = vec![sentinel; packed_b_len::<T>(k, n)];
        pack_b(cm, &mut want).unwrap();
        let mut got = vec![sentinel; im2col_packed_len::<T>(&g, images).unwrap()];
        let packed = im2col_packed(&x, images, &g, &mut got).unwrap();
        assert_eq!(packed.info().shape(), (k, n));
        assert_eq!(bits(&got), bits(&want), "{path} case {ci}: im2col_packed");
        let mut want_t = vec![sentinel; packed_b_len::<T>(n, k)];
        pack_b(cm.t(), &mut want_t).unwrap();
        for par in [Parallelism::None, Parallelism::Team(team2())] {
            let mut got_t = vec![sentinel; im2col_packed_t_len::<T>(&g, images).unwrap()];
            im2col_packed_t(&x, images, &g, &mut got_t, par).unwrap();
            assert_eq!(
                bits(&got_t),
                bits(&want_t),
                "{path} case {ci}: im2col_packed_t"
            );
        }

        // Products with them: gemm's bits on the column matrix.
        for m in [1, 2, 7, 20] {
            let w = fill::<T>(m * k, 3 + m as u64);
            let wm = MatRef::row_major(&w, m, k).unwrap();
            let mut c_ref = vec![T::ZERO; m * n];
            let mut scratch = vec![T::ZERO; gemm_scratch_len::<T>(m, n, k, Parallelism::None)];
            gemm(
                T::ONE,
                wm,
                cm,
                T::ZERO,
                MatMut::row_major(&mut c_ref, m, n).unwrap(),
                &mut scratch,
                Parallelism::None,
            )
            .unwrap();
            let packed = im2col_packed(&x, images, &g, &mut got).unwrap();
            let mut c = vec![T::ZERO; m * n];
            let mut scratch =
                vec![T::ZERO; gemm_prepacked_scratch_len::<T>(m, n, k, Parallelism::None)];
            gemm_prepacked(
                T::ONE,
                wm,
                &packed,
                T::ZERO,
                MatMut::row_major(&mut c, m, n).unwrap(),
                &mut scratch,
                Parallelism::None,
            )
            .unwrap();
            if m == 1 {
                // One row runs on the tiles here, the row-vector loop in gemm: same sums.
                for (a, b) in c.iter().zip(&c_ref) {
                    assert!(
                        (a.to_f64() - b.to_f64()).abs() < 1e-4,
                        "{path} case {ci} m=1"
                    );
                }
            } else {
                assert_eq!(bits(&c), bits(&c_ref), "{path} case {ci}: m={m}");
            }
            // The weight gradient dz · colsᵀ with colsᵀ packed.
            let dz = fill::<T>(m * n, 11 + m as u64);
            let dzm = MatRef::row_major(&dz, m, n).unwrap();
            let mut dw_ref = vec![T::ZERO; m * k];
            let mut scratch = vec![T::ZERO; gemm_scratch_len::<T>(m, k, n, Parallelism::None)];
            gemm(
                T::ONE,
                dzm,
                cm.t(),
                T::ZERO,
                MatMut::row_major(&mut dw_ref, m, k).unwrap(),
                &mut scratch,
                Parallelism::None,
            )
            .unwrap();
            let mut buf = vec![T::ZERO; im2col_packed_t_len::<T>(&g, images).unwrap()];
            let packed_t = im2col_packed_t(&x, images, &g, &mut buf, Parallelism::None).unwrap();
            for par in [Parallelism::None, Parallelism::Team(team2())] {
                let mut dw = vec![T::ZERO; m * k];
                let mut scratch = vec![T::ZERO; gemm_prepacked_scratch_len::<T>(m, k, n, par)];
                gemm_prepacked(
                    T::ONE,
                    dzm,
                    &packed_t,
                    T::ZERO,
                    MatMut::row_major(&mut dw, m, k).unwrap(),
                    &mut scratch,
                    par,
                )
                .unwrap();
                if m == 1 {
                    for (a, b) in dw.iter().zip(&dw_ref) {
                        assert!(
                            (a.to_f64() - b.to_f64()).abs() < 1e-3,
                            "{path} case {ci} m=1"
                        );
                    }
                } else {
                    assert_eq!(bits(&dw), bits(&dw_ref), "{path} case {ci}: dW m={m}");
                }
            }
            if m >= 2 {
                // The layer's entry: either path, accumulating with beta = 1 as well.
                for par in [Parallelism::None, Parallelism::Team(team2())] {
                    let len = conv2d_weight_grad_scratch_len::<T>(&g, images, m, par).unwrap();
                    let mut scratch = vec![T::ZERO; len];
                    let mut dw = vec![T::from_f64(f64::NAN); m * k];
                    for beta in [T::ZERO, T::ONE] {
                        conv2d_weight_grad(
                            &x,
                            images,
                            &g,
                            dzm,
                            beta,
                            MatMut::row_major(&mut dw, m, k).unwrap(),
                            &mut scratch,
                            par,
                        )
                        .unwrap();
                    }
                    let mut want = dw_ref.clone();
                    let mut scratch = vec![T::ZERO; gemm_scratch_len::<T>(m, k, n, par)];
                    gemm(
                        T::ONE,
                        dzm,
                        cm.t(),
                        T::ONE,
                        MatMut::row_major(&mut want, m, k).unwrap(),
                        &mut scratch,
                        Parallelism::None,
                    )
                    .unwrap();
                    assert_eq!(
                        bits(&dw),
                        bits(&want),
                        "{path} case {ci}: conv2d_weight_grad"
                    );
                }
            }
        }

        // The forward convolution of the batch, bias on and off, 1 thread and a team.
        let oc = 20;
        let w = fill::<T>(oc * k, 5);
        let wm = MatRef::row_major(&w, oc, k).unwrap();
        let b = fill::<T>(oc, 6);
        for bias in [None, Some(&b[..])] {
            let p = ohw(&g);
            let mut want = vec![T::ZERO; images * oc * p];
            for j in 0..images {
                let mut cj = vec![T::ZERO; k * p];
                im2col_batch(
                    &x[j * g.input_len()..(j + 1) * g.input_len()],
                    1,
                    &g,
                    &mut cj,
                    Parallelism::None,
                )
                .unwrap();
                let mut scratch = vec![T::ZERO; gemm_scratch_len::<T>(oc, p, k, Parallelism::None)];
                let out_j = &mut want[j * oc * p..(j + 1) * oc * p];
                gemm(
                    T::ONE,
                    wm,
                    MatRef::row_major(&cj, k, p).unwrap(),
                    T::ZERO,
                    MatMut::row_major(out_j, oc, p).unwrap(),
                    &mut scratch,
                    Parallelism::None,
                )
                .unwrap();
                if let Some(b) = bias {
                    for (o, row) in out_j.chunks_exact_mut(p).enumerate() {
                        row.iter_mut().for_each(|v| *v += b[o]);
                    }
                }
            }
            for par in [Parallelism::None, Parallelism::Team(team2())] {
                let mut out = vec![T::from_f64(f64::NAN); images * oc * p];
                let mut scratch =
                    vec![T::ZERO; conv2d_forward_scratch_len::<T>(&g, oc, par).unwrap()];
                conv2d_forward(&x, images, &g, wm, bias, &mut out, &mut scratch, par).unwrap();
                assert_eq!(bits(&out), bits(&want), "{path} case {ci}: conv2d_forward");
                // Too little scratch is an error, not a wrong result.
                let short = scratch.len() - 1;
                assert!(
                    conv2d_forward(
                        &x,
                        images,
                        &g,
                        wm,
                        bias,
                        &mut out,
                        &mut scratch[..short],
                        par
                    )
                    .is_err()
                );
            }
        }
    }
}

/// `conv2d_input_grad` against `col2im(gemm(Wᵀ, dz_j))` per image, bit for bit.
fn input_grad_checks<T: Float>(path: &str) {
    for (ci, (g, images)) in cases().into_iter().enumerate() {
        let (k, p, oc) = (taps(&g), ohw(&g), 7);
        let w = fill::<T>(oc * k, 21);
        let wm = MatRef::row_major(&w, oc, k).unwrap();
        let dz = fill::<T>(images * oc * p, 22 + ci as u64);
        let mut want = vec![T::ZERO; images * g.input_len()];
        for j in 0..images {
            let mut cols = vec![T::ZERO; k * p];
            let mut scratch = vec![T::ZERO; gemm_scratch_len::<T>(k, p, oc, Parallelism::None)];
            gemm(
                T::ONE,
                wm.t(),
                MatRef::row_major(&dz[j * oc * p..(j + 1) * oc * p], oc, p).unwrap(),
                T::ZERO,
                MatMut::row_major(&mut cols, k, p).unwrap(),
                &mut scratch,
                Parallelism::None,
            )
            .unwrap();
            col2im(
                &cols,
                &g,
                &mut want[j * g.input_len()..(j + 1) * g.input_len()],
            )
            .unwrap();
        }
        for par in [Parallelism::None, Parallelism::Team(team2())] {
            let mut dx = vec![T::from_f64(f64::NAN); images * g.input_len()];
            let len = conv2d_input_grad_scratch_len::<T>(&g, oc, par).unwrap();
            let mut scratch = vec![T::ZERO; len];
            conv2d_input_grad(&dz, images, &g, wm, &mut dx, &mut scratch, par).unwrap();
            assert_eq!(
                bits(&dx),
                bits(&want),
                "{path} case {ci}: conv2d_input_grad"
            );
            assert!(
                conv2d_input_grad(&dz, images, &g, wm, &mut dx, &mut scratch[..len - 1], par)
                    .is_err()
            );
        }
    }
}

#[test]
fn packed_im2col_matches_im2col_and_pack_on_every_path() {
    let _l = lock();
    for &d in available_dispatches() {
        set_dispatch(d).unwrap();
        checks::<f32>(&format!("{d:?} f32"));
        checks::<f64>(&format!("{d:?} f64"));
        input_grad_checks::<f32>(&format!("{d:?} f32"));
        input_grad_checks::<f64>(&format!("{d:?} f64"));
    }
    set_dispatch(Dispatch::Auto).unwrap();
}

#[test]
fn a_packed_matrix_from_another_path_is_refused() {
    let _l = lock();
    let paths = available_dispatches();
    if paths.len() < 2 {
        eprintln!("only one dispatch path on this CPU: nothing to check");
        return;
    }
    let g = Conv2dGeometry::square(1, 6, 6, 3, 1, 0, 1);
    let x = fill::<f32>(g.input_len(), 1);
    let mut buf = vec![0.0f32; im2col_packed_len::<f32>(&g, 1).unwrap()];
    set_dispatch(paths[0]).unwrap();
    let packed = im2col_packed(&x, 1, &g, &mut buf).unwrap();
    set_dispatch(paths[1]).unwrap();
    let w = fill::<f32>(2 * 9, 2);
    let mut c = vec![0.0f32; 2 * 16];
    let mut scratch = vec![0.0f32; gemm_prepacked_scratch_len::<f32>(2, 16, 9, Parallelism::None)];
    let r = gemm_prepacked(
        1.0,
        MatRef::row_major(&w, 2, 9).unwrap(),
        &packed,
        0.0,
        MatMut::row_major(&mut c, 2, 16).unwrap(),
        &mut scratch,
        Parallelism::None,
    );
    set_dispatch(Dispatch::Auto).unwrap();
    assert!(r.is_err());
}

#[test]
fn channel_major_is_the_transpose_of_images_and_channels() {
    let (n, c, plane) = (3, 5, 7000);
    let x = fill::<f32>(n * c * plane, 9);
    for par in [Parallelism::None, Parallelism::Team(team2())] {
        let mut out = vec![f32::NAN; n * c * plane];
        to_channel_major(&x, n, c, plane, &mut out, par).unwrap();
        for j in 0..n {
            for ch in 0..c {
                for p in 0..plane {
                    assert_eq!(
                        out[ch * n * plane + j * plane + p],
                        x[(j * c + ch) * plane + p]
                    );
                }
            }
        }
    }
    assert!(to_channel_major(&x, n, c, plane, &mut [0.0f32; 3], Parallelism::None).is_err());
}
