//! The kit workflow: SETUP → BUILD → PUBLISH → VERIFY.
