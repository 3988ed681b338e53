//! Calls to other services.

pub mod user_client;
