//! Workspace allocation vs the global allocator for buffers of 1 KiB, 1 MiB and 16 MiB, each
//! touched once per cycle (one write per 4 KiB page). Large heap buffers pay mmap, page faults
//! and munmap every cycle; a workspace pays them once.
//!
//! `cargo bench -p dl4rs-memory --bench workspace_vs_heap`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dl4rs_memory::{Buffer, WorkspaceConfig, get_and_activate_workspace};

fn touch(buf: &mut Buffer<u8>) {
    let mut data = buf.write().unwrap();
    for i in (0..data.len()).step_by(4096) {
        data[i] = i as u8;
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("alloc_touch_cycle");
    let config = WorkspaceConfig::default();
    for (label, bytes) in [
        ("1KiB", 1usize << 10),
        ("1MiB", 1 << 20),
        ("16MiB", 16 << 20),
    ] {
        // One workspace per size: a workspace learns its first loop, and with the default
        // External spill policy a later, larger cycle would spill instead of growing.
        let id = format!("BENCH_{label}");
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("std_vec", label), &bytes, |b, &n| {
            b.iter(|| {
                let mut v = vec![0u8; n];
                for i in (0..n).step_by(4096) {
                    v[i] = i as u8;
                }
                std::hint::black_box(v);
            })
        });
        group.bench_with_input(BenchmarkId::new("heap_buffer", label), &bytes, |b, &n| {
            b.iter(|| {
                let mut buf = Buffer::<u8>::zeros_detached(n).unwrap();
                touch(&mut buf);
                std::hint::black_box(buf);
            })
        });
        group.bench_with_input(BenchmarkId::new("workspace", label), &bytes, |b, &n| {
            b.iter(|| {
                let _cycle = get_and_activate_workspace(&config, &id).unwrap();
                let mut buf = Buffer::<u8>::uninitialized(n).unwrap();
                touch(&mut buf);
                std::hint::black_box(buf);
            })
        });
        group.bench_with_input(
            BenchmarkId::new("workspace_zeroed", label),
            &bytes,
            |b, &n| {
                b.iter(|| {
                    let _cycle = get_and_activate_workspace(&config, &id).unwrap();
                    let mut buf = Buffer::<u8>::zeros(n).unwrap();
                    touch(&mut buf);
                    std::hint::black_box(buf);
                })
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
