//! What a variant repo's `Makefile.toml` (cargo-make's, the repo's build entry point) says: the
//! tasks it has.

use std::path::Path;

use toml_edit::DocumentMut;

/// The repo's `Makefile.toml`, parsed; `None` when it is missing or not TOML (cargo make will
/// say what is wrong with it).
fn read(repo: &Path) -> Option<DocumentMut> {
    std::fs::read_to_string(repo.join("Makefile.toml")).ok()?.parse().ok()
}

/// Whether the Makefile.toml defines `[tasks.<task>]`.
pub(crate) fn has_task(doc: &DocumentMut, task: &str) -> bool {
    doc.get("tasks")
        .and_then(|tasks| tasks.as_table_like())
        .is_some_and(|tasks| tasks.contains_key(task))
}

/// How to install twoliter in a variant repo: its own `install-twoliter` task when it has one
/// (bottlerocket's does, at the version it pins).
pub(crate) fn install_twoliter_remedy(repo: &Path) -> String {
    if read(repo).is_some_and(|doc| has_task(&doc, "install-twoliter")) {
        format!(
            "run `cargo make install-twoliter` in {} (it installs the version the repo pins), then run this again",
            repo.display()
        )
    } else {
        crate::tools::twoliter_remedy(repo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks() {
        let doc: DocumentMut = "[env]\nX = 1\n\n[tasks.install-twoliter]\nscript = [\"true\"]\n\n[tasks.build]\n"
            .parse()
            .unwrap();
        assert!(has_task(&doc, "install-twoliter"));
        assert!(has_task(&doc, "build"));
        assert!(!has_task(&doc, "X"));
        assert!(!has_task(&"[env]\n".parse().unwrap(), "install-twoliter"));
    }
}
