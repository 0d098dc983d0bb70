//! Notes on a lead: sanitized rich text with an author, searchable with the lead.

pub mod api;
pub mod sanitize;
pub mod service;
pub mod store;
