//! Outputs: JSON Lines session records, a readable table, Prometheus metrics.

mod community_id;
pub mod http;
mod json;
mod metrics;
mod observer;
mod openmetrics;
mod record;
mod sessions;
mod table;

pub use community_id::community_id;
pub use json::JsonWriter;
pub use metrics::Metrics;
pub use observer::Records;
pub use record::{LegRtt, PerSide, SCHEMA_VERSION, SessionRecord};
pub use sessions::SessionExport;
pub use table::TableWriter;
