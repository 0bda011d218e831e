//! A kit repo's `Infra.toml`: where `twoliter publish kit <kit> <vendor>` pushes.
//!
//! Only `[vendor.<name>] registry = "…"` is ever touched; every other byte is kept. twoliter
//! rejects unknown top-level keys in this file, so nothing else is ever added.

use anyhow::{anyhow, bail, Result};
use toml_edit::{Item, Table};

use crate::project::check_identifier;
use crate::twoliter::toml_doc::{check_registry, implicit_table, insert_child_table, set_str_key, table_with, Doc};

const FILE: &str = "Infra.toml";

/// Infra.toml text with `[vendor.<vendor>] registry = "<registry>"` set. `None` (no file yet)
/// gives a minimal file; an existing file keeps its other vendors, keys and comments, and a
/// vendor pointing elsewhere is repointed. Running it twice gives the same text as once.
pub(crate) fn set_vendor_registry(infra_toml: Option<&str>, vendor: &str, registry: &str) -> Result<String> {
    check_identifier("vendor", vendor)?;
    check_registry(registry)?;
    let mut doc = Doc::parse(FILE, infra_toml.unwrap_or(""))?;
    let changed = set_vendor_in(doc.root(), FILE, vendor, registry)?;
    doc.mark_changed(changed);
    Ok(doc.render())
}

/// The registry `[vendor.<vendor>]` names in Infra.toml, if it names one.
pub(crate) fn vendor_registry(infra_toml: &str, vendor: &str) -> Result<Option<String>> {
    let mut doc = Doc::parse(FILE, infra_toml)?;
    vendor_registry_in(doc.root(), FILE, vendor)
}

/// Reads `vendor.<vendor>.registry` from a parsed Infra.toml or Twoliter.toml.
pub(crate) fn vendor_registry_in(root: &Table, file: &str, vendor: &str) -> Result<Option<String>> {
    let Some(vendors) = root.get("vendor") else {
        return Ok(None);
    };
    let vendors = vendors
        .as_table_like()
        .ok_or_else(|| not_a_vendor_table(file, vendors))?;
    let Some(entry) = vendors.get(vendor) else {
        return Ok(None);
    };
    let entry = entry
        .as_table_like()
        .ok_or_else(|| not_a_vendor_entry(file, vendor, entry))?;
    match entry.get("registry") {
        None => Ok(None),
        Some(registry) => registry.as_str().map(|s| Some(s.to_owned())).ok_or_else(|| {
            anyhow!(
                "{file}: `vendor.{vendor}.registry` is a {} but must be a string such as \
                 \"localhost:5000\"",
                registry.type_name()
            )
        }),
    }
}

/// Sets `vendor.<vendor>.registry` in a parsed Infra.toml or Twoliter.toml (both use the same
/// shape). A new vendor follows the style of the existing ones: `[vendor.x]` headers (placed
/// after the last existing vendor table), dotted keys, or inline tables. Returns whether the
/// document changed.
pub(crate) fn set_vendor_in(root: &mut Table, file: &str, vendor: &str, registry: &str) -> Result<bool> {
    let Some(vendors) = root.get_mut("vendor") else {
        root.insert(
            "vendor",
            Item::Table(implicit_table(vendor, table_with("registry", registry))),
        );
        return Ok(true);
    };
    if vendors.as_table_like().is_none() {
        return Err(not_a_vendor_table(file, vendors));
    }
    let exists = vendors.as_table_like().is_some_and(|t| t.contains_key(vendor));
    if !exists {
        insert_child_table(vendors, vendor, table_with("registry", registry));
        return Ok(true);
    }
    let vendors = vendors.as_table_like_mut().expect("checked to be a table above");
    let entry = vendors.get_mut(vendor).expect("checked to exist above");
    if entry.as_table_like().is_none() {
        return Err(not_a_vendor_entry(file, vendor, entry));
    }
    let entry = entry.as_table_like_mut().expect("checked to be a table above");
    set_str_key(entry, "registry", registry, &format!("{file}: vendor.{vendor}"))
}

fn not_a_vendor_table(file: &str, item: &Item) -> anyhow::Error {
    anyhow!(
        "{file}: `vendor` is a {} but must hold one table per vendor, such as \
         `[vendor.local]` with `registry = \"localhost:5000\"`",
        item.type_name()
    )
}

fn not_a_vendor_entry(file: &str, vendor: &str, item: &Item) -> anyhow::Error {
    anyhow!(
        "{file}: `vendor.{vendor}` is a {} but must be a table: write `[vendor.{vendor}]` with \
         `registry = \"…\"` under it",
        item.type_name()
    )
}

/// Errors when a vendor table is missing or names another registry; the gate uses it to
/// re-check SETUP.
pub(crate) fn check_vendor_registry(infra_toml: &str, vendor: &str, registry: &str) -> Result<()> {
    match vendor_registry(infra_toml, vendor)? {
        Some(found) if found == registry => Ok(()),
        Some(found) => bail!(
            "{FILE} points vendor `{vendor}` at `{found}`, not the local registry `{registry}`: \
             run the kit SETUP phase again"
        ),
        None => bail!("{FILE} has no `[vendor.{vendor}]` registry: run the kit SETUP phase again"),
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    const REPO_INFRA: &str = r#"# Publishing settings for this checkout.
[aws]
regions = ["us-west-2"] # where AMIs go

[vendor.bottlerocket]
registry = "public.ecr.aws/bottlerocket" # upstream

# Signing
[repo.default]
root_role_url = "https://example.com/root.json"
"#;

    #[test]
    fn absent_file_gives_a_minimal_one() {
        let text = set_vendor_registry(None, "local", "localhost:5000").unwrap();
        expect![[r#"
            [vendor.local]
            registry = "localhost:5000"
        "#]]
        .assert_eq(&text);
        assert_eq!(
            vendor_registry(&text, "local").unwrap().as_deref(),
            Some("localhost:5000")
        );
        assert_eq!(set_vendor_registry(Some(""), "local", "localhost:5000").unwrap(), text);
    }

    #[test]
    fn new_vendor_goes_after_the_other_vendors() {
        let text = set_vendor_registry(Some(REPO_INFRA), "local", "localhost:5001").unwrap();
        expect![[r#"
            # Publishing settings for this checkout.
            [aws]
            regions = ["us-west-2"] # where AMIs go

            [vendor.bottlerocket]
            registry = "public.ecr.aws/bottlerocket" # upstream

            [vendor.local]
            registry = "localhost:5001"

            # Signing
            [repo.default]
            root_role_url = "https://example.com/root.json"
        "#]]
        .assert_eq(&text);
        assert_eq!(
            set_vendor_registry(Some(&text), "local", "localhost:5001").unwrap(),
            text
        );
        assert_eq!(
            vendor_registry(&text, "bottlerocket").unwrap().as_deref(),
            Some("public.ecr.aws/bottlerocket")
        );
    }

    #[test]
    fn vendor_pointing_elsewhere_is_repointed_keeping_its_comment() {
        let text = set_vendor_registry(Some(REPO_INFRA), "bottlerocket", "localhost:5000").unwrap();
        let changed: Vec<_> = REPO_INFRA.lines().zip(text.lines()).filter(|(a, b)| a != b).collect();
        assert_eq!(
            changed,
            [(
                "registry = \"public.ecr.aws/bottlerocket\" # upstream",
                "registry = \"localhost:5000\" # upstream"
            )]
        );
        assert_eq!(REPO_INFRA.lines().count(), text.lines().count());
    }

    #[test]
    fn same_registry_leaves_the_file_untouched() {
        let text = "[vendor.local]\nregistry   =   'localhost:5000'   # mine\n";
        assert_eq!(
            set_vendor_registry(Some(text), "local", "localhost:5000").unwrap(),
            text
        );
    }

    #[test]
    fn vendor_without_registry_gets_one() {
        let text = set_vendor_registry(Some("[vendor.local]\n# todo\n"), "local", "localhost:5000");
        // A comment ending the file stays at the end.
        expect![[r#"
            [vendor.local]
            registry = "localhost:5000"
            # todo
        "#]]
        .assert_eq(&text.unwrap());
    }

    #[test]
    fn inline_and_dotted_styles_are_followed() {
        let inline = "vendor = { upstream = { registry = \"a\" } }\n";
        expect![[r#"
            vendor = { upstream = { registry = "a" }, local = { registry = "localhost:5000" } }
        "#]]
        .assert_eq(&set_vendor_registry(Some(inline), "local", "localhost:5000").unwrap());
        expect![[r#"
            vendor = { upstream = { registry = "localhost:5000" } }
        "#]]
        .assert_eq(&set_vendor_registry(Some(inline), "upstream", "localhost:5000").unwrap());

        let dotted = "[vendor]\nupstream.registry = \"a\" # up\n";
        let text = set_vendor_registry(Some(dotted), "local", "localhost:5000").unwrap();
        expect![[r#"
            [vendor]
            upstream.registry = "a" # up
            local.registry = "localhost:5000"
        "#]]
        .assert_eq(&text);
        assert_eq!(
            vendor_registry(&text, "local").unwrap().as_deref(),
            Some("localhost:5000")
        );

        let mixed = "[vendor]\nlocal = { registry = \"a\" } # inline\n";
        expect![[r#"
            [vendor]
            local = { registry = "b" } # inline
        "#]]
        .assert_eq(&set_vendor_registry(Some(mixed), "local", "b").unwrap());
    }

    #[test]
    fn crlf_is_kept() {
        let text = REPO_INFRA.replace('\n', "\r\n");
        let out = set_vendor_registry(Some(&text), "local", "localhost:5000").unwrap();
        assert_eq!(out.matches('\n').count(), out.matches("\r\n").count());
        assert!(out.contains("[vendor.local]\r\nregistry = \"localhost:5000\"\r\n"));
    }

    #[test]
    fn errors_name_the_problem_and_the_fix() {
        let err = set_vendor_registry(Some("[vendor.local\n"), "local", "x").unwrap_err();
        assert!(err.to_string().starts_with("Infra.toml is not valid TOML: "), "{err}");

        let err = set_vendor_registry(Some("vendor = \"local\"\n"), "local", "x").unwrap_err();
        assert!(
            err.to_string()
                .contains("`vendor` is a string but must hold one table per vendor"),
            "{err}"
        );

        let err = set_vendor_registry(Some("[vendor]\nlocal = \"x\"\n"), "local", "x").unwrap_err();
        assert!(
            err.to_string()
                .contains("`vendor.local` is a string but must be a table"),
            "{err}"
        );

        let err = set_vendor_registry(Some("[vendor.local.registry]\nx = 1\n"), "local", "x");
        assert!(err
            .unwrap_err()
            .to_string()
            .contains("registry is a table but must be a string"));

        let err = set_vendor_registry(None, "lo/cal", "x").unwrap_err();
        assert!(err.to_string().starts_with("vendor `lo/cal` contains `/`"), "{err}");

        let err = set_vendor_registry(None, "local", "http://x").unwrap_err();
        assert!(err.to_string().contains("URL scheme"), "{err}");

        let err = vendor_registry("[vendor.local]\nregistry = 5000\n", "local").unwrap_err();
        assert!(err.to_string().contains("must be a string"), "{err}");
    }

    #[test]
    fn reading_the_registry_back() {
        assert_eq!(vendor_registry("", "local").unwrap(), None);
        assert_eq!(
            vendor_registry("[vendor.other]\nregistry = \"a\"\n", "local").unwrap(),
            None
        );
        assert_eq!(vendor_registry("[vendor.local]\n", "local").unwrap(), None);
        check_vendor_registry("[vendor.local]\nregistry = \"l:1\"\n", "local", "l:1").unwrap();
        let err = check_vendor_registry("[vendor.local]\nregistry = \"l:2\"\n", "local", "l:1");
        assert!(err
            .unwrap_err()
            .to_string()
            .contains("at `l:2`, not the local registry `l:1`"));
        let err = check_vendor_registry("", "local", "l:1").unwrap_err();
        assert!(err.to_string().contains("no `[vendor.local]`"), "{err}");
    }
}
