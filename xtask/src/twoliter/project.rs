//! A variant repo's `Twoliter.toml`: read the project, set kit versions, and (opt-in) point kits
//! at another vendor.
//!
//! Newer twoliter rejects unknown keys, so these edits never add keys of their own: only
//! `version` and `vendor` of existing `[[kit]]` entries and `[vendor.<name>] registry`.
//!
//! Kits are `[[kit]]` tables, the form twoliter documents, or an inline array
//! `kit = [{ name = …, version = …, vendor = … }]`, which twoliter reads the same way (serde
//! sees one list either way); an inline array is edited in place and stays inline. A
//! `[kit.<name>]` table is an error saying how to rewrite it.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use toml_edit::DocumentMut;
use toml_edit::{Table, TableLike};

use crate::project::check_identifier;
use crate::twoliter::infra::{set_vendor_in, vendor_registry_in};
use crate::twoliter::toml_doc::{
    check_registry, optional_str, required_str, set_str_key, table_array, table_array_mut, Doc,
};

const FILE: &str = "Twoliter.toml";

/// A kit or SDK dependency: `name`, `version`, `vendor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KitRef {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) vendor: String,
}

/// What a variant repo's Twoliter.toml declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProjectInfo {
    pub(crate) schema_version: i64,
    pub(crate) release_version: String,
    /// `project-vendor` (schema-version 2, twoliter 0.12 and later).
    pub(crate) project_vendor: Option<String>,
    /// Vendor name → registry.
    pub(crate) vendors: BTreeMap<String, String>,
    pub(crate) sdk: Option<KitRef>,
    pub(crate) kits: Vec<KitRef>,
}

/// Reads and checks Twoliter.toml the way twoliter would: names and vendors are identifiers,
/// versions are semver, and every vendor a kit or the SDK names is declared.
pub(crate) fn parse(twoliter_toml: &str) -> Result<ProjectInfo> {
    let mut doc = Doc::parse(FILE, twoliter_toml)?;
    let root: &Table = doc.root();

    let schema_version = match root.get("schema-version") {
        None => bail!("{FILE} has no `schema-version`: add `schema-version = 1` at the top"),
        Some(item) => item.as_integer().ok_or_else(|| {
            anyhow!(
                "{FILE}: `schema-version` is a {} but must be an integer",
                item.type_name()
            )
        })?,
    };
    let release_version = required_str(root, "release-version", FILE)?;
    let project_vendor = optional_str(root, "project-vendor", FILE)?;
    if schema_version == 2 && project_vendor.is_none() {
        bail!(
            "{FILE} has `schema-version = 2` but no `project-vendor`, which schema 2 requires: twoliter \
             0.12 and later fail with \"missing field `project-vendor`\". Add `project-vendor = \"…\"` \
             (the vendor name your images report, e.g. \"Bottlerocket\") next to `release-version`, or go \
             back to `schema-version = 1`"
        );
    }

    let mut vendors = BTreeMap::new();
    if let Some(item) = root.get("vendor") {
        let table = item.as_table_like().ok_or_else(|| {
            anyhow!(
                "{FILE}: `vendor` is a {} but must hold one `[vendor.<name>]` table per vendor",
                item.type_name()
            )
        })?;
        for (name, _) in table.iter() {
            check_identifier(&format!("{FILE}: vendor"), name)?;
            let registry = vendor_registry_in(root, FILE, name)?
                .ok_or_else(|| anyhow!("{FILE}: `[vendor.{name}]` has no `registry`: add `registry = \"…\"`"))?;
            vendors.insert(name.to_owned(), registry);
        }
    }

    let sdk = match root.get("sdk") {
        None => None,
        Some(item) => {
            let table = item
                .as_table_like()
                .ok_or_else(|| anyhow!("{FILE}: `sdk` is a {} but must be an `[sdk]` table", item.type_name()))?;
            Some(dependency(table, "[sdk]")?)
        }
    };
    let kits = table_array(root, "kit", FILE)?
        .into_iter()
        .enumerate()
        .map(|(index, table)| dependency(table, &format!("[[kit]] entry {}", index + 1)))
        .collect::<Result<Vec<_>>>()?;

    for dep in sdk.iter().chain(&kits) {
        if !vendors.contains_key(&dep.vendor) {
            let declared = if vendors.is_empty() {
                "none are declared".to_owned()
            } else {
                format!("declared: {}", vendors.keys().cloned().collect::<Vec<_>>().join(", "))
            };
            bail!(
                "{FILE}: `{}` names vendor `{}`, which has no `[vendor.{}]` table ({declared}); \
                 twoliter would fail with \"cannot define a dependency on a vendor that is not \
                 specified in Twoliter.toml\": add `[vendor.{}]` with `registry = \"…\"`, or use \
                 a declared vendor",
                dep.name,
                dep.vendor,
                dep.vendor,
                dep.vendor
            );
        }
    }

    Ok(ProjectInfo {
        schema_version,
        release_version,
        project_vendor,
        vendors,
        sdk,
        kits,
    })
}

fn dependency(table: &dyn TableLike, what: &str) -> Result<KitRef> {
    let name = required_str(table, "name", &format!("{FILE}: {what}"))?;
    let what = format!("{FILE}: `{name}`");
    check_identifier(&format!("{FILE}: name"), &name)?;
    let version = required_str(table, "version", &what)?;
    let vendor = required_str(table, "vendor", &what)?;
    check_identifier(&format!("{what} vendor"), &vendor)?;
    check_kit_version(&name, &version).map_err(|err| anyhow!("{FILE}: {err}"))?;
    Ok(KitRef { name, version, vendor })
}

/// Sets the `version` of each named kit, keeping layout and inline comments. A kit missing from
/// the file, or a version that is not semver, is an error.
pub(crate) fn set_kit_versions(twoliter_toml: &str, versions: &[(String, String)]) -> Result<String> {
    for (kit, version) in versions {
        check_kit_version(kit, version)?;
    }
    let mut doc = Doc::parse(FILE, twoliter_toml)?;
    let mut changed = false;
    {
        let mut entries = table_array_mut(doc.root(), "kit", FILE)?;
        for (kit, version) in versions {
            let matching = entries_named(&mut entries, kit)?;
            for entry in matching {
                changed |= set_str_key(entry, "version", version, &format!("{FILE}: kit {kit}"))?;
            }
        }
    }
    doc.mark_changed(changed);
    Ok(doc.render())
}

/// Strategy `vendor` (opt-in): declares `[vendor.<vendor>] registry = "<registry>"` (after the
/// existing vendor tables) and sets `vendor = "<vendor>"` on the named kits.
///
/// The default strategy is `Twoliter.override` instead, because it keeps vendor names as they
/// are: kits published by one kit repo name their dependencies under the upstream vendor (say
/// `bottlerocket-core-kit` from `bottlerocket`), and an override redirects those transitive
/// fetches too. Renaming a kit's vendor here redirects only this file's direct entry, so a kit
/// that another kit also depends on gets locked twice, under two vendors: once from the local
/// registry and once upstream through the other kit's metadata, and both copies are fetched into
/// the build. This strategy also edits a tracked file, where the override file is gitignored.
pub(crate) fn switch_kits_to_vendor(
    twoliter_toml: &str,
    vendor: &str,
    registry: &str,
    kits: &[String],
) -> Result<String> {
    check_identifier("vendor", vendor)?;
    check_registry(registry)?;
    let info = parse(twoliter_toml)?;
    if let Some(existing) = info.vendors.get(vendor).filter(|r| *r != registry) {
        let others: Vec<&str> = info
            .sdk
            .iter()
            .chain(&info.kits)
            .filter(|dep| dep.vendor == vendor && !kits.contains(&dep.name))
            .map(|dep| dep.name.as_str())
            .collect();
        if !others.is_empty() {
            bail!(
                "{FILE}: vendor `{vendor}` already points at `{existing}` and {} use it; \
                 pointing it at `{registry}` would move them too: pick another vendor name, \
                 such as `local`",
                others.join(", ")
            );
        }
    }
    let mut doc = Doc::parse(FILE, twoliter_toml)?;
    let mut changed = set_vendor_in(doc.root(), FILE, vendor, registry)?;
    {
        let mut entries = table_array_mut(doc.root(), "kit", FILE)?;
        for kit in kits {
            for entry in entries_named(&mut entries, kit)? {
                changed |= set_str_key(entry, "vendor", vendor, &format!("{FILE}: kit {kit}"))?;
            }
        }
    }
    doc.mark_changed(changed);
    Ok(doc.render())
}

/// The `[[kit]]` entries named `kit`, or an error listing the kits the file has.
fn entries_named<'e, 'a>(entries: &'e mut [&'a mut dyn TableLike], kit: &str) -> Result<Vec<&'e mut dyn TableLike>>
where
    'a: 'e,
{
    let names: Vec<String> = entries
        .iter()
        .filter_map(|e| e.get("name").and_then(|n| n.as_str()).map(str::to_owned))
        .collect();
    let matching: Vec<&'e mut dyn TableLike> = entries
        .iter_mut()
        .filter(|e| e.get("name").and_then(|n| n.as_str()) == Some(kit))
        .map(|e| &mut **e as &mut dyn TableLike)
        .collect();
    if matching.is_empty() {
        let present = if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        };
        bail!(
            "{FILE} has no `[[kit]]` named `{kit}` (kits present: {present}): add a `[[kit]]` \
             entry for it or pick one of those"
        );
    }
    Ok(matching)
}

/// The kit's version: Twoliter.toml `release-version`, which must be semver.
pub(crate) fn release_version(twoliter_toml: &str) -> Result<semver::Version> {
    let doc = twoliter_toml
        .parse::<DocumentMut>()
        .map_err(|err| anyhow!("Twoliter.toml is not valid TOML: {}", err.to_string().trim_end()))?;
    let item = doc
        .get("release-version")
        .context("Twoliter.toml has no `release-version`: add `release-version = \"1.0.0\"`")?;
    let text = item.as_str().ok_or_else(|| {
        anyhow!(
            "Twoliter.toml `release-version` is a {} but must be a string such as \"1.0.0\"",
            item.type_name()
        )
    })?;
    semver::Version::parse(text).map_err(|err| {
        anyhow!(
            "Twoliter.toml `release-version = \"{text}\"` is not a semver version ({err}): \
             use MAJOR.MINOR.PATCH, such as \"1.0.0\""
        )
    })
}

/// Checks a version given for a kit (`3.1.1`): semver, without a leading `v`.
pub(crate) fn check_kit_version(kit: &str, version: &str) -> Result<()> {
    if version.starts_with('v') && semver::Version::parse(&version[1..]).is_ok() {
        bail!(
            "kit `{kit}` version `{version}`: drop the leading `v` (write `{}`)",
            &version[1..]
        );
    }
    semver::Version::parse(version).map(|_| ()).map_err(|err| {
        anyhow!(
            "kit `{kit}` version `{version}` is not semver ({err}): use MAJOR.MINOR.PATCH, \
             such as `3.1.1`"
        )
    })
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    /// Shaped like the bottlerocket repo's Twoliter.toml.
    const VARIANT: &str = r#"schema-version = 1
release-version = "1.26.1"

[vendor.bottlerocket]
registry = "public.ecr.aws/bottlerocket"

[sdk]
name = "bottlerocket-sdk"
version = "0.46.0"
vendor = "bottlerocket"

# Kits pinned for this release.
[[kit]]
name = "bottlerocket-core-kit"
version = "3.1.1" # bumped for the kernel update
vendor = "bottlerocket"

[[kit]]
name = "bottlerocket-kernel-kit"
version = "1.0.2"
vendor = "bottlerocket"
"#;

    fn kits(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The lines that differ between two texts with the same number of lines.
    fn changed_lines<'a>(before: &'a str, after: &'a str) -> Vec<(&'a str, &'a str)> {
        assert_eq!(before.lines().count(), after.lines().count(), "{after}");
        before.lines().zip(after.lines()).filter(|(a, b)| a != b).collect()
    }

    #[test]
    fn parses_the_project() {
        let info = parse(VARIANT).unwrap();
        assert_eq!(info.schema_version, 1);
        assert_eq!(info.release_version, "1.26.1");
        assert_eq!(info.project_vendor, None);
        assert_eq!(info.vendors["bottlerocket"], "public.ecr.aws/bottlerocket");
        let bottlerocket = |name: &str, version: &str| KitRef {
            name: name.into(),
            version: version.into(),
            vendor: "bottlerocket".into(),
        };
        assert_eq!(info.sdk, Some(bottlerocket("bottlerocket-sdk", "0.46.0")));
        assert_eq!(
            info.kits,
            [
                bottlerocket("bottlerocket-core-kit", "3.1.1"),
                bottlerocket("bottlerocket-kernel-kit", "1.0.2")
            ]
        );
        let json = serde_json::to_string(&info).unwrap();
        assert_eq!(serde_json::from_str::<ProjectInfo>(&json).unwrap(), info);
    }

    #[test]
    fn parses_schema_2_with_project_vendor() {
        let text = VARIANT.replace(
            "schema-version = 1\n",
            "schema-version = 2\nproject-vendor = \"Bottlerocket\"\n",
        );
        let info = parse(&text).unwrap();
        assert_eq!(info.schema_version, 2);
        assert_eq!(info.project_vendor.as_deref(), Some("Bottlerocket"));
        assert_eq!(info.kits.len(), 2);
        let edited = set_kit_versions(&text, &kits(&[("bottlerocket-kernel-kit", "1.1.0")])).unwrap();
        assert_eq!(
            changed_lines(&text, &edited),
            [("version = \"1.0.2\"", "version = \"1.1.0\"")]
        );
    }

    #[test]
    fn inline_kit_arrays_are_read_and_edited_in_their_own_form() {
        let text = "schema-version = 1\nrelease-version = \"1.0.0\"\n\
                    vendor = { bottlerocket = { registry = \"r\" } }\n\
                    kit = [\n  { name = \"a\", version = \"1.0.0\", vendor = \"bottlerocket\" }, # first\n  \
                    {name=\"b\",version=\"2.0.0\",vendor=\"bottlerocket\"},\n]\n";
        let info = parse(text).unwrap();
        let names: Vec<(&str, &str)> = info
            .kits
            .iter()
            .map(|k| (k.name.as_str(), k.version.as_str()))
            .collect();
        assert_eq!(names, [("a", "1.0.0"), ("b", "2.0.0")]);
        let edited = set_kit_versions(text, &kits(&[("a", "1.1.0"), ("b", "2.0.1")])).unwrap();
        assert_eq!(
            changed_lines(text, &edited),
            [
                (
                    "  { name = \"a\", version = \"1.0.0\", vendor = \"bottlerocket\" }, # first",
                    "  { name = \"a\", version = \"1.1.0\", vendor = \"bottlerocket\" }, # first"
                ),
                (
                    "  {name=\"b\",version=\"2.0.0\",vendor=\"bottlerocket\"},",
                    "  {name=\"b\",version=\"2.0.1\",vendor=\"bottlerocket\"},"
                ),
            ]
        );
        let switched = switch_kits_to_vendor(&edited, "local", "localhost:5000", &["b".to_owned()]).unwrap();
        expect![[r#"
            schema-version = 1
            release-version = "1.0.0"
            vendor = { bottlerocket = { registry = "r" }, local = { registry = "localhost:5000" } }
            kit = [
              { name = "a", version = "1.1.0", vendor = "bottlerocket" }, # first
              {name="b",version="2.0.1",vendor="local"},
            ]
        "#]]
        .assert_eq(&switched);
        assert_eq!(parse(&switched).unwrap().kits[1].vendor, "local");
    }

    #[test]
    fn parse_errors() {
        let schema_2 = VARIANT.replace("schema-version = 1", "schema-version = 2");
        let cases = [
            (
                schema_2,
                "Twoliter.toml has `schema-version = 2` but no `project-vendor`, which schema 2 requires",
            ),
            (
                VARIANT.replace("schema-version = 1\n", ""),
                "Twoliter.toml has no `schema-version`",
            ),
            (
                VARIANT.replace("release-version = \"1.26.1\"\n", ""),
                "Twoliter.toml has no `release-version`",
            ),
            (
                // `[kit.x]` beside `[[kit]]` tables is not even valid TOML.
                VARIANT.replace(
                    "[[kit]]\nname = \"bottlerocket-core-kit\"",
                    "[kit.bottlerocket-core-kit]\nname = \"x\"",
                ),
                "Twoliter.toml is not valid TOML",
            ),
            (
                "schema-version = 1\nrelease-version = \"1\"\n[kit.bottlerocket-core-kit]\nversion = \"1.0.0\"\n"
                    .into(),
                "Twoliter.toml declares `[kit.bottlerocket-core-kit]`, but `kit` must be an array of tables: \
                 write each entry as its own `[[kit]]` table with `name = \"bottlerocket-core-kit\"`",
            ),
            (
                "schema-version = 1\nrelease-version = \"1\"\nkit = [\"a\"]\n".into(),
                "Twoliter.toml: entry 1 of `kit` is a string, but each must be a table",
            ),
            (
                VARIANT.replace("version = \"3.1.1\"", "version = \"3.1\""),
                "Twoliter.toml: kit `bottlerocket-core-kit` version `3.1` is not semver",
            ),
            (
                VARIANT.replace("name = \"bottlerocket-kernel-kit\"", "name = \"kernel kit\""),
                "Twoliter.toml: name `kernel kit` contains ` `",
            ),
            (
                VARIANT.replace("name = \"bottlerocket-kernel-kit\"\n", ""),
                "Twoliter.toml: [[kit]] entry 2 has no `name`",
            ),
            (
                VARIANT.replace(
                    "version = \"1.0.2\"\nvendor = \"bottlerocket\"",
                    "version = \"1.0.2\"\nvendor = \"local\"",
                ),
                "Twoliter.toml: `bottlerocket-kernel-kit` names vendor `local`, which has no \
                 `[vendor.local]` table (declared: bottlerocket); twoliter would fail with \
                 \"cannot define a dependency on a vendor that is not specified in Twoliter.toml\"",
            ),
            (
                VARIANT.replace(
                    "[vendor.bottlerocket]\nregistry = \"public.ecr.aws/bottlerocket\"\n",
                    "",
                ),
                "Twoliter.toml: `bottlerocket-sdk` names vendor `bottlerocket`, which has no \
                 `[vendor.bottlerocket]` table (none are declared)",
            ),
            (
                VARIANT.replace("registry = \"public.ecr.aws/bottlerocket\"\n", ""),
                "Twoliter.toml: `[vendor.bottlerocket]` has no `registry`",
            ),
            ("schema-version = [".into(), "Twoliter.toml is not valid TOML"),
        ];
        for (text, message) in cases {
            match parse(&text) {
                Err(err) => assert!(err.to_string().starts_with(message), "{err}\n---\n{message}"),
                Ok(_) => panic!("parsed:\n{text}"),
            }
        }
    }

    #[test]
    fn set_versions_changes_only_the_version_lines() {
        let edited = set_kit_versions(
            VARIANT,
            &kits(&[("bottlerocket-core-kit", "3.2.0"), ("bottlerocket-kernel-kit", "1.0.3")]),
        )
        .unwrap();
        assert_eq!(
            changed_lines(VARIANT, &edited),
            [
                (
                    "version = \"3.1.1\" # bumped for the kernel update",
                    "version = \"3.2.0\" # bumped for the kernel update"
                ),
                ("version = \"1.0.2\"", "version = \"1.0.3\""),
            ]
        );
        let again = set_kit_versions(
            &edited,
            &kits(&[("bottlerocket-core-kit", "3.2.0"), ("bottlerocket-kernel-kit", "1.0.3")]),
        )
        .unwrap();
        assert_eq!(again, edited);
        assert_eq!(
            set_kit_versions(VARIANT, &kits(&[("bottlerocket-core-kit", "3.1.1")])).unwrap(),
            VARIANT
        );
    }

    #[test]
    fn set_versions_keeps_crlf() {
        let text = VARIANT.replace('\n', "\r\n");
        let edited = set_kit_versions(&text, &kits(&[("bottlerocket-kernel-kit", "1.0.3")])).unwrap();
        assert_eq!(edited, text.replace("version = \"1.0.2\"", "version = \"1.0.3\""));
    }

    #[test]
    fn set_versions_errors() {
        let err = set_kit_versions(VARIANT, &kits(&[("bottlerocket-aws-kit", "1.0.0")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Twoliter.toml has no `[[kit]]` named `bottlerocket-aws-kit` (kits present: \
             bottlerocket-core-kit, bottlerocket-kernel-kit): add a `[[kit]]` entry for it or pick \
             one of those"
        );
        let err = set_kit_versions(VARIANT, &kits(&[("bottlerocket-core-kit", "latest")])).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("kit `bottlerocket-core-kit` version `latest` is not semver"));
        let err = set_kit_versions(VARIANT, &kits(&[("bottlerocket-core-kit", "v3.2.0")])).unwrap_err();
        assert!(err.to_string().contains("drop the leading `v`"));
        let table_style = "[kit.bottlerocket-core-kit]\nversion = \"1.0.0\"\n";
        let err = set_kit_versions(table_style, &kits(&[("bottlerocket-core-kit", "1.0.1")]));
        assert!(err
            .unwrap_err()
            .to_string()
            .starts_with("Twoliter.toml declares `[kit.bottlerocket-core-kit]`, but `kit` must be an array"));
        let err = set_kit_versions("schema-version = 1\n", &kits(&[("k", "1.0.0")])).unwrap_err();
        assert!(err.to_string().contains("(kits present: none)"), "{err}");
    }

    #[test]
    fn switch_to_vendor() {
        let edited = switch_kits_to_vendor(
            VARIANT,
            "local",
            "localhost:5000",
            &["bottlerocket-core-kit".to_owned()],
        )
        .unwrap();
        expect![[r#"
            schema-version = 1
            release-version = "1.26.1"

            [vendor.bottlerocket]
            registry = "public.ecr.aws/bottlerocket"

            [vendor.local]
            registry = "localhost:5000"

            [sdk]
            name = "bottlerocket-sdk"
            version = "0.46.0"
            vendor = "bottlerocket"

            # Kits pinned for this release.
            [[kit]]
            name = "bottlerocket-core-kit"
            version = "3.1.1" # bumped for the kernel update
            vendor = "local"

            [[kit]]
            name = "bottlerocket-kernel-kit"
            version = "1.0.2"
            vendor = "bottlerocket"
        "#]]
        .assert_eq(&edited);
        let info = parse(&edited).unwrap();
        assert_eq!(info.vendors["local"], "localhost:5000");
        let again = switch_kits_to_vendor(
            &edited,
            "local",
            "localhost:5000",
            &["bottlerocket-core-kit".to_owned()],
        )
        .unwrap();
        assert_eq!(again, edited);
        // Moving the same vendor to another port touches only its registry line.
        let moved = switch_kits_to_vendor(
            &edited,
            "local",
            "localhost:5001",
            &["bottlerocket-core-kit".to_owned()],
        )
        .unwrap();
        assert_eq!(
            changed_lines(&edited, &moved),
            [("registry = \"localhost:5000\"", "registry = \"localhost:5001\"")]
        );
    }

    #[test]
    fn switch_to_vendor_errors() {
        let err = switch_kits_to_vendor(
            VARIANT,
            "bottlerocket",
            "localhost:5000",
            &["bottlerocket-core-kit".into()],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Twoliter.toml: vendor `bottlerocket` already points at `public.ecr.aws/bottlerocket` and \
             bottlerocket-sdk, bottlerocket-kernel-kit use it; pointing it at `localhost:5000` would \
             move them too: pick another vendor name, such as `local`"
        );
        let err = switch_kits_to_vendor(VARIANT, "local", "localhost:5000", &["nope".into()]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("Twoliter.toml has no `[[kit]]` named `nope`"),
            "{err}"
        );
        let err = switch_kits_to_vendor(VARIANT, "lo.cal", "localhost:5000", &[]).unwrap_err();
        assert!(err.to_string().starts_with("vendor `lo.cal` contains `.`"), "{err}");
    }

    #[test]
    fn release_versions() {
        let toml = "schema-version = 1\nrelease-version = \"3.1.1\" # kit version\n";
        assert_eq!(release_version(toml).unwrap(), semver::Version::new(3, 1, 1));
        let err = release_version("schema-version = 1\n").unwrap_err().to_string();
        assert_eq!(
            err,
            "Twoliter.toml has no `release-version`: add `release-version = \"1.0.0\"`"
        );
        let err = release_version("release-version = \"1.2\"\n").unwrap_err().to_string();
        assert!(
            err.starts_with("Twoliter.toml `release-version = \"1.2\"` is not a semver"),
            "{err}"
        );
        let err = release_version("release-version = 1\n").unwrap_err().to_string();
        assert!(err.contains("is a integer but must be a string"), "{err}");
        let err = release_version("release-version = \n").unwrap_err().to_string();
        assert!(err.starts_with("Twoliter.toml is not valid TOML"), "{err}");
    }

    #[test]
    fn kit_versions() {
        check_kit_version("k", "3.1.1").unwrap();
        check_kit_version("k", "3.1.1-rc1").unwrap();
        let err = check_kit_version("k", "v3.1.1").unwrap_err().to_string();
        assert_eq!(err, "kit `k` version `v3.1.1`: drop the leading `v` (write `3.1.1`)");
        let err = check_kit_version("k", "3.1").unwrap_err().to_string();
        assert!(err.starts_with("kit `k` version `3.1` is not semver"), "{err}");
    }
}
