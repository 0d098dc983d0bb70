//! HTTP plumbing shared by every feature: the error type, the authenticated context, JSON and
//! query extractors, pagination, middleware.

pub mod client;
pub mod ctx;
pub mod error;
pub mod json;
pub mod middleware;
pub mod pagination;
