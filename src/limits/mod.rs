//! Limits on calls to an ERP: the per-connection rate limiter (the concurrency gate lives
//! with the connector, see `actors::connector`).

pub mod lease;
pub mod rate;
