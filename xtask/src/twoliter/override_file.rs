//! `Twoliter.override`: the sanctioned way to fetch a kit from another registry. Each entry is a
//! `[<vendor>.<kit or sdk name>]` table with an optional `registry` and `name`; it redirects every
//! fetch of that artifact, including kits pulled in by other kits' metadata, while vendor names
//! stay as they are.
//!
//! twoliter reads the file as a map of vendor → artifact → override, so anything else (such as a
//! bare `[local]` table holding `registry = "…"`) fails with "failed to deserialize overrides
//! file". Keys other than `registry` and `name` inside an entry are ignored by twoliter and kept
//! here.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use toml_edit::{Item, Table};

use crate::project::check_identifier;
use crate::twoliter::toml_doc::{check_registry, implicit_table, insert_child_table, set_str_key, table_with, Doc};

const FILE: &str = "Twoliter.override";
const TWOLITER_SAYS: &str = "twoliter would fail with \"failed to deserialize overrides file\"";
const EXAMPLE: &str = "`[bottlerocket.bottlerocket-core-kit]` with `registry = \"localhost:5000\"` under it";
const NEW_FILE_HEADER: &str = "# Fetch these kits from a local registry (written by `cargo xtask variant`).\n";

/// One override: where to fetch an artifact from, and under which repository name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Override {
    pub(crate) registry: Option<String>,
    pub(crate) name: Option<String>,
}

/// Reads the overrides: (vendor, artifact) → override. Errors on anything twoliter would fail
/// to read, saying how to fix it.
pub(crate) fn parse_overrides(text: &str) -> Result<BTreeMap<(String, String), Override>> {
    let mut doc = parse_doc(text)?;
    let mut overrides = BTreeMap::new();
    for (vendor, artifacts) in doc.root().iter() {
        let artifacts = artifacts.as_table_like().expect("checked by parse_doc");
        for (artifact, entry) in artifacts.iter() {
            let entry = entry.as_table_like().expect("checked by parse_doc");
            let field = |key: &str| entry.get(key).and_then(Item::as_str).map(str::to_owned);
            overrides.insert(
                (vendor.to_owned(), artifact.to_owned()),
                Override {
                    registry: field("registry"),
                    name: field("name"),
                },
            );
        }
    }
    Ok(overrides)
}

/// Writes `[<vendor>.<kit>] registry = "<registry>"` for each `(vendor, kit, registry)`, keeping
/// other entries and comments. An entry's `name` is dropped when it differs from the kit's, as
/// the local registry serves the kit under its own name. `None` (no file yet) starts a new file.
/// Running it twice gives the same text as once.
pub(crate) fn set_overrides(existing: Option<&str>, entries: &[(String, String, String)]) -> Result<String> {
    for (vendor, kit, registry) in entries {
        check_identifier("vendor", vendor)?;
        check_identifier("kit", kit)?;
        check_registry(registry)?;
    }
    let mut doc = parse_doc(existing.unwrap_or(""))?;
    for (vendor, kit, registry) in entries {
        let changed = set_entry(doc.root(), vendor, kit, registry)?;
        doc.mark_changed(changed);
    }
    match existing {
        Some(_) => Ok(doc.render()),
        None => Ok(format!("{NEW_FILE_HEADER}{}", doc.render())),
    }
}

fn set_entry(root: &mut Table, vendor: &str, kit: &str, registry: &str) -> Result<bool> {
    let Some(artifacts) = root.get_mut(vendor) else {
        root.insert(
            vendor,
            Item::Table(implicit_table(kit, table_with("registry", registry))),
        );
        return Ok(true);
    };
    if !artifacts.as_table_like().is_some_and(|t| t.contains_key(kit)) {
        insert_child_table(artifacts, kit, table_with("registry", registry));
        return Ok(true);
    }
    let artifacts = artifacts.as_table_like_mut().expect("checked by parse_doc");
    let entry = artifacts
        .get_mut(kit)
        .and_then(Item::as_table_like_mut)
        .expect("checked by parse_doc");
    let mut changed = set_str_key(entry, "registry", registry, &format!("{FILE}: {vendor}.{kit}"))?;
    if entry.get("name").and_then(Item::as_str).is_some_and(|name| name != kit) {
        entry.remove("name");
        changed = true;
    }
    Ok(changed)
}

/// Parses and checks the shape twoliter needs: every top-level value a table of tables whose
/// `registry` and `name`, when present, are strings.
fn parse_doc(text: &str) -> Result<Doc> {
    let mut doc = match Doc::parse(FILE, text) {
        Ok(doc) => doc,
        Err(err) => bail!("{err}\n{TWOLITER_SAYS}: fix the file or delete it"),
    };
    for (vendor, artifacts) in doc.root().iter() {
        let Some(artifacts) = artifacts.as_table_like() else {
            bail!(
                "{FILE}: `{vendor}` is a {} at the top level, but each entry must be a \
                 `[<vendor>.<kit>]` table, such as {EXAMPLE}; {TWOLITER_SAYS}: move it into such \
                 a table or delete it",
                artifacts.type_name()
            );
        };
        for (artifact, entry) in artifacts.iter() {
            let Some(entry) = entry.as_table_like() else {
                bail!(
                    "{FILE}: `[{vendor}]` holds `{artifact}` as a {}, but an override is a \
                     `[<vendor>.<kit>]` table (a bare `[{vendor}]` table with `{artifact} = …` is \
                     not one), such as {EXAMPLE}; {TWOLITER_SAYS}: rewrite it as \
                     `[<vendor>.<kit>]` or delete the file",
                    entry.type_name()
                );
            };
            for key in ["registry", "name"] {
                if let Some(value) = entry.get(key).filter(|v| !v.is_str()) {
                    bail!(
                        "{FILE}: `{key}` of `[{vendor}.{artifact}]` is a {} but must be a \
                         string; {TWOLITER_SAYS}: write `{key} = \"…\"`",
                        value.type_name()
                    );
                }
            }
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    fn entry(vendor: &str, kit: &str, registry: &str) -> (String, String, String) {
        (vendor.into(), kit.into(), registry.into())
    }

    const EXISTING: &str = r#"# Mirror of the SDK for offline builds.
[bottlerocket.bottlerocket-sdk]
registry = "mirror.example.com/bottlerocket" # corporate mirror

[bottlerocket.bottlerocket-core-kit]
registry = "public.ecr.aws/bottlerocket" # upstream
"#;

    #[test]
    fn absent_file_gets_a_new_one() {
        let text = set_overrides(
            None,
            &[entry("bottlerocket", "bottlerocket-core-kit", "localhost:5000")],
        )
        .unwrap();
        expect![[r#"
            # Fetch these kits from a local registry (written by `cargo xtask variant`).
            [bottlerocket.bottlerocket-core-kit]
            registry = "localhost:5000"
        "#]]
        .assert_eq(&text);
        let parsed = parse_overrides(&text).unwrap();
        assert_eq!(
            parsed[&("bottlerocket".to_owned(), "bottlerocket-core-kit".to_owned())],
            Override {
                registry: Some("localhost:5000".into()),
                name: None
            }
        );
        let again = set_overrides(
            Some(&text),
            &[entry("bottlerocket", "bottlerocket-core-kit", "localhost:5000")],
        );
        assert_eq!(again.unwrap(), text);
    }

    #[test]
    fn existing_entries_and_comments_are_kept() {
        let entries = [
            entry("bottlerocket", "bottlerocket-core-kit", "localhost:5000"),
            entry("bottlerocket", "bottlerocket-kernel-kit", "localhost:5000"),
            entry("acme", "acme-kit", "127.0.0.1:5000"),
        ];
        let text = set_overrides(Some(EXISTING), &entries).unwrap();
        expect![[r#"
            # Mirror of the SDK for offline builds.
            [bottlerocket.bottlerocket-sdk]
            registry = "mirror.example.com/bottlerocket" # corporate mirror

            [bottlerocket.bottlerocket-core-kit]
            registry = "localhost:5000" # upstream

            [bottlerocket.bottlerocket-kernel-kit]
            registry = "localhost:5000"

            [acme.acme-kit]
            registry = "127.0.0.1:5000"
        "#]]
        .assert_eq(&text);
        assert_eq!(set_overrides(Some(&text), &entries).unwrap(), text);
        assert_eq!(parse_overrides(&text).unwrap().len(), 4);
        assert_eq!(set_overrides(Some(EXISTING), &[]).unwrap(), EXISTING);
    }

    #[test]
    fn a_different_name_is_dropped_and_other_keys_kept() {
        let text = "[bottlerocket.bottlerocket-core-kit]\nname = \"core\"\nregistry = \"a\"\ntag = 1\n";
        let out = set_overrides(Some(text), &[entry("bottlerocket", "bottlerocket-core-kit", "l:1")]).unwrap();
        assert_eq!(
            out,
            "[bottlerocket.bottlerocket-core-kit]\nregistry = \"l:1\"\ntag = 1\n"
        );
        let same = "[v.k]\nname = \"k\"\nregistry = \"l:1\"\n";
        assert_eq!(set_overrides(Some(same), &[entry("v", "k", "l:1")]).unwrap(), same);
    }

    #[test]
    fn inline_and_dotted_entries_are_edited_in_place() {
        let inline = "bottlerocket = { bottlerocket-core-kit = { registry = \"a\" } } # note\n";
        expect![[r#"
            bottlerocket = { bottlerocket-core-kit = { registry = "l:1" } } # note
        "#]]
        .assert_eq(&set_overrides(Some(inline), &[entry("bottlerocket", "bottlerocket-core-kit", "l:1")]).unwrap());
        let dotted = "[bottlerocket]\nbottlerocket-sdk.registry = \"m\"\n";
        expect![[r#"
            [bottlerocket]
            bottlerocket-sdk.registry = "m"
            bottlerocket-core-kit.registry = "l:1"
        "#]]
        .assert_eq(&set_overrides(Some(dotted), &[entry("bottlerocket", "bottlerocket-core-kit", "l:1")]).unwrap());
    }

    #[test]
    fn root_dotted_entries_are_edited_in_place() {
        let text = "# mine\nbottlerocket.bottlerocket-core-kit.registry = \"a\" # was\n";
        let out = set_overrides(Some(text), &[entry("bottlerocket", "bottlerocket-core-kit", "l:1")]);
        assert_eq!(
            out.unwrap(),
            "# mine\nbottlerocket.bottlerocket-core-kit.registry = \"l:1\" # was\n"
        );
    }

    #[test]
    fn crlf_is_kept() {
        let text = EXISTING.replace('\n', "\r\n");
        let out = set_overrides(Some(&text), &[entry("bottlerocket", "bottlerocket-core-kit", "l:1")]).unwrap();
        assert_eq!(out, text.replace("\"public.ecr.aws/bottlerocket\"", "\"l:1\""));
    }

    #[test]
    fn malformed_files_are_rejected_with_the_fix() {
        let says = "twoliter would fail with \"failed to deserialize overrides file\"";
        let cases = [
            (
                "[local]\nregistry = \"localhost:5000\"\n",
                "`[local]` holds `registry` as a string, but an override is a `[<vendor>.<kit>]` table",
            ),
            (
                "registry = \"localhost:5000\"\n",
                "`registry` is a string at the top level",
            ),
            (
                "[v.k]\nregistry = 5000\n",
                "`registry` of `[v.k]` is a integer but must be a string",
            ),
            (
                "[v.k]\nname = [\"x\"]\n",
                "`name` of `[v.k]` is a array but must be a string",
            ),
            ("[v.k\n", "Twoliter.override is not valid TOML"),
        ];
        for (text, message) in cases {
            for result in [
                parse_overrides(text).map(|_| ()),
                set_overrides(Some(text), &[entry("v", "k", "l:1")]).map(|_| ()),
            ] {
                let err = result.unwrap_err().to_string();
                assert!(err.contains(message), "{err}\n---\n{message}");
                assert!(err.contains(says), "{err}");
            }
        }
    }

    #[test]
    fn bad_arguments_are_rejected() {
        let err = set_overrides(None, &[entry("bottle rocket", "k", "l:1")]).unwrap_err();
        assert!(err.to_string().starts_with("vendor `bottle rocket`"), "{err}");
        let err = set_overrides(None, &[entry("v", "k/x", "l:1")]).unwrap_err();
        assert!(err.to_string().starts_with("kit `k/x`"), "{err}");
        let err = set_overrides(None, &[entry("v", "k", "")]).unwrap_err();
        assert!(err.to_string().starts_with("registry is empty"), "{err}");
    }

    #[test]
    fn empty_file_parses_to_nothing() {
        assert!(parse_overrides("").unwrap().is_empty());
        assert!(parse_overrides("# nothing yet\n").unwrap().is_empty());
    }
}
