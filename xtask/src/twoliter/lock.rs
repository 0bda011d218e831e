//! `Twoliter.lock`, read only: `twoliter update` writes it, and newer twoliter rejects a lock
//! edited by hand. UPDATE_LOCK checks that every kit's locked digest is the one the local
//! registry serves.

use std::fmt;

use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};
use toml_edit::TableLike;

use crate::twoliter::toml_doc::{optional_str, required_str, table_array, Doc};

const FILE: &str = "Twoliter.lock";
const REMEDY: &str = "run `tools/twoliter/twoliter update` in the variant repo";

/// One locked artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LockEntry {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) vendor: String,
    /// The address the artifact was resolved as (kept even when an override redirected it).
    pub(crate) source: String,
    /// base64 of SHA-256 over the canonical JSON of the image index or manifest.
    pub(crate) digest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Lock {
    pub(crate) schema_version: i64,
    /// `project-vendor` (lock schema-version 2).
    pub(crate) project_vendor: Option<String>,
    pub(crate) sdk: Option<LockEntry>,
    pub(crate) kits: Vec<LockEntry>,
}

pub(crate) fn parse_lock(text: &str) -> Result<Lock> {
    let mut doc = Doc::parse(FILE, text).map_err(|err| anyhow!("{err}: {REMEDY} to rewrite it"))?;
    let root = doc.root();
    let schema_version = match root.get("schema-version") {
        None => bail!("{FILE} has no `schema-version`: {REMEDY} to rewrite it"),
        Some(item) => item.as_integer().ok_or_else(|| {
            anyhow!(
                "{FILE}: `schema-version` is a {} but must be an integer",
                item.type_name()
            )
        })?,
    };
    let project_vendor = optional_str(root, "project-vendor", FILE)?;
    let sdk = match root.get("sdk") {
        None => None,
        Some(item) => {
            let table = item
                .as_table_like()
                .ok_or_else(|| anyhow!("{FILE}: `sdk` is a {} but must be a table", item.type_name()))?;
            Some(entry(table, "[sdk]")?)
        }
    };
    let kits = table_array(root, "kit", FILE)?
        .into_iter()
        .enumerate()
        .map(|(index, table)| entry(table, &format!("[[kit]] entry {}", index + 1)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Lock {
        schema_version,
        project_vendor,
        sdk,
        kits,
    })
}

fn entry(table: &dyn TableLike, what: &str) -> Result<LockEntry> {
    let what = format!("{FILE}: {what}");
    Ok(LockEntry {
        name: required_str(table, "name", &what)?,
        version: required_str(table, "version", &what)?,
        vendor: required_str(table, "vendor", &what)?,
        source: required_str(table, "source", &what)?,
        digest: required_str(table, "digest", &what)?,
    })
}

/// What the lock should say about one kit: the version asked for and the digest computed from
/// what the local registry serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ExpectedKit {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) digest: String,
}

/// One way the lock disagrees with what is expected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LockMismatch {
    pub(crate) kit: String,
    /// `entry` (missing or locked more than once), `version` or `digest`.
    pub(crate) field: String,
    pub(crate) expected: String,
    pub(crate) found: String,
}

impl fmt::Display for LockMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let LockMismatch {
            kit,
            field,
            expected,
            found,
        } = self;
        match field.as_str() {
            "entry" => write!(f, "{FILE} has {found} for {kit} (expected {expected}): {REMEDY}"),
            "digest" => write!(
                f,
                "{FILE} has {kit} digest {found} (the upstream one?) but the local registry serves \
                 {expected}: {REMEDY}"
            ),
            _ => write!(f, "{FILE} has {kit} {field} {found}, expected {expected}: {REMEDY}"),
        }
    }
}

/// Every disagreement between the lock and the expected kits, in the order given.
pub(crate) fn lock_mismatches(lock: &Lock, expected: &[ExpectedKit]) -> Vec<LockMismatch> {
    let mut mismatches = Vec::new();
    for want in expected {
        let found: Vec<&LockEntry> = lock.kits.iter().filter(|k| k.name == want.name).collect();
        let mismatch = |field: &str, expected: &str, found: &str| LockMismatch {
            kit: want.name.clone(),
            field: field.into(),
            expected: expected.into(),
            found: found.into(),
        };
        match found.as_slice() {
            [] => mismatches.push(mismatch("entry", "one entry", "no entry")),
            [entry] => {
                if entry.version != want.version {
                    mismatches.push(mismatch("version", &want.version, &entry.version));
                }
                if entry.digest != want.digest {
                    mismatches.push(mismatch("digest", &want.digest, &entry.digest));
                }
            }
            several => {
                let vendors: Vec<&str> = several.iter().map(|e| e.vendor.as_str()).collect();
                let found = format!("{} entries (vendors {})", several.len(), vendors.join(", "));
                mismatches.push(mismatch("entry", "one entry", &found));
            }
        }
    }
    mismatches
}

/// [`lock_mismatches`] as an error listing every mismatch, one per line.
pub(crate) fn check_lock(lock: &Lock, expected: &[ExpectedKit]) -> Result<()> {
    let mismatches = lock_mismatches(lock, expected);
    if mismatches.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = mismatches.iter().map(ToString::to_string).collect();
    bail!("{}", lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"schema-version = 1

[sdk]
name = "bottlerocket-sdk"
version = "0.46.0"
vendor = "bottlerocket"
source = "public.ecr.aws/bottlerocket/bottlerocket-sdk:v0.46.0"
digest = "Ck3pl0tgwOWcLL9PUsWsxpZlO+8y2dk9ZsnYu4e6NfE="

[[kit]]
name = "bottlerocket-core-kit"
version = "3.1.1"
vendor = "bottlerocket"
source = "public.ecr.aws/bottlerocket/bottlerocket-core-kit:v3.1.1"
digest = "iFAVGFAm7ZzBfEyPy0TddC2fb4Gw4lw+UJmO7ZoqqMU="

[[kit]]
name = "bottlerocket-kernel-kit"
version = "1.0.2"
vendor = "bottlerocket"
source = "public.ecr.aws/bottlerocket/bottlerocket-kernel-kit:v1.0.2"
digest = "nW6Rc6ZYbC1DJhRoYOdeVMBq3fcjXZq1jZPR3BIE5P8="
"#;

    fn expected(name: &str, version: &str, digest: &str) -> ExpectedKit {
        ExpectedKit {
            name: name.into(),
            version: version.into(),
            digest: digest.into(),
        }
    }

    #[test]
    fn parses_a_lock() {
        let lock = parse_lock(LOCK).unwrap();
        assert_eq!(lock.schema_version, 1);
        assert_eq!(lock.project_vendor, None);
        assert_eq!(lock.sdk.as_ref().unwrap().name, "bottlerocket-sdk");
        assert_eq!(lock.kits.len(), 2);
        assert_eq!(lock.kits[1].digest, "nW6Rc6ZYbC1DJhRoYOdeVMBq3fcjXZq1jZPR3BIE5P8=");
        assert_eq!(
            lock.kits[0].source,
            "public.ecr.aws/bottlerocket/bottlerocket-core-kit:v3.1.1"
        );
        let json = serde_json::to_string(&lock).unwrap();
        assert_eq!(serde_json::from_str::<Lock>(&json).unwrap(), lock);
    }

    #[test]
    fn parses_schema_2_and_empty_kit_lists() {
        let text = "schema-version = 2\nproject-vendor = \"Bottlerocket\"\nkit = []\n\n[sdk]\n\
                    name = \"s\"\nversion = \"1.0.0\"\nvendor = \"v\"\nsource = \"r/s:v1.0.0\"\ndigest = \"d\"\n";
        let lock = parse_lock(text).unwrap();
        assert_eq!(lock.schema_version, 2);
        assert_eq!(lock.project_vendor.as_deref(), Some("Bottlerocket"));
        assert!(lock.kits.is_empty());
        assert_eq!(parse_lock(&text.replace('\n', "\r\n")).unwrap(), lock);
    }

    #[test]
    fn parse_errors() {
        let err = parse_lock("schema-version = ").unwrap_err().to_string();
        assert!(err.starts_with("Twoliter.lock is not valid TOML"), "{err}");
        assert!(
            err.ends_with("run `tools/twoliter/twoliter update` in the variant repo to rewrite it"),
            "{err}"
        );
        let err = parse_lock("[sdk]\n").unwrap_err().to_string();
        assert!(err.starts_with("Twoliter.lock has no `schema-version`"), "{err}");
        let err = parse_lock(&LOCK.replace("digest = \"nW6Rc6ZYbC1DJhRoYOdeVMBq3fcjXZq1jZPR3BIE5P8=\"\n", ""));
        assert_eq!(
            err.unwrap_err().to_string(),
            "Twoliter.lock: [[kit]] entry 2 has no `digest`: add `digest = \"…\"`"
        );
    }

    #[test]
    fn matching_lock_passes() {
        let lock = parse_lock(LOCK).unwrap();
        let want = [expected(
            "bottlerocket-core-kit",
            "3.1.1",
            "iFAVGFAm7ZzBfEyPy0TddC2fb4Gw4lw+UJmO7ZoqqMU=",
        )];
        assert!(lock_mismatches(&lock, &want).is_empty());
        check_lock(&lock, &want).unwrap();
        check_lock(&lock, &[]).unwrap();
    }

    #[test]
    fn mismatches_name_kit_field_and_values() {
        let lock = parse_lock(LOCK).unwrap();
        let want = [
            expected("bottlerocket-core-kit", "3.2.0", "LOCAL="),
            expected(
                "bottlerocket-kernel-kit",
                "1.0.2",
                "nW6Rc6ZYbC1DJhRoYOdeVMBq3fcjXZq1jZPR3BIE5P8=",
            ),
            expected("acme-kit", "1.0.0", "X="),
        ];
        let found = lock_mismatches(&lock, &want);
        let fields: Vec<(&str, &str, &str, &str)> = found
            .iter()
            .map(|m| (m.kit.as_str(), m.field.as_str(), m.expected.as_str(), m.found.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("bottlerocket-core-kit", "version", "3.2.0", "3.1.1"),
                (
                    "bottlerocket-core-kit",
                    "digest",
                    "LOCAL=",
                    "iFAVGFAm7ZzBfEyPy0TddC2fb4Gw4lw+UJmO7ZoqqMU="
                ),
                ("acme-kit", "entry", "one entry", "no entry"),
            ]
        );
        let err = check_lock(&lock, &want).unwrap_err().to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines,
            [
                "Twoliter.lock has bottlerocket-core-kit version 3.1.1, expected 3.2.0: run \
                 `tools/twoliter/twoliter update` in the variant repo",
                "Twoliter.lock has bottlerocket-core-kit digest \
                 iFAVGFAm7ZzBfEyPy0TddC2fb4Gw4lw+UJmO7ZoqqMU= (the upstream one?) but the local \
                 registry serves LOCAL=: run `tools/twoliter/twoliter update` in the variant repo",
                "Twoliter.lock has no entry for acme-kit (expected one entry): run \
                 `tools/twoliter/twoliter update` in the variant repo",
            ]
        );
    }

    #[test]
    fn a_kit_locked_under_two_vendors_is_reported() {
        let doubled = format!(
            "{LOCK}\n[[kit]]\nname = \"bottlerocket-core-kit\"\nversion = \"3.1.1\"\nvendor = \"local\"\n\
             source = \"localhost:5000/bottlerocket-core-kit:v3.1.1\"\ndigest = \"L=\"\n"
        );
        let lock = parse_lock(&doubled).unwrap();
        let found = lock_mismatches(&lock, &[expected("bottlerocket-core-kit", "3.1.1", "L=")]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].found, "2 entries (vendors bottlerocket, local)");
        assert!(found[0]
            .to_string()
            .starts_with("Twoliter.lock has 2 entries (vendors bottlerocket, local) for bottlerocket-core-kit"));
    }
}
