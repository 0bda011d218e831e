//! The variant workflow: UPDATE_CONFIG → UPDATE_LOCK → BUILD → VALIDATE.

pub mod compat;
pub mod lock;
pub mod override_file;
pub mod toml_doc;
pub mod twoliter_toml;
