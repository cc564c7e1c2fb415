//! A trainer's mailbox: the jobs the coordinator posted to it, oldest first, and its next one
//! while another trainer gathers that job's rows for it. A trainer waiting at a barrier for
//! one still on its round takes that one's next job out ([`Mailbox::take_to_gather`]),
//! gathers its rows onto the heap into one of the owner's two inboxes and hands the job back
//! ([`Mailbox::deliver`]); meanwhile the owner neither takes a later job nor prepares one
//! ahead, so its jobs still run in order. The board keeps each mailbox behind its trainer's
//! lock and counts what the coordinator waits on (`board`).

use std::collections::VecDeque;

use dl4rs_array::DataType;

use crate::batch::Batch;
use crate::board::{Job, LOOKAHEAD};

/// A trainer's jobs: posted ones, oldest first (capacity `LOOKAHEAD`, never exceeded: no
/// allocation), and, before them, the one another trainer took out to gather its batch.
pub(crate) struct Mailbox<T: DataType> {
    jobs: VecDeque<Job<T>>,
    delivery: Delivery<T>,
    /// Where the batch of a delivery is gathered: heap data sets the size of a batch, made
    /// by the first gather and reused by the next ones (the owner hands one back after its
    /// gradient), so a delivery allocates nothing. Two: the next batch is gathered while
    /// the owner still trains on the one before.
    inboxes: [Option<Batch<T>>; 2],
    /// The inboxes were made (by the first gather).
    made: bool,
}

/// What a trainer gathers another's rows into ([`Mailbox::take_to_gather`]).
#[allow(clippy::large_enum_variant)] // boxed, every round would allocate
pub(crate) enum Inbox<T: DataType> {
    /// One of its inboxes, with as many rows.
    Reuse(Batch<T>),
    /// None yet: gather into new arrays, and hand a copy back as the second inbox.
    Make,
}

/// The owner's next job, when another trainer took it out to gather its batch.
#[allow(clippy::large_enum_variant)] // boxed, every round would allocate
enum Delivery<T: DataType> {
    None,
    /// Being gathered: the owner waits for it (its later jobs must not go first).
    Gathering,
    Ready(Job<T>),
}

/// What a trainer finds when it looks for its next job.
#[allow(clippy::large_enum_variant)] // boxed, every round would allocate
pub(crate) enum Next<T: DataType> {
    Job(Job<T>),
    /// None posted.
    Empty,
    /// Another trainer is gathering its batch: wait for its delivery (`Slot::delivered`).
    Gathering,
}

impl<T: DataType> Mailbox<T> {
    pub(crate) fn new() -> Self {
        Mailbox {
            jobs: VecDeque::with_capacity(LOOKAHEAD),
            delivery: Delivery::None,
            inboxes: [None, None],
            made: false,
        }
    }

    /// The coordinator's job, behind the others.
    pub(crate) fn post(&mut self, job: Job<T>) {
        self.jobs.push_back(job);
    }

    /// The owner's next job: a delivered one first; none while one is being gathered.
    pub(crate) fn take(&mut self) -> Next<T> {
        match std::mem::replace(&mut self.delivery, Delivery::None) {
            Delivery::Ready(job) => Next::Job(job),
            Delivery::Gathering => {
                self.delivery = Delivery::Gathering;
                Next::Gathering
            }
            Delivery::None => self.jobs.pop_front().map_or(Next::Empty, Next::Job),
        }
    }

    /// The owner's next job, to prepare ahead: none while another trainer holds it
    /// (gathering or gathered: the owner takes that one at its round's start).
    pub(crate) fn take_ahead(&mut self) -> Option<Job<T>> {
        match self.delivery {
            Delivery::None => self.jobs.pop_front(),
            _ => None,
        }
    }

    /// Another trainer takes the owner's next job out to gather its rows, with the inbox to
    /// gather into. None unless that job is posted, none is out already, its batch is rows
    /// (`Lazy::Rows`) and an inbox with as many rows is free (a short batch is its owner's
    /// to gather).
    pub(crate) fn take_to_gather(&mut self) -> Option<(Job<T>, Inbox<T>)> {
        let rows = match self.jobs.front() {
            Some(Job {
                batch: Some(b @ (Batch::Rows(_) | Batch::MultiRows(_))),
                copy: false,
                ..
            }) => b.examples(),
            _ => None,
        };
        if !matches!(self.delivery, Delivery::None) || rows.is_none() {
            return None;
        }
        let inbox = if self.made {
            let free = self
                .inboxes
                .iter_mut()
                .find(|i| i.as_ref().is_some_and(|b| b.examples() == rows))?;
            Inbox::Reuse(free.take()?)
        } else {
            self.made = true;
            Inbox::Make
        };
        let job = self.jobs.pop_front()?;
        self.delivery = Delivery::Gathering;
        Some((job, inbox))
    }

    /// The job [`Mailbox::take_to_gather`] took, its batch gathered (and, from the first
    /// gather, the second inbox).
    pub(crate) fn deliver(&mut self, job: Job<T>, spare: Option<Batch<T>>) {
        self.delivery = Delivery::Ready(job);
        if let Some(spare) = spare {
            self.put_inbox(spare);
        }
    }

    /// An inbox back from its owner (after the gradient of a delivered batch).
    pub(crate) fn put_inbox(&mut self, batch: Batch<T>) {
        if let Some(free) = self.inboxes.iter_mut().find(|i| i.is_none()) {
            *free = Some(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::gather_for_another;
    use crate::board::Combine;
    use dl4rs_array::NdArray;
    use dl4rs_data::{DataSet, DataSetIterator, InMemoryDataSetIterator, Lazy};

    /// Jobs of `rows`-row batches of rows (round numbers 0, 1, ...).
    fn jobs(batches: &[usize]) -> Vec<Job<f32>> {
        let mut out = Vec::new();
        for (round, &rows) in batches.iter().enumerate() {
            let features = NdArray::from_slice(&[rows, 1], &vec![round as f32; rows]).unwrap();
            let labels = NdArray::from_slice(&[rows, 1], &vec![0.0; rows]).unwrap();
            let d = DataSet::new(features, labels).unwrap();
            // An in-memory iterator's `next_lazy` hands out rows, not arrays.
            let mut it = InMemoryDataSetIterator::new(d, rows).unwrap();
            let Some(Ok(Lazy::Rows(r))) = it.next_lazy() else {
                panic!("expected rows")
            };
            out.push(Job {
                batch: Some(Batch::Rows(r)),
                copy: false,
                combine: Combine::Alone,
                round: round as u64,
                iteration: round as u64 + 1,
                delivered: false,
            });
        }
        out
    }

    fn round(next: Next<f32>) -> Option<u64> {
        match next {
            Next::Job(j) => Some(j.round),
            Next::Empty | Next::Gathering => None,
        }
    }

    /// The first value of a delivered single batch's features.
    fn first_feature(job: &Job<f32>) -> f32 {
        match &job.batch {
            Some(Batch::Single(d)) => d.features.to_vec().unwrap()[0],
            _ => panic!("expected a gathered batch"),
        }
    }

    /// A job taken out to be gathered goes back to its owner before its later ones, which
    /// wait (and are not taken ahead) meanwhile; the first gather makes the two inboxes,
    /// the next ones reuse them, and a batch with no inbox of its size stays its owner's.
    #[test]
    fn a_job_gathered_by_another_keeps_its_place() {
        let mut mb = Mailbox::<f32>::new();
        for job in jobs(&[2, 2, 2, 1]) {
            mb.post(job);
        }
        let (mut job, inbox) = mb.take_to_gather().expect("rows, posted");
        assert_eq!(job.round, 0);
        assert!(matches!(inbox, Inbox::Make));
        assert!(matches!(mb.take(), Next::Gathering));
        assert!(mb.take_ahead().is_none(), "job 1 must wait for job 0");
        assert!(mb.take_to_gather().is_none(), "one out at a time");
        let batch = job.batch.take().unwrap();
        let (gathered, spare) = gather_for_another(batch, inbox).unwrap();
        assert!(spare.is_some());
        job.batch = Some(gathered);
        mb.deliver(job, spare);
        let Next::Job(mut first) = mb.take() else {
            panic!("delivered")
        };
        assert_eq!((first.round, first_feature(&first)), (0, 0.0));
        // Job 1 into the spare inbox while job 0 still holds the first.
        let (mut second, inbox) = mb.take_to_gather().expect("the spare is free");
        assert_eq!(second.round, 1);
        assert!(matches!(inbox, Inbox::Reuse(_)));
        let batch = second.batch.take().unwrap();
        let (gathered, spare) = gather_for_another(batch, inbox).unwrap();
        assert!(spare.is_none());
        second.batch = Some(gathered);
        mb.deliver(second, None);
        // Both inboxes are out: nothing to gather job 2 into until one comes back.
        assert!(mb.take_to_gather().is_none());
        mb.put_inbox(first.batch.take().unwrap());
        let Next::Job(second) = mb.take() else {
            panic!("delivered")
        };
        assert_eq!((second.round, first_feature(&second)), (1, 1.0));
        let (mut third, inbox) = mb.take_to_gather().expect("an inbox is back");
        assert_eq!(third.round, 2);
        let (gathered, _) = gather_for_another(third.batch.take().unwrap(), inbox).unwrap();
        third.batch = Some(gathered);
        mb.deliver(third, None);
        let Next::Job(third) = mb.take() else {
            panic!("delivered")
        };
        assert_eq!((third.round, first_feature(&third)), (2, 2.0));
        // The short batch: no inbox of its size, its owner gathers it.
        assert!(mb.take_to_gather().is_none());
        assert_eq!(round(mb.take()), Some(3));
        assert!(matches!(mb.take(), Next::Empty));
    }
}
