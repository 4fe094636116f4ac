//! Timing analysis. Pure: takes packets with timestamps, returns facts.

pub mod assess;
pub mod deque;
pub mod desktop;
pub mod interactive;
pub mod relay;
pub mod rtt;
pub mod seq;
pub mod stats;
pub mod tunnel;
pub mod turns;

pub use rtt::{RttSample, RttTracker, SampleKind, Segment};
pub use stats::{Quantiles, Summary};
