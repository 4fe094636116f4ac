//! Outputs: JSON Lines session records, a readable table, Prometheus metrics.

pub mod http;
mod json;
mod metrics;
mod observer;
mod openmetrics;
mod record;
mod sessions;
mod table;

pub use json::JsonWriter;
pub use metrics::Metrics;
pub use observer::Records;
pub use record::{LegRtt, PerSide, SessionRecord};
pub use sessions::SessionExport;
pub use table::TableWriter;
