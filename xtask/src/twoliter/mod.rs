//! The project files twoliter reads, and what this xtask knows of twoliter's versions:
//! `Twoliter.toml` (`project`), `Twoliter.lock` (`lock`), `Twoliter.override` (`override_file`),
//! `Infra.toml` (`infra`), the comment-keeping TOML editor they share (`toml_doc`), and the
//! compatibility rules between twoliter generations (`compat`).

/// The vendor the xtask declares for the local registry: `[vendor.local]` in a kit repo's
/// `Infra.toml` (to publish there), and in a variant repo's `Twoliter.toml` with the `vendor`
/// strategy.
pub(crate) const LOCAL_VENDOR: &str = "local";

pub(crate) mod compat;
pub(crate) mod infra;
pub(crate) mod lock;
pub(crate) mod override_file;
pub(crate) mod project;
pub(crate) mod toml_doc;
