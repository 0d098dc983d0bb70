//! Authentication: passwords, sessions, access/refresh tokens, login throttling.

pub mod api;
pub mod cookies;
pub mod password;
pub mod service;
pub mod store;
pub mod throttle;
pub mod tokens;
pub mod web;
