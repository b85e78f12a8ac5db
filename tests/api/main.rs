//! Integration tests: the real service over HTTP, on a real database file
//! (and a real PostgreSQL database when one is reachable). Each test in an
//! `on_both_backends!` block runs once per backend.

mod helpers;

mod auth;
mod batching;
mod drafts;
mod faults;
mod hostile;
mod instances;
mod items;
mod operators;
mod process;
mod retries;
mod runbook;
mod security;
mod storage;
