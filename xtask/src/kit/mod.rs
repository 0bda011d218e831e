//! The kit workflow: SETUP → BUILD → PUBLISH → VERIFY.

pub mod infra;
pub mod repo;
