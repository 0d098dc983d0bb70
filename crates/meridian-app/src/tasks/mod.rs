//! Tasks: calls, emails, meetings and follow-ups, on a lead or standalone, with an assignee and a
//! due time.

pub mod api;
pub mod service;
pub mod store;
