//! The audit log: who did what to which target, with before/after values, the client address and
//! the request id. Entries are written in the same transaction as the change they describe.

pub mod api;
pub mod store;
pub mod web;
