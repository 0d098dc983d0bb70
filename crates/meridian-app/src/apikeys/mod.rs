//! API keys for integrations: named, with a role and an optional expiry; the secret is shown once
//! and stored only as a hash; revocable.

pub mod api;
pub mod service;
pub mod store;
pub mod web;
