//! The sequencer: merges the per-RX-queue input streams into one deterministic order.
//!
//! Each RX-queue worker owns the [`Producer`] end of a bounded SPSC [`channel`] and pushes
//! [`Item`]s into it: inputs, watermarks ("this queue will not deliver anything earlier than W")
//! and finally a close. The sequencer thread pops them and applies them, in the order it popped
//! them, to a [`Merge`]: a synchronous state machine that releases inputs in `(order_ts, slot,
//! arrival)` order once every open queue has shown it cannot deliver anything earlier.
//!
//! The merge is a pure function of the sequence of items applied to it. The threaded path and the
//! replay path both drive this one implementation, so a recorded item sequence replays to the
//! same output, whatever the thread timing was.

mod doorbell;
mod handoff;
mod merge;

pub use doorbell::Doorbell;
pub use handoff::{Consumer, Producer, WATERMARK_STEP_NS, channel};
pub use merge::{Frontier, Merge, MergeStats, Released};

use crate::input::Input;

/// What a worker hands to the sequencer through its hand-off queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A decoded input.
    Input(Input),
    /// A watermark in the time base: this queue will never again deliver an input with
    /// `rx_ts_ns` below this value (a promise; an input that breaks it is counted, see [`Merge`]).
    Watermark(u64),
    /// The queue is finished; once its earlier items are drained it acts as a watermark of +∞.
    Close,
}

/// Misuse of the synchronous sequencer API (the threaded path cannot produce these).
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
pub enum SequencerError {
    /// An item named a hand-off queue the sequencer was not built with.
    #[error("hand-off queue {slot} does not exist: the sequencer has {queues} queues (0..{queues})")]
    UnknownQueue {
        /// The slot the item named.
        slot: usize,
        /// How many queues the sequencer has.
        queues: usize,
    },
    /// An input arrived on a queue after its close.
    #[error("hand-off queue {slot} is closed and cannot deliver more inputs - open a new run instead")]
    Closed {
        /// The closed slot.
        slot: usize,
    },
}
