use dl4rs_kernels::*;
use std::time::Instant;
fn main() {
    for (c, hw, oc) in [(1usize, 28usize, 20usize), (20, 12, 50)] {
        let g = Conv2dGeometry::square(c, hw, hw, 5, 1, 0, 1);
        let imgs = 64;
        let x: Vec<f32> = (0..imgs * g.input_len())
            .map(|i| (i % 7) as f32 * 0.1)
            .collect();
        let taps = c * 25;
        let w: Vec<f32> = (0..oc * taps).map(|i| (i % 5) as f32 * 0.1).collect();
        let b = vec![0.5f32; oc];
        let (oh, ow) = g.output_size().unwrap();
        let ohw = oh * ow;
        let mut out = vec![0f32; imgs * oc * ohw];
        let wm = MatRef::row_major(&w, oc, taps).unwrap();
        let mut scratch =
            vec![0f32; conv2d_forward_scratch_len::<f32>(&g, oc, Parallelism::None).unwrap()];
        let flops = 2.0 * (oc * taps * ohw * imgs) as f64;
        let reps = 50;
        let t = Instant::now();
        for _ in 0..reps {
            conv2d_forward(
                &x,
                imgs,
                &g,
                wm,
                Some(&b),
                &mut out,
                &mut scratch,
                Parallelism::None,
            )
            .unwrap();
        }
        let dt = t.elapsed().as_secs_f64() / reps as f64;
        println!(
            "c={c} conv2d_forward {:.3} ms {:.1} GFLOP/s",
            dt * 1e3,
            flops / dt / 1e9
        );
        let mut pb = vec![0f32; im2col_packed_len::<f32>(&g, 1).unwrap()];
        let t = Instant::now();
        for _ in 0..reps {
            for j in 0..imgs {
                im2col_packed(
                    &x[j * g.input_len()..(j + 1) * g.input_len()],
                    1,
                    &g,
                    &mut pb,
                )
                .unwrap();
            }
        }
        let dt2 = t.elapsed().as_secs_f64() / reps as f64;
        println!("   im2col_packed x64 {:.3} ms", dt2 * 1e3);
        let packed = im2col_packed(&x[..g.input_len()], 1, &g, &mut pb).unwrap();
        let mut gs =
            vec![0f32; gemm_prepacked_scratch_len::<f32>(oc, ohw, taps, Parallelism::None)];
        let t = Instant::now();
        for _ in 0..reps {
            for j in 0..imgs {
                gemm_prepacked(
                    1.0,
                    wm,
                    &packed,
                    0.0,
                    MatMut::row_major(&mut out[j * oc * ohw..(j + 1) * oc * ohw], oc, ohw).unwrap(),
                    &mut gs,
                    Parallelism::None,
                )
                .unwrap();
            }
        }
        let dt3 = t.elapsed().as_secs_f64() / reps as f64;
        println!(
            "   gemm_prepacked x64 {:.3} ms {:.1} GFLOP/s",
            dt3 * 1e3,
            flops / dt3 / 1e9
        );
    }
}
