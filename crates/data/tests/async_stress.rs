//! Stress: 10,000 batches of random (seeded) sizes through the prefetch ring, every value of
//! every batch checked, with a consumer that randomly peeks, pauses, and resets mid-epoch.

mod async_common;

use async_common::{Rng, SeqSource, check_batch};
use dl4rs_data::{AsyncDataSetIterator, DataSetIterator};

#[test]
fn ten_thousand_random_batches_every_value_checked() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    // Four epochs of 2,500 batches; sizes 1..=200 rows, with runs of growth so the ring goes
    // through trimmed mode and rebuilds more than once.
    let sizes: Vec<usize> = (0..2_500)
        .map(|i| {
            if i % 500 < 50 {
                rng.range(1, 40 + i / 10)
            } else {
                rng.range(1, 200)
            }
        })
        .collect();
    let mut checked = 0usize;
    let mut values = 0usize;
    for (round, (prefetch, min_ring)) in [(1, 0), (3, 0), (8, 4096), (2, 1 << 20)]
        .into_iter()
        .enumerate()
    {
        let mut it = AsyncDataSetIterator::with_min_ring_bytes(
            SeqSource::new(sizes.clone()).boxed(),
            prefetch,
            min_ring,
        )
        .unwrap();
        // Round 1 also resets mid-epoch once (the delivered batches are counted, the rest of
        // that epoch is not).
        let cut = if round == 1 { Some(700) } else { None };
        let mut epoch = 0;
        if let Some(cut) = cut {
            for (k, &rows) in sizes.iter().enumerate().take(cut) {
                let ds = it.next().unwrap().unwrap();
                check_batch(&ds, 0, k, rows).unwrap();
                checked += 1;
                values += rows * 5;
            }
            it.reset().unwrap();
            epoch = 1;
        }
        let mut k = 0;
        loop {
            match rng.range(0, 9) {
                0 => {
                    // Peek (possibly twice) before taking the batch.
                    let more = it.has_next();
                    assert_eq!(more, k < sizes.len());
                    assert_eq!(it.has_next(), more);
                }
                1 => std::thread::yield_now(),
                2 if rng.range(0, 20) == 0 => {
                    std::thread::sleep(std::time::Duration::from_micros(200))
                }
                _ => {}
            }
            let Some(ds) = it.next() else { break };
            let ds = ds.unwrap();
            if rng.range(0, 3) == 0 {
                std::thread::yield_now(); // let the producer run ahead while we hold the batch
            }
            check_batch(&ds, epoch, k, sizes[k]).unwrap();
            checked += 1;
            values += sizes[k] * 5;
            k += 1;
        }
        assert_eq!(k, sizes.len(), "round {round}: every batch once");
    }
    assert!(checked >= 10_000, "{checked} batches checked");
    eprintln!("{checked} batches, {values} values checked");
}
