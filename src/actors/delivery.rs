//! A delivery: a received message (with its lease on the queue, the receipt) on its way
//! through a connector, and what became of it.

use super::Ctx;
use super::connection::Connection;
use crate::queue::{Envelope, ReceiptHandle, Received};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

/// A received message on its way through a connector. Dropping it — finished, abandoned
/// or lost in a dying mailbox — gives the capacity back and stops its heartbeat.
pub struct Delivery {
    pub receipt: ReceiptHandle,
    /// The message as received (its body goes to the dead-letter store if it comes to that).
    pub message: Received,
    pub envelope: Envelope,
    /// Which attempt at the item this is (from its row; 0 until the attempt starts).
    pub attempt: AtomicU32,
    /// How many of the item's earlier attempts do not count against
    /// `retry.max_attempts` (throttled by the ERP, or made before a redrive).
    pub uncounted_before: AtomicU32,
    ctx: Arc<Ctx>,
    conn: Arc<Connection>,
    /// Still counted in the connector's `outstanding`.
    counted: AtomicBool,
}

impl Delivery {
    /// Registers a message as handed to `conn`.
    pub fn new(ctx: Arc<Ctx>, conn: Arc<Connection>, message: Received, envelope: Envelope) -> Self {
        conn.arrived();
        let receipt = message.receipt.clone();
        ctx.in_flight.lock().unwrap().insert(receipt.clone(), std::time::Instant::now());
        Delivery {
            receipt,
            message,
            envelope,
            attempt: AtomicU32::new(0),
            uncounted_before: AtomicU32::new(0),
            ctx,
            conn,
            counted: true.into(),
        }
    }

    pub fn attempt(&self) -> u32 {
        self.attempt.load(Ordering::Acquire)
    }

    /// This attempt's number among those that count against `retry.max_attempts`.
    pub fn counted_attempts(&self) -> u32 {
        self.attempt().saturating_sub(self.uncounted_before.load(Ordering::Acquire))
    }

    /// The ERP work is done: the connector may take the next item while this one's
    /// outcome is being recorded, so its slots never wait on our bookkeeping.
    pub fn release_capacity(&self) {
        if self.counted.swap(false, Ordering::AcqRel) {
            self.conn.departed();
            self.ctx.capacity.notify_one();
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        self.ctx.in_flight.lock().unwrap().remove(&self.receipt);
        self.release_capacity();
    }
}

/// What became of a delivery's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Deleted or dead-lettered: the item is finished (or was already).
    Finished,
    /// Back on the queue, to be received again after about this long (a retry, a busy
    /// or saturated connection, an outcome that could not be recorded).
    Returned(Duration),
}
