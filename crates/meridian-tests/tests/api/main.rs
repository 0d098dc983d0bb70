//! Integration tests: the real app over HTTP, every test on SQLite and on PostgreSQL.

mod auth;
mod automation_pages;
mod automations;
mod connections;
mod conventions;
mod email;
mod email_pages;
mod imports;
mod jobs;
mod jobs_api;
mod keys;
mod lead_pages;
mod leads;
mod members;
mod notifications;
mod pages;
mod sequence_pages;
mod sequences;
mod tenancy;
mod web;
mod webhooks;
mod worker;
