//! Timing analysis. Pure: takes packets with timestamps, returns facts.

pub mod rtt;
pub mod seq;
pub mod stats;

pub use rtt::{RttSample, RttTracker, SampleKind, Segment};
pub use stats::{Quantiles, Summary};
