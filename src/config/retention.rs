//! `[retention]`: how long ended jobs are kept.

use super::problem::{Problems, nz};
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Days a job is kept after its last item ended; its items, documents and timelines go
    /// with it. 0 keeps everything. The ledger of what was created in each ERP, and the
    /// bills and payment applications matching reads, are never deleted.
    pub days: u32,
    /// Items (with their documents and timelines) deleted per transaction: small, so the
    /// status writer never waits long. A larger job goes over several.
    pub batch_items: NonZeroU32,
    /// Least pause between two batches of one sweep; the pause is also at least
    /// nineteen times the last batch's time, so a sweep holds the database's write lock a
    /// twentieth of the time at most.
    pub pause_ms: u32,
    /// How often a sweep starts.
    pub interval_secs: NonZeroU32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig { days: 30, batch_items: nz(1000), pause_ms: 20, interval_secs: nz(600) }
    }
}

impl RetentionConfig {
    pub fn validate(&self, p: &mut Problems) {
        // Past this a cutoff in milliseconds would not fit in the database's integers.
        if self.days > 36_500 {
            p.add("retention.days", format!("{} days is more than a century; use 0 to keep everything", self.days));
        }
        if self.batch_items.get() > 10_000 {
            p.add("retention.batch_items", "at most 10000 items per batch, so a batch stays a short transaction");
        }
    }
}
