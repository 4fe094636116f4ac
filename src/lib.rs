//! echoloc: a passive sensor that measures how far away the person typing is.
//!
//! The pipeline, one module per stage, data flowing one way:
//! capture → decode → flow → proto → analysis → output. [`engine`] joins them.

pub mod analysis;
pub mod capture;
pub mod config;
pub mod decode;
pub mod engine;
pub mod flow;
#[doc(hidden)]
pub mod fuzzing;
pub mod ip_proto;
mod labels;
pub mod output;
pub mod policy;
pub mod proto;
pub mod runtime;
pub mod side;
pub mod time;
pub mod verdict;
pub mod web_config;
