//! The variant workflow: UPDATE_CONFIG → UPDATE_LOCK → BUILD → VALIDATE.

pub mod gpt;
pub mod image;
pub mod liblz4;
pub mod lz4check;
pub mod sample_disk;
