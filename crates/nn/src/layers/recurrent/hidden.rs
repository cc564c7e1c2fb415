//! The carried state of a recurrent layer: `K` arrays (`h` for SimpleRnn and GRU; `h` and
//! `c` for LSTM), one set for `rnn_time_step` and one carried between truncated-BPTT
//! segments. They are detached arrays, allocated once per batch size and overwritten in
//! place (see "Recurrent layers" in `docs/design.md` for why not a workspace). Clearing a
//! state (`rnn_clear_previous_state()`, and truncated BPTT before every batch) marks it
//! empty but keeps its arrays, so the next batch of the same size allocates nothing.

use dl4rs_array::{ArrayView, ArrayViewMut, AsView, DataType, NdArray};

use super::layer_error;
use crate::error::NnError;
use crate::layers::{RecurrentMode, RnnStateSlot, StepContext};

/// DL4J's key of the carried output (`STATE_KEY_PREV_ACTIVATION`).
pub(crate) const STATE_H: &str = "prevAct";

/// One carried state: `K` arrays `[batch, units]`, kept while empty.
struct Carried<T: DataType, const K: usize> {
    arrays: Option<[NdArray<T>; K]>,
    live: bool,
}

impl<T: DataType, const K: usize> Carried<T, K> {
    fn get(&self) -> Option<&[NdArray<T>; K]> {
        self.arrays.as_ref().filter(|_| self.live)
    }

    /// Arrays of `shape`, reusing the kept ones when they have it; zeros when they were
    /// empty (so a state set one key at a time starts from zeros, as a fresh one does).
    fn arrays_of(&mut self, shape: &[usize]) -> Result<&mut [NdArray<T>; K], NnError> {
        let reuse = self
            .arrays
            .as_ref()
            .is_some_and(|a| a.iter().all(|x| x.shape() == shape));
        if !reuse {
            let mut made = Vec::with_capacity(K);
            for _ in 0..K {
                made.push(NdArray::zeros_detached(shape)?);
            }
            self.arrays = made.try_into().ok();
        } else if !self.live {
            for a in self.arrays.iter_mut().flatten() {
                a.fill(T::ZERO)?;
            }
        }
        self.live = true;
        self.arrays
            .as_mut()
            .ok_or_else(|| NnError::Input("the carried state could not be made".into()))
    }
}

/// The two carried states of a recurrent layer, under DL4J's keys `keys`.
pub(crate) struct CarriedStates<T: DataType, const K: usize> {
    keys: [&'static str; K],
    step: Carried<T, K>,
    tbptt: Carried<T, K>,
}

/// Where a forward pass writes its last state: `store` it there.
pub(crate) struct StateSlot<'a, T: DataType, const K: usize>(&'a mut Carried<T, K>);

impl<T: DataType, const K: usize> StateSlot<'_, T, K> {
    /// Overwrites the state with `values` (one per key, each `[batch, units]`), allocating
    /// only when the batch size changed.
    pub(crate) fn store(self, values: [&ArrayView<'_, T>; K]) -> Result<(), NnError> {
        let arrays = self.0.arrays_of(values[0].shape())?;
        for (a, v) in arrays.iter_mut().zip(values) {
            a.assign(v)?;
        }
        Ok(())
    }
}

impl<T: DataType, const K: usize> CarriedStates<T, K> {
    pub(crate) fn new(keys: [&'static str; K]) -> Self {
        let empty = || Carried {
            arrays: None,
            live: false,
        };
        CarriedStates {
            keys,
            step: empty(),
            tbptt: empty(),
        }
    }

    fn of(&self, mode: RecurrentMode) -> Option<&Carried<T, K>> {
        match mode {
            RecurrentMode::Fresh => None,
            RecurrentMode::TimeStep => Some(&self.step),
            RecurrentMode::Tbptt { .. } => Some(&self.tbptt),
        }
    }

    /// Where a forward pass in `mode` writes its last state (`None`: a fresh pass keeps none).
    pub(crate) fn slot(&mut self, mode: RecurrentMode) -> Option<StateSlot<'_, T, K>> {
        match mode {
            RecurrentMode::Fresh => None,
            RecurrentMode::TimeStep => Some(StateSlot(&mut self.step)),
            RecurrentMode::Tbptt { .. } => Some(StateSlot(&mut self.tbptt)),
        }
    }

    /// `start` := the state of key `index` a forward pass in `ctx.recurrent` starts from:
    /// zeros when none is carried; an error naming the layer when the carried batch differs
    /// from `input`'s.
    pub(crate) fn start(
        &self,
        index: usize,
        start: &mut ArrayViewMut<'_, T>,
        ctx: &StepContext,
        kind: &'static str,
        name: Option<&str>,
        input: &[usize],
    ) -> Result<(), NnError> {
        let carried = self.of(ctx.recurrent).and_then(Carried::get);
        match carried.map(|arrays| &arrays[index]) {
            Some(a) if a.shape() == start.shape() => start.assign(a)?,
            Some(a) => {
                return Err(layer_error(
                    ctx,
                    kind,
                    name,
                    format!(
                        "the carried state has batch {} but the input {input:?} has batch {}: \
                         call rnn_clear_previous_state() before a batch of another size",
                        a.shape()[0],
                        start.shape()[0]
                    ),
                ));
            }
            None => start.fill(T::ZERO)?,
        }
        Ok(())
    }

    /// `Layer::rnn_state`.
    pub(crate) fn views(&self, slot: RnnStateSlot) -> Vec<(&'static str, ArrayView<'_, T>)> {
        let s = match slot {
            RnnStateSlot::TimeStep => &self.step,
            RnnStateSlot::Tbptt => &self.tbptt,
        };
        s.get()
            .map(|arrays| {
                self.keys
                    .iter()
                    .zip(arrays)
                    .map(|(k, a)| (*k, a.view()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `Layer::rnn_set_state` for a layer `kind` of `n` units: one key's array; the others
    /// keep their values (zeros when the state was empty or had another batch size).
    pub(crate) fn set(
        &mut self,
        kind: &str,
        n: usize,
        slot: RnnStateSlot,
        key: &str,
        value: &ArrayView<'_, T>,
    ) -> Result<(), NnError> {
        let index = self.keys.iter().position(|k| *k == key);
        let (Some(index), true) = (index, matches!(value.shape(), [_, m] if *m == n)) else {
            return Err(NnError::Input(format!(
                "{kind}: expected a state {} of shape [batch, {n}], found {key:?} of shape {:?}",
                self.keys
                    .iter()
                    .map(|k| format!("{k:?}"))
                    .collect::<Vec<_>>()
                    .join(" or "),
                value.shape()
            )));
        };
        let target = match slot {
            RnnStateSlot::TimeStep => &mut self.step,
            RnnStateSlot::Tbptt => &mut self.tbptt,
        };
        target.arrays_of(value.shape())?[index].assign(value)?;
        Ok(())
    }

    /// `Layer::rnn_clear_state`: both states empty, their arrays kept.
    pub(crate) fn clear(&mut self) {
        self.step.live = false;
        self.tbptt.live = false;
    }
}
