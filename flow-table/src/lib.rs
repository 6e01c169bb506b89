//! flow-table: a flowswitch-style flow table with switchable field bugs.
pub mod atfork;
pub mod cuckoo;
pub mod divert;
pub mod entry;
pub mod error;
pub mod fault;
pub mod flags;
pub mod key;
pub mod log;
pub mod manager;
pub mod objcache;
pub mod owner;
pub mod panic;
pub mod refcnt;
pub mod session;
pub mod sim;
mod sync;
#[cfg(test)]
mod tests;
pub use error::FlowError;
