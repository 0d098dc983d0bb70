//! Organizations (tenants), their members and invitations, first-run setup and open signup.

pub mod api;
pub mod service;
pub mod store;
pub mod web;
