//! Limits on calls to an ERP: the per-connection rate limiter (the concurrency gate lives
//! with each connection, see `actors::connection::gate`).

pub mod lease;
pub mod rate;
