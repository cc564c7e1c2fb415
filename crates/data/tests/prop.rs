//! Property: for any size, batch size, drop-last flag and seed, every epoch of an
//! InMemoryDataSetIterator delivers each example at most once, all of them unless the last
//! partial batch is dropped, and the same seed gives the same epochs.

mod common;

use common::{ids, numbered};
use dl4rs_data::{DataSetIterator, InMemoryDataSetIterator};
use proptest::prelude::*;

fn epochs(n: usize, batch: usize, drop_last: bool, seed: Option<u64>) -> Vec<Vec<usize>> {
    let mut it = InMemoryDataSetIterator::new(numbered(n), batch)
        .unwrap()
        .drop_last(drop_last);
    if let Some(s) = seed {
        it = it.with_shuffle(s);
    }
    (0..3)
        .map(|_| {
            let mut seen = Vec::new();
            while let Some(b) = it.next() {
                let b = b.unwrap();
                assert!(b.num_examples() <= batch);
                assert!(!drop_last || b.num_examples() == batch);
                seen.extend(ids(&b));
            }
            it.reset().unwrap();
            seen
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn each_example_once(n in 0usize..60, batch in 1usize..20, drop_last: bool, seed: Option<u64>) {
        let runs = epochs(n, batch, drop_last, seed);
        for seen in &runs {
            let mut sorted = seen.clone();
            sorted.sort_unstable();
            sorted.dedup();
            prop_assert_eq!(sorted.len(), seen.len(), "no repeats");
            let want = if drop_last { n / batch * batch } else { n };
            prop_assert_eq!(seen.len(), want);
            if !drop_last {
                prop_assert_eq!(sorted, (0..n).collect::<Vec<_>>());
            }
        }
        prop_assert_eq!(runs, epochs(n, batch, drop_last, seed));
    }
}
