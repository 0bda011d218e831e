//! What a variant repo's `Makefile.toml` (cargo-make's, the repo's build entry point) says: the
//! tasks it has, the twoliter it pins, and how it computes the build id that names image
//! directories.

use std::path::Path;

use toml_edit::DocumentMut;

/// The repo's `Makefile.toml`, parsed; `None` when it is missing or not TOML (cargo make will
/// say what is wrong with it).
pub(crate) fn read(repo: &Path) -> Option<DocumentMut> {
    std::fs::read_to_string(repo.join("Makefile.toml")).ok()?.parse().ok()
}

/// Whether the Makefile.toml defines `[tasks.<task>]`.
pub(crate) fn has_task(doc: &DocumentMut, task: &str) -> bool {
    doc.get("tasks")
        .and_then(|tasks| tasks.as_table_like())
        .is_some_and(|tasks| tasks.contains_key(task))
}

/// An `[env]` value: a plain string, or the `value` of a `{ value = … }` table.
fn env_str<'a>(doc: &'a DocumentMut, key: &str) -> Option<&'a str> {
    let item = doc.get("env")?.as_table_like()?.get(key)?;
    item.as_str().or_else(|| item.as_table_like()?.get("value")?.as_str())
}

/// `[env] TWOLITER_VERSION`, the twoliter its `install-twoliter` task installs (bottlerocket pins
/// `"v0.26.0"`).
pub(crate) fn twoliter_pin(doc: &DocumentMut) -> Option<semver::Version> {
    crate::twoliter::compat::parse_pin(env_str(doc, "TWOLITER_VERSION")?)
}

/// The `--abbrev` of the `git describe` that the Makefile.toml's `[env] BUILDSYS_VERSION_BUILD`
/// script runs for the build id. bottlerocket's passes none (git's default length), unlike
/// twoliter's own Makefile.toml since 0.7.3; the repo's wins, as it is in the environment when
/// twoliter runs cargo make. `None` also when the script cannot be read.
pub(crate) fn build_id_abbrev(doc: &DocumentMut) -> Option<u32> {
    let item = doc.get("env")?.as_table_like()?.get("BUILDSYS_VERSION_BUILD")?;
    let script = item.as_table_like()?.get("script")?;
    let lines: Vec<&str> = match script.as_array() {
        Some(array) => array.iter().filter_map(|line| line.as_str()).collect(),
        None => script.as_str().into_iter().collect(),
    };
    let line = lines.into_iter().find(|line| line.contains("git describe"))?;
    let mut words = line.split_whitespace();
    while let Some(word) = words.next() {
        if let Some(n) = word.strip_prefix("--abbrev=") {
            return n.parse().ok();
        }
        if word == "--abbrev" {
            return words.next()?.parse().ok();
        }
    }
    None
}

/// Whether the repo's Makefile.toml has an `install-twoliter` task (bottlerocket's does, and
/// installs the version it pins).
pub(crate) fn installs_twoliter(repo: &Path) -> bool {
    read(repo).is_some_and(|doc| has_task(&doc, "install-twoliter"))
}

/// How to install twoliter in a variant repo: its own `install-twoliter` task when it has one
/// (bottlerocket's does, at the version it pins).
pub(crate) fn install_twoliter_remedy(repo: &Path) -> String {
    if installs_twoliter(repo) {
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

    /// As in bottlerocket's Makefile.toml.
    const BOTTLEROCKET: &str = r#"[env]
TWOLITER_VERSION = "v0.26.0"
BUILDSYS_VERSION_BUILD = { script = ["git describe --always --dirty --exclude '*' || echo 00000000"] }
BUILDSYS_VARIANT = "aws-k8s-1.32"
"#;

    #[test]
    fn pins_and_build_ids() {
        let doc: DocumentMut = BOTTLEROCKET.parse().unwrap();
        assert_eq!(twoliter_pin(&doc), Some(semver::Version::new(0, 26, 0)));
        assert_eq!(build_id_abbrev(&doc), None);
        let with = |script: &str| -> DocumentMut {
            BOTTLEROCKET
                .replace("--exclude '*' ||", &format!("--exclude '*' {script} ||"))
                .parse()
                .unwrap()
        };
        assert_eq!(build_id_abbrev(&with("--abbrev=8")), Some(8));
        assert_eq!(build_id_abbrev(&with("--abbrev 12")), Some(12));
        let doc: DocumentMut = "[env]\nTWOLITER_VERSION = { value = \"0.25.0-rc1\" }\n\
                                BUILDSYS_VERSION_BUILD = { script = [\"set -e\", \"git describe --abbrev=9\"] }\n"
            .parse()
            .unwrap();
        assert_eq!(twoliter_pin(&doc), Some(semver::Version::parse("0.25.0-rc1").unwrap()));
        assert_eq!(build_id_abbrev(&doc), Some(9));
        assert_eq!(twoliter_pin(&"[env]\n".parse().unwrap()), None);
    }

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
