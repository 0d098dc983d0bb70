//! Integration tests: the real app over HTTP, every test on SQLite and on PostgreSQL.

mod auth;
mod conventions;
mod email;
mod imports;
mod jobs;
mod jobs_api;
mod keys;
mod lead_pages;
mod leads;
mod members;
mod pages;
mod tenancy;
mod web;
mod worker;
