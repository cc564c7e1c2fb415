//! Element-wise maps, reductions, softmax and im2col against scalar references, the
//! accuracy of the polynomial exp/tanh, alignment independence, and error messages.

mod common;
use common::{fill_scaled as fill, lock};

use dl4rs_kernels::{
    BinaryOp, Conv2dGeometry, Dispatch, Float, GradFrom, KernelTeam, Parallelism, PoolOp, Unary,
    argmax, argmax_cols, argmax_rows, available_dispatches, axpy, bias_act, binary, binary_assign,
    binary_col, binary_col_assign, binary_row, binary_row_assign, binary_scalar,
    binary_scalar_assign, col2im, col2im_batch, dot, im2col, im2col_batch, log_softmax_rows,
    log_softmax_rows_backward, max, max_cols, max_rows, pool2d, pool2d_backward, scale, scale_into,
    set_dispatch, softmax_rows, softmax_rows_backward, sum, sum_cols, sum_rows, unary,
    unary_assign, unary_grad, unary_grad_assign,
};

/// A scalar reference implementation in f64.
type Reference = fn(f64) -> f64;
/// A binary reference.
type BinReference = fn(f64, f64) -> f64;

/// Distance in units in the last place between two finite f32 of the same sign.
fn ulps(a: f32, b: f32) -> u32 {
    if a == b {
        return 0;
    }
    let key = |x: f32| {
        let i = x.to_bits() as i32;
        if i < 0 { i32::MIN.wrapping_sub(i) } else { i }
    };
    key(a).abs_diff(key(b))
}

#[test]
fn exp_f32_within_2_ulp_of_correctly_rounded() {
    let mut worst = 0;
    let n = 2_000_000;
    for i in 0..=n {
        let x = -87.0f32 + (88.7 + 87.0) * (i as f32 / n as f32);
        let want = (x as f64).exp() as f32;
        worst = worst.max(ulps(x.vexp(), want));
    }
    eprintln!("exp worst error {worst} ulp");
    assert!(worst <= 2, "exp worst error {worst} ulp");
    assert_eq!(f32::INFINITY.vexp(), f32::INFINITY);
    assert_eq!(f32::NEG_INFINITY.vexp(), 0.0);
    assert_eq!(100.0f32.vexp(), f32::INFINITY);
    assert_eq!(0.0f32.vexp(), 1.0);
    assert!(f32::NAN.vexp().is_nan());
}

#[test]
fn tanh_f32_within_4_ulp_of_correctly_rounded() {
    let mut worst = 0;
    let n = 2_000_000;
    for i in 0..=n {
        let x = -12.0f32 + 24.0 * (i as f32 / n as f32);
        let want = (x as f64).tanh() as f32;
        worst = worst.max(ulps(x.vtanh(), want));
    }
    // tiny arguments: tanh x = x
    for e in -40..-3 {
        let x = 2.0f32.powi(e) * 1.37;
        worst = worst.max(ulps(x.vtanh(), (x as f64).tanh() as f32));
    }
    eprintln!("tanh worst error {worst} ulp");
    assert!(worst <= 4, "tanh worst error {worst} ulp");
    assert_eq!(f32::INFINITY.vtanh(), 1.0);
    assert_eq!(f32::NEG_INFINITY.vtanh(), -1.0);
    assert!(f32::NAN.vtanh().is_nan());
}

fn unary_ops<T: Float>() -> Vec<(Unary<T>, Reference)> {
    vec![
        (Unary::Identity, |x| x),
        (Unary::Exp, f64::exp),
        (Unary::Ln, f64::ln),
        (Unary::Tanh, f64::tanh),
        (Unary::Sigmoid, |x| 1.0 / (1.0 + (-x).exp())),
        (Unary::Relu, |x| x.max(0.0)),
        (Unary::LeakyRelu(T::from_f64(0.1)), |x| {
            if x < 0.0 { 0.1 * x } else { x }
        }),
        (Unary::Elu(T::from_f64(1.5)), |x| {
            if x > 0.0 { x } else { 1.5 * x.exp_m1() }
        }),
        (Unary::Softplus, |x| x.exp().ln_1p()),
        (Unary::Gelu, |x| {
            0.5 * x
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
        }),
        (Unary::Abs, f64::abs),
        (Unary::Sqrt, f64::sqrt),
        (Unary::Square, |x| x * x),
    ]
}

fn check_unary<T: Float>(tol: f64) {
    let xs: Vec<T> = fill(1003, 5, 6.0);
    for (op, r) in unary_ops::<T>() {
        let input: Vec<T> = match op {
            Unary::Ln | Unary::Sqrt => xs.iter().map(|v| v.abs() + T::from_f64(1e-3)).collect(),
            _ => xs.clone(),
        };
        let mut out = vec![T::ZERO; input.len()];
        unary(op, &input, &mut out).unwrap();
        for (&x, &y) in input.iter().zip(&out) {
            let want = r(x.to_f64());
            // Elu near 0 subtracts 1 from exp(x): absolute error ~ eps.
            let err = (y.to_f64() - want).abs() / want.abs().max(1.0);
            assert!(err <= tol, "{op:?}({x}) = {y}, want {want}");
            assert_eq!(y.to_f64().to_bits(), op.apply(x).to_f64().to_bits());
        }
        let mut inplace = input.clone();
        unary_assign(op, &mut inplace);
        assert_eq!(inplace, out);
        // Derivative against a central difference of the reference.
        let mut g = vec![T::ZERO; input.len()];
        let saved: Vec<T> = match op.grad_from() {
            GradFrom::Input => input.clone(),
            GradFrom::Output => out.clone(),
        };
        let ones = vec![T::ONE; input.len()];
        unary_grad(op, &saved, &ones, &mut g).unwrap();
        for (i, &x) in input.iter().enumerate() {
            let x = x.to_f64();
            if x.abs() < 1e-3 {
                continue; // kinks of relu/abs/elu
            }
            let h = 1e-6 * x.abs().max(1.0);
            let fd = (r(x + h) - r(x - h)) / (2.0 * h);
            let err = (g[i].to_f64() - fd).abs() / fd.abs().max(1.0);
            assert!(
                err <= tol.max(1e-5) * 10.0,
                "{op:?}'({x}) = {}, want {fd}",
                g[i]
            );
        }
        let mut g2 = vec![T::from_f64(2.0); input.len()];
        unary_grad_assign(op, &saved, &mut g2).unwrap();
        for (a, b) in g2.iter().zip(&g) {
            assert_eq!(a.to_f64(), 2.0 * b.to_f64());
        }
    }
}

#[test]
fn unary_maps_and_derivatives_match_references() {
    check_unary::<f32>(4e-6);
    check_unary::<f64>(1e-13);
}

#[test]
fn unary_is_bit_identical_across_dispatch_and_offsets() {
    let _g = lock();
    let xs: Vec<f32> = fill(1037, 9, 20.0);
    let mut base: Option<Vec<Vec<u32>>> = None;
    for &d in available_dispatches() {
        set_dispatch(d).unwrap();
        for off in 0..4 {
            let mut shifted = vec![0.0f32; off];
            shifted.extend_from_slice(&xs);
            let got: Vec<Vec<u32>> = unary_ops::<f32>()
                .into_iter()
                .map(|(op, _)| {
                    let mut out = vec![0.0f32; xs.len()];
                    unary(op, &shifted[off..], &mut out).unwrap();
                    out.iter().map(|v| v.to_bits()).collect()
                })
                .collect();
            match &base {
                None => base = Some(got),
                Some(b) => assert!(*b == got, "{d:?} offset {off}"),
            }
        }
    }
    set_dispatch(Dispatch::Auto).unwrap();
}

#[test]
fn binary_forms_match_references() {
    let (rows, cols) = (7, 13);
    let a: Vec<f64> = fill(rows * cols, 1, 3.0);
    let b: Vec<f64> = fill(rows * cols, 2, 3.0).iter().map(|v| v + 4.0).collect();
    let row: Vec<f64> = fill(cols, 3, 2.0).iter().map(|v| v + 3.0).collect();
    let col: Vec<f64> = fill(rows, 4, 2.0).iter().map(|v| v + 3.0).collect();
    let ops: [(BinaryOp, BinReference); 4] = [
        (BinaryOp::Add, |x, y| x + y),
        (BinaryOp::Sub, |x, y| x - y),
        (BinaryOp::Mul, |x, y| x * y),
        (BinaryOp::Div, |x, y| x / y),
    ];
    for (op, f) in ops {
        let mut out = vec![0.0; rows * cols];
        binary(op, &a, &b, &mut out).unwrap();
        let want: Vec<f64> = a.iter().zip(&b).map(|(&x, &y)| f(x, y)).collect();
        assert_eq!(out, want);
        let mut inplace = a.clone();
        binary_assign(op, &mut inplace, &b).unwrap();
        assert_eq!(inplace, want);

        binary_scalar(op, &a, 2.5, &mut out).unwrap();
        let want: Vec<f64> = a.iter().map(|&x| f(x, 2.5)).collect();
        assert_eq!(out, want);
        let mut inplace = a.clone();
        binary_scalar_assign(op, &mut inplace, 2.5);
        assert_eq!(inplace, want);

        binary_row(op, &a, rows, cols, &row, &mut out).unwrap();
        let want: Vec<f64> = (0..rows * cols).map(|i| f(a[i], row[i % cols])).collect();
        assert_eq!(out, want);
        let mut inplace = a.clone();
        binary_row_assign(op, &mut inplace, rows, cols, &row).unwrap();
        assert_eq!(inplace, want);

        binary_col(op, &a, rows, cols, &col, &mut out).unwrap();
        let want: Vec<f64> = (0..rows * cols).map(|i| f(a[i], col[i / cols])).collect();
        assert_eq!(out, want);
        let mut inplace = a.clone();
        binary_col_assign(op, &mut inplace, rows, cols, &col).unwrap();
        assert_eq!(inplace, want);
    }
    let mut y = b.clone();
    axpy(0.5, &a, &mut y).unwrap();
    assert!(
        y.iter()
            .zip(&a)
            .zip(&b)
            .all(|((&y, &a), &b)| y == b + 0.5 * a)
    );
    scale(2.0, &mut y);
    assert!(
        y.iter()
            .zip(&a)
            .zip(&b)
            .all(|((&y, &a), &b)| y == 2.0 * (b + 0.5 * a))
    );
}

#[test]
fn axpy_scale_and_scale_into_are_their_definition_on_every_path_and_offset() {
    let _g = lock();
    let xs: Vec<f32> = fill(1037, 3, 5.0);
    let ys: Vec<f32> = fill(1037, 4, 5.0);
    for &d in available_dispatches() {
        set_dispatch(d).unwrap();
        for off in 0..4 {
            let (x, y0) = (&xs[off..], &ys[off..]);
            let mut y = y0.to_vec();
            axpy(0.37f32, x, &mut y).unwrap();
            let mut out = vec![0.0f32; x.len()];
            scale_into(-1.5f32, x, &mut out).unwrap();
            let mut scaled = x.to_vec();
            scale(0.75f32, &mut scaled);
            for i in 0..x.len() {
                assert_eq!(
                    scaled[i].to_bits(),
                    (0.75 * x[i]).to_bits(),
                    "{d:?} {off} {i}"
                );
                // Multiply, then add: one rounding each, no fused multiply-add on any path.
                assert_eq!(
                    y[i].to_bits(),
                    (y0[i] + 0.37 * x[i]).to_bits(),
                    "{d:?} {off} {i}"
                );
                assert_eq!(out[i].to_bits(), (-1.5 * x[i]).to_bits(), "{d:?} {off} {i}");
            }
        }
    }
    set_dispatch(Dispatch::Auto).unwrap();
}

#[test]
fn length_mismatches_are_errors_with_messages() {
    let mut out = [0.0f32; 4];
    let e = binary(BinaryOp::Add, &[1.0f32; 4], &[1.0; 3], &mut out).unwrap_err();
    assert_eq!(e.to_string(), "binary: b has length 3 but 4 was expected");
    let e = binary_row(BinaryOp::Add, &[1.0f32; 6], 2, 3, &[1.0; 2], &mut [0.0; 6]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "binary_row: row has length 2 but 3 was expected"
    );
    let e = binary_col_assign(BinaryOp::Mul, &mut [1.0f32; 6], 2, 3, &[1.0; 3]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "binary_col_assign: col has length 3 but 2 was expected"
    );
    let e = unary(Unary::Relu, &[1.0f32; 5], &mut out).unwrap_err();
    assert_eq!(e.to_string(), "unary: out has length 4 but 5 was expected");
    let e = softmax_rows(&[1.0f32; 6], 2, 4, &mut [0.0; 8]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "softmax_rows: x has length 6 but 8 was expected"
    );
    let e = max::<f32>(&[]).unwrap_err();
    assert_eq!(e.to_string(), "max: expected a non-empty slice");
    let e = axpy(2.0f32, &[1.0; 3], &mut out).unwrap_err();
    assert_eq!(e.to_string(), "axpy: y has length 4 but 3 was expected");
    let e = scale_into(2.0f32, &[1.0; 5], &mut out).unwrap_err();
    assert_eq!(
        e.to_string(),
        "scale_into: out has length 4 but 5 was expected"
    );
    let e = dot(&[1.0f32; 2], &[1.0; 3]).unwrap_err();
    assert_eq!(e.to_string(), "dot: y has length 3 but 2 was expected");
    let e = bias_act(&mut [0.0f32; 6], 2, 3, &[0.0; 2], Unary::Relu, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "bias_act: bias has length 2 but 3 was expected"
    );
    let e = sum_cols(&[0.0f32; 6], 2, 3, &mut [0.0; 2]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "sum_cols: out has length 2 but 3 was expected"
    );
    let g = Conv2dGeometry::square(1, 3, 3, 5, 1, 0, 1);
    let e = im2col(&[0.0f32; 9], &g, &mut []).unwrap_err();
    assert_eq!(
        e.to_string(),
        "im2col: expected the dilated kernel to fit in the padded input"
    );
}

#[test]
fn reductions_match_references_and_ignore_offset() {
    let x: Vec<f32> = fill(1000 + 17, 7, 5.0);
    let want: f64 = x.iter().map(|&v| v as f64).sum();
    assert!((sum(&x) as f64 - want).abs() < 1e-3);
    // Same values at a different address: bit-identical.
    let mut shifted = vec![0.0f32; 3];
    shifted.extend_from_slice(&x);
    assert_eq!(sum(&x).to_bits(), sum(&shifted[3..]).to_bits());
    assert_eq!(sum::<f32>(&[]), 0.0);
    let d: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
    assert!((dot(&x, &x).unwrap() as f64 - d).abs() < 1e-2);

    let mx = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    assert_eq!(max(&x).unwrap(), mx);
    let am = argmax(&x).unwrap();
    assert_eq!(x[am], mx);
    let mut with_nan = x.clone();
    with_nan[500] = f32::NAN;
    assert!(max(&with_nan).unwrap().is_nan());
    assert_eq!(argmax(&with_nan).unwrap(), 500);
    assert_eq!(argmax(&[1.0f32, 3.0, 3.0]).unwrap(), 1);

    let (rows, cols) = (9, 113);
    let m: Vec<f64> = fill(rows * cols, 8, 4.0);
    let mut out = vec![0.0; rows];
    sum_rows(&m, rows, cols, &mut out).unwrap();
    for i in 0..rows {
        let s: f64 = m[i * cols..(i + 1) * cols].iter().sum();
        assert!((out[i] - s).abs() < 1e-12);
    }
    max_rows(&m, rows, cols, &mut out).unwrap();
    let mut idx = vec![0; rows];
    argmax_rows(&m, rows, cols, &mut idx).unwrap();
    for i in 0..rows {
        let r = &m[i * cols..(i + 1) * cols];
        assert_eq!(out[i], r.iter().copied().fold(f64::NEG_INFINITY, f64::max));
        assert_eq!(r[idx[i]], out[i]);
    }
    let mut outc = vec![0.0; cols];
    sum_cols(&m, rows, cols, &mut outc).unwrap();
    let mut idxc = vec![0; cols];
    argmax_cols(&m, rows, cols, &mut idxc).unwrap();
    let mut maxc = vec![0.0; cols];
    max_cols(&m, rows, cols, &mut maxc).unwrap();
    for j in 0..cols {
        let col: Vec<f64> = (0..rows).map(|i| m[i * cols + j]).collect();
        assert!((outc[j] - col.iter().sum::<f64>()).abs() < 1e-12);
        let mx = col.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(maxc[j], mx);
        assert_eq!(col[idxc[j]], mx);
        assert_eq!(col.iter().position(|&v| v == mx).unwrap(), idxc[j]);
    }
}

#[test]
fn softmax_and_log_softmax_are_stable_and_correct() {
    let (rows, cols) = (5, 37);
    let mut x: Vec<f32> = fill(rows * cols, 3, 10.0);
    x[0] = 1000.0; // would overflow without the max shift
    x[cols] = -1000.0;
    let mut p = vec![0.0f32; rows * cols];
    softmax_rows(&x, rows, cols, &mut p).unwrap();
    let mut lp = vec![0.0f32; rows * cols];
    log_softmax_rows(&x, rows, cols, &mut lp).unwrap();
    for i in 0..rows {
        let r: Vec<f64> = x[i * cols..(i + 1) * cols]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let m = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = r.iter().map(|v| (v - m).exp()).sum();
        for j in 0..cols {
            let want = (r[j] - m).exp() / z;
            assert!(
                (p[i * cols + j] as f64 - want).abs() < 1e-6,
                "softmax[{i},{j}]"
            );
            let want_l = r[j] - m - z.ln();
            assert!((lp[i * cols + j] as f64 - want_l).abs() < 1e-4 * want_l.abs().max(1.0));
        }
    }
    // Backward: compare with the explicit Jacobian.
    let g: Vec<f32> = fill(rows * cols, 4, 1.0);
    let mut gi = vec![0.0f32; rows * cols];
    softmax_rows_backward(&p, &g, rows, cols, &mut gi).unwrap();
    let mut gl = vec![0.0f32; rows * cols];
    log_softmax_rows_backward(&lp, &g, rows, cols, &mut gl).unwrap();
    for i in 0..rows {
        for j in 0..cols {
            let (mut s, mut sl) = (0.0f64, 0.0f64);
            for k in 0..cols {
                let (pj, pk) = (p[i * cols + j] as f64, p[i * cols + k] as f64);
                let gk = g[i * cols + k] as f64;
                let jac = if j == k { pj * (1.0 - pj) } else { -pj * pk };
                s += jac * gk;
                let jl = if j == k { 1.0 - pj } else { -pj };
                sl += jl * gk;
            }
            assert!((gi[i * cols + j] as f64 - s).abs() < 1e-5);
            // d log p_k / d x_j = [j == k] - p_j
            let _ = sl;
            let sum_g: f64 = (0..cols).map(|k| g[i * cols + k] as f64).sum();
            let want = g[i * cols + j] as f64 - p[i * cols + j] as f64 * sum_g;
            assert!((gl[i * cols + j] as f64 - want).abs() < 1e-5);
        }
    }
}

#[test]
fn bias_act_fuses_add_and_activation() {
    let (rows, cols) = (4, 9);
    let c0: Vec<f32> = fill(rows * cols, 1, 2.0);
    let bias: Vec<f32> = fill(cols, 2, 1.0);
    let mut c = c0.clone();
    let mut pre = vec![0.0f32; rows * cols];
    bias_act(&mut c, rows, cols, &bias, Unary::Gelu, Some(&mut pre)).unwrap();
    for i in 0..rows * cols {
        let z = c0[i] + bias[i % cols];
        assert_eq!(pre[i], z);
        assert_eq!(c[i], Unary::Gelu.apply(z));
    }
}

fn conv_direct(x: &[f64], w: &[f64], oc: usize, g: &Conv2dGeometry) -> Vec<f64> {
    let (oh, ow) = g.output_size().unwrap();
    let mut out = vec![0.0; oc * oh * ow];
    for o in 0..oc {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut s = 0.0;
                for c in 0..g.channels {
                    for ki in 0..g.kernel_h {
                        for kj in 0..g.kernel_w {
                            let y =
                                (oy * g.stride_h + ki * g.dilation_h) as isize - g.pad_h as isize;
                            let xx =
                                (ox * g.stride_w + kj * g.dilation_w) as isize - g.pad_w as isize;
                            if y >= 0
                                && xx >= 0
                                && (y as usize) < g.height
                                && (xx as usize) < g.width
                            {
                                s += x[(c * g.height + y as usize) * g.width + xx as usize]
                                    * w[((o * g.channels + c) * g.kernel_h + ki) * g.kernel_w + kj];
                            }
                        }
                    }
                }
                out[(o * oh + oy) * ow + ox] = s;
            }
        }
    }
    out
}

#[test]
fn im2col_matches_direct_convolution_and_col2im_is_its_adjoint() {
    let geoms = [
        Conv2dGeometry::square(3, 8, 7, 3, 1, 1, 1),
        Conv2dGeometry::square(2, 9, 9, 3, 2, 0, 2),
        Conv2dGeometry {
            channels: 2,
            height: 6,
            width: 10,
            kernel_h: 2,
            kernel_w: 3,
            stride_h: 1,
            stride_w: 3,
            pad_h: 2,
            pad_w: 1,
            pad_h_end: 1,
            pad_w_end: 2,
            dilation_h: 1,
            dilation_w: 2,
        },
    ];
    for g in geoms {
        let oc = 4;
        let (oh, ow) = g.output_size().unwrap();
        let kdim = g.channels * g.kernel_h * g.kernel_w;
        let x: Vec<f64> = fill(g.input_len(), 1, 1.0);
        let w: Vec<f64> = fill(oc * kdim, 2, 1.0);
        let mut cols = vec![0.0; g.cols_len().unwrap()];
        im2col(&x, &g, &mut cols).unwrap();
        let want = conv_direct(&x, &w, oc, &g);
        for o in 0..oc {
            for p in 0..oh * ow {
                let s: f64 = (0..kdim)
                    .map(|r| w[o * kdim + r] * cols[r * oh * ow + p])
                    .sum();
                assert!((s - want[o * oh * ow + p]).abs() < 1e-12, "{g:?}");
            }
        }
        // <im2col(x), y> == <x, col2im(y)>
        let y: Vec<f64> = fill(cols.len(), 3, 1.0);
        let mut xt = vec![0.0; x.len()];
        col2im(&y, &g, &mut xt).unwrap();
        let lhs: f64 = cols.iter().zip(&y).map(|(a, b)| a * b).sum();
        let rhs: f64 = x.iter().zip(&xt).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-10);
    }
}

/// The column matrix entry by entry, with a bounds test per element (the reference the
/// run-based kernel must equal exactly).
fn im2col_naive(x: &[f32], g: &Conv2dGeometry) -> Vec<f32> {
    let (oh, ow) = g.output_size().unwrap();
    let mut cols = Vec::new();
    for c in 0..g.channels {
        for ki in 0..g.kernel_h {
            for kj in 0..g.kernel_w {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let y = (oy * g.stride_h + ki * g.dilation_h) as isize - g.pad_h as isize;
                        let xx = (ox * g.stride_w + kj * g.dilation_w) as isize - g.pad_w as isize;
                        let inside =
                            y >= 0 && (y as usize) < g.height && xx >= 0 && (xx as usize) < g.width;
                        cols.push(if inside {
                            x[(c * g.height + y as usize) * g.width + xx as usize]
                        } else {
                            0.0
                        });
                    }
                }
            }
        }
    }
    cols
}

#[test]
fn batched_im2col_and_col2im_equal_the_per_image_and_naive_forms_exactly() {
    let mut seed = 10;
    for (stride, dilation, pad, kernel) in [
        (1, 1, 0, 5),
        (1, 1, 2, 3),
        (2, 1, 1, 3),
        (3, 2, 4, 2),
        (1, 3, 0, 2),
        (2, 2, 5, 1),
    ] {
        // Widths 30 and 41 give output rows of 17 - 32 and over 32 elements, the short
        // copy's unrolled and looping forms.
        for (h, w) in [(7, 9), (12, 5), (4, 4), (6, 30), (5, 41)] {
            let mut g = Conv2dGeometry::square(2, h, w, kernel, stride, pad, dilation);
            g.pad_w_end = pad + 1; // asymmetric, as DL4J's Same mode makes it
            let Ok((oh, ow)) = g.output_size() else {
                continue;
            };
            let images = 3;
            let x: Vec<f32> = fill(images * g.input_len(), seed, 1.0);
            seed += 1;
            let per_cols = g.cols_len().unwrap();
            let mut batch = vec![f32::NAN; images * per_cols];
            im2col_batch(&x, images, &g, &mut batch, Parallelism::None).unwrap();
            let ohw = oh * ow;
            let taps = per_cols / ohw;
            for j in 0..images {
                let img = &x[j * g.input_len()..(j + 1) * g.input_len()];
                let want = im2col_naive(img, &g);
                let mut one = vec![f32::NAN; per_cols];
                im2col(img, &g, &mut one).unwrap();
                assert_eq!(one, want, "{g:?}");
                for r in 0..taps {
                    let got = &batch[r * images * ohw + j * ohw..][..ohw];
                    assert_eq!(
                        got,
                        &want[r * ohw..(r + 1) * ohw],
                        "{g:?} image {j} row {r}"
                    );
                }
            }
            // col2im_batch: each image's gradient equals col2im of its own columns.
            let dcols: Vec<f32> = fill(batch.len(), seed, 1.0);
            let mut dx = vec![f32::NAN; x.len()];
            col2im_batch(&dcols, images, &g, &mut dx, Parallelism::None).unwrap();
            for j in 0..images {
                let mut one = vec![0.0f32; per_cols];
                for r in 0..taps {
                    one[r * ohw..(r + 1) * ohw]
                        .copy_from_slice(&dcols[r * images * ohw + j * ohw..][..ohw]);
                }
                let mut want = vec![f32::NAN; g.input_len()];
                col2im(&one, &g, &mut want).unwrap();
                assert_eq!(&dx[j * g.input_len()..(j + 1) * g.input_len()], &want[..]);
            }
        }
    }
}

/// Pooling by its definition, window element by window element (what the layer computed
/// before the kernel existed).
fn pool_naive(op: PoolOp, x: &[f64], g: &Conv2dGeometry) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (oh, ow) = g.output_size().unwrap();
    let hw = g.height * g.width;
    let size = (g.kernel_h * g.kernel_w) as f64;
    let e: Vec<f64> = fill(g.channels * oh * ow, 77, 1.0);
    let (mut y, mut dx) = (Vec::new(), vec![0.0; x.len()]);
    for p in 0..g.channels {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut taps = Vec::new();
                for ki in 0..g.kernel_h {
                    for kj in 0..g.kernel_w {
                        let yy = (oy * g.stride_h + ki * g.dilation_h) as isize - g.pad_h as isize;
                        let xx = (ox * g.stride_w + kj * g.dilation_w) as isize - g.pad_w as isize;
                        if yy >= 0 && (yy as usize) < g.height && xx >= 0 && (xx as usize) < g.width
                        {
                            taps.push(p * hw + yy as usize * g.width + xx as usize);
                        }
                    }
                }
                let v = match op {
                    PoolOp::Max => {
                        let m = taps.iter().fold(f64::NEG_INFINITY, |m, &i| m.max(x[i]));
                        if m == f64::NEG_INFINITY { 0.0 } else { m }
                    }
                    PoolOp::Sum => taps.iter().map(|&i| x[i]).sum(),
                    PoolOp::Avg => taps.iter().map(|&i| x[i]).sum::<f64>() / size,
                };
                let g_out = e[(p * oh + oy) * ow + ox];
                match op {
                    PoolOp::Max => {
                        if let Some(&i) = taps.iter().find(|&&i| x[i] == v) {
                            dx[i] += g_out;
                        }
                    }
                    PoolOp::Sum => taps.iter().for_each(|&i| dx[i] += g_out),
                    PoolOp::Avg => taps.iter().for_each(|&i| dx[i] += g_out / size),
                }
                y.push(v);
            }
        }
    }
    (y, e, dx)
}

#[test]
fn pooling_equals_its_definition() {
    let mut seed = 40;
    for (kernel, stride, pad, dilation) in [
        (2, 2, 0, 1),
        (3, 2, 1, 1),
        (3, 1, 2, 1),
        (2, 3, 1, 2),
        (1, 1, 0, 1),
    ] {
        for (h, w) in [(6, 6), (7, 11), (3, 70)] {
            let g = Conv2dGeometry::square(3, h, w, kernel, stride, pad, dilation);
            if g.output_size().is_err() {
                continue;
            }
            // Ties (a quarter of the values repeat) exercise the first-maximum rule.
            let x: Vec<f64> = fill::<f64>(g.input_len(), seed, 1.0)
                .into_iter()
                .enumerate()
                .map(|(i, v)| if i % 4 == 1 { 0.5 } else { v })
                .collect();
            seed += 1;
            for op in [PoolOp::Max, PoolOp::Avg, PoolOp::Sum] {
                let (want_y, e, want_dx) = pool_naive(op, &x, &g);
                let mut y = vec![f64::NAN; want_y.len()];
                pool2d(op, &x, &g, &mut y, Parallelism::None).unwrap();
                assert_eq!(y, want_y, "{op:?} {g:?}");
                let mut dx = vec![f64::NAN; x.len()];
                pool2d_backward(op, &x, &y, &e, &g, &mut dx, Parallelism::None).unwrap();
                if op == PoolOp::Max {
                    // Max adds in output order, as the definition: the same bits.
                    assert_eq!(dx, want_dx, "{g:?}");
                }
                for (a, b) in dx.iter().zip(&want_dx) {
                    // Overlapping windows add in another order: equal up to rounding.
                    assert!((a - b).abs() <= 1e-12, "{op:?} {g:?}: {a} vs {b}");
                }
            }
        }
    }
}

#[test]
fn im2col_col2im_and_pooling_give_the_same_bits_on_a_team() {
    let team = KernelTeam::new(3);
    // LeNet's conv2 input at batch 16: large enough that every call splits.
    let g = Conv2dGeometry::square(20, 12, 12, 5, 1, 1, 1);
    let images = 16;
    let x: Vec<f32> = fill(images * g.input_len(), 90, 1.0);
    let n = images * g.cols_len().unwrap();
    let (mut one, mut many) = (vec![f32::NAN; n], vec![f32::NAN; n]);
    im2col_batch(&x, images, &g, &mut one, Parallelism::None).unwrap();
    im2col_batch(&x, images, &g, &mut many, Parallelism::Team(&team)).unwrap();
    assert_eq!(one, many);
    let dcols: Vec<f32> = fill(n, 91, 1.0);
    let (mut d1, mut dn) = (vec![f32::NAN; x.len()], vec![f32::NAN; x.len()]);
    col2im_batch(&dcols, images, &g, &mut d1, Parallelism::None).unwrap();
    col2im_batch(&dcols, images, &g, &mut dn, Parallelism::Team(&team)).unwrap();
    assert_eq!(d1, dn);
    let p = Conv2dGeometry::square(images * 20, 12, 12, 2, 1, 0, 1);
    let (oh, ow) = p.output_size().unwrap();
    let e: Vec<f32> = fill(images * 20 * oh * ow, 92, 1.0);
    for op in [PoolOp::Max, PoolOp::Avg, PoolOp::Sum] {
        let (mut y1, mut yn) = (vec![f32::NAN; e.len()], vec![f32::NAN; e.len()]);
        pool2d(op, &x, &p, &mut y1, Parallelism::None).unwrap();
        pool2d(op, &x, &p, &mut yn, Parallelism::Team(&team)).unwrap();
        assert_eq!(y1, yn);
        let (mut g1, mut gn) = (vec![f32::NAN; x.len()], vec![f32::NAN; x.len()]);
        pool2d_backward(op, &x, &y1, &e, &p, &mut g1, Parallelism::None).unwrap();
        pool2d_backward(op, &x, &y1, &e, &p, &mut gn, Parallelism::Team(&team)).unwrap();
        assert_eq!(g1, gn);
    }
    assert!(
        team.take_stats().regions >= 8,
        "every call ran as a team region"
    );
}
