//! Flow table: one entry per connection, both directions joined, with idle
//! expiry and a hard bound on the number of sessions.

mod counters;
mod key;
pub mod mptcp;
mod session;
mod table;

pub use counters::Counters;
pub use key::{FlowKey, host_pair_hash};
pub use session::{DATA_FROM, EndReason, FIN_FROM, LONG_IDLE, Session};
pub use table::{FlowTable, Lane, Tier};
