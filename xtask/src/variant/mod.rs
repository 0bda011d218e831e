//! The variant workflow: UPDATE_CONFIG → UPDATE_LOCK → BUILD → VALIDATE.

pub mod lz4check;
