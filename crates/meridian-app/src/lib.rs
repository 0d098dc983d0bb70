//! The Meridian application: every feature (one module each, with its store, service, API and web
//! handlers) and the HTTP app that serves them.

pub mod apikeys;
pub mod app;
pub mod audit;
pub mod auth;
pub mod automations;
pub mod config;
pub mod demo;
pub mod email;
pub mod housekeeping;
pub mod http;
pub mod imports;
pub mod jobs;
pub mod leads;
pub mod net;
pub mod notes;
pub mod notifications;
pub mod openapi;
pub mod ops;
pub mod orgs;
pub mod pipelines;
pub mod secrets;
pub mod state;
pub mod tasks;
pub mod views;
pub mod web;
pub mod webhooks;

pub use app::{build_state, metrics_router, router, serve};
pub use config::{AppConfig, SignupPolicy};
pub use state::AppState;
