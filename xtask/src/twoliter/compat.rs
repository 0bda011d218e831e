//! Which twoliter versions can consume each other's kits.
//!
//! A kit image carries its metadata in a config label `dev.bottlerocket.kit.<vN>`, and twoliter
//! accepts only the one generation it writes ("kit appears to be built with metadata version …").
//! Generations by twoliter release, from its changelogs and release notes:
//!
//! | twoliter         | metadata |
//! |------------------|----------|
//! | before 0.5.0     | v1       |
//! | 0.5.0 – 0.7.2    | v2       |
//! | 0.7.3 – 0.24.x   | v3       |
//! | 0.25.0 and later | v4       |
//!
//! Pre-releases count as the release they lead to (0.7.3-rc2 already writes v3). Versions after
//! the last one checked ([`LAST_CHECKED`]) are assumed to stay on v4, which may be wrong:
//! [`metadata_mismatch`] therefore also warns when the two versions differ and either is newer
//! than that.

use std::path::Path;

use anyhow::{anyhow, Result};
use semver::Version;

/// The newest twoliter minor release whose metadata generation is known: 0.26, which the
/// newest bottlerocket pins.
pub(crate) const LAST_CHECKED: (u64, u64) = (0, 26);

/// The kit metadata generation (the `N` of `dev.bottlerocket.kit.vN`) a twoliter version writes
/// and reads.
pub(crate) fn metadata_generation(twoliter_version: &Version) -> u8 {
    let v = (twoliter_version.major, twoliter_version.minor, twoliter_version.patch);
    if v < (0, 5, 0) {
        1
    } else if v < (0, 7, 3) {
        2
    } else if v < (0, 25, 0) {
        3
    } else {
        4
    }
}

/// The `--abbrev` of the build id a twoliter version names kit archives and per-arch tags with
/// (`git describe --always --dirty --exclude '*'`): 8 since 0.7.3 ("use a consistent length for
/// project build ID"), git's own default before, which is 7 in a small repo and grows with it.
/// When the version is unknown, the newest behaviour.
pub(crate) fn build_id_abbrev(twoliter_version: Option<&Version>) -> Option<u32> {
    match twoliter_version {
        Some(v) if (v.major, v.minor, v.patch) < (0, 7, 3) => None,
        _ => Some(8),
    }
}

/// The schema-version of `Twoliter.lock` a twoliter version writes, and the only one it loads:
/// 2 since 0.12.0 (which added `project-vendor`), 1 before.
pub(crate) fn lock_schema(twoliter_version: &Version) -> i64 {
    if (twoliter_version.major, twoliter_version.minor) >= (0, 12) {
        2
    } else {
        1
    }
}

/// `twoliter --version` of the twoliter at `path`, run as a build tool; `None` when it does not
/// run or says no version.
pub(crate) fn installed_version(path: &Path) -> Option<Version> {
    let mut probe = crate::process::tool(path);
    probe.arg("--version");
    parse_twoliter_version(&crate::process::read_tool(probe).ok()?).ok()
}

/// A version as repos pin it: `"0.22.0"` in a kit Makefile, `v0.26.0` in bottlerocket's
/// Makefile.toml, `0.25.0-rc1`.
pub(crate) fn parse_pin(pin: &str) -> Option<Version> {
    let pin = pin.trim().trim_matches(|c| c == '"' || c == '\'');
    Version::parse(pin.strip_prefix('v').unwrap_or(pin)).ok()
}

/// A warning when a kit built with `kit_twoliter` may not be usable by a variant repo on
/// `variant_twoliter`; `None` when they agree.
pub(crate) fn metadata_mismatch(kit_twoliter: &Version, variant_twoliter: &Version) -> Option<String> {
    let (kit, variant) = (metadata_generation(kit_twoliter), metadata_generation(variant_twoliter));
    if kit != variant {
        return Some(format!(
            "the kit repo's twoliter {kit_twoliter} writes kit metadata v{kit} but the variant \
             repo's twoliter {variant_twoliter} reads only v{variant}: twoliter will refuse the kit \
             (\"kit appears to be built with metadata version 'v{kit}'\"); use twoliter versions \
             of the same generation in both repos (each pins its own, e.g. `TWOLITER_VERSION` in a kit Makefile)"
        ));
    }
    let beyond = |v: &Version| (v.major, v.minor) > LAST_CHECKED;
    let same_minor = (kit_twoliter.major, kit_twoliter.minor) == (variant_twoliter.major, variant_twoliter.minor);
    if !same_minor && (beyond(kit_twoliter) || beyond(variant_twoliter)) {
        return Some(format!(
            "the kit repo uses twoliter {kit_twoliter} and the variant repo {variant_twoliter}; \
             kit metadata generations are known only up to twoliter {}.{}, so these may be \
             incompatible: if twoliter refuses the kit, use the same twoliter version in both repos",
            LAST_CHECKED.0, LAST_CHECKED.1
        ));
    }
    None
}

/// The version in `twoliter --version` output such as `twoliter 0.12.0`.
pub(crate) fn parse_twoliter_version(output: &str) -> Result<Version> {
    fn from_line(line: &str) -> Option<&str> {
        let mut words = line.split_whitespace();
        (words.next() == Some("twoliter")).then(|| words.next()).flatten()
    }
    let word = output
        .lines()
        .find_map(from_line)
        .or_else(|| {
            output
                .split_whitespace()
                .find(|w| Version::parse(w.trim_start_matches('v')).is_ok())
        })
        .ok_or_else(|| {
            anyhow!(
                "cannot read a version from `twoliter --version` output {:?}: expected \
                 `twoliter <version>`; reinstall twoliter with the repo's `make prep`",
                output.trim()
            )
        })?;
    Version::parse(word.trim_start_matches('v')).map_err(|err| {
        anyhow!(
            "`twoliter --version` says `{word}`, which is not a semver version ({err}); \
             reinstall twoliter with the repo's `make prep`"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn generations() {
        let cases = [
            ("0.4.7", 1),
            ("0.5.0-rc1", 2),
            ("0.5.0", 2),
            ("0.7.2", 2),
            ("0.7.3-rc2", 3),
            ("0.7.3", 3),
            ("0.12.0", 3),
            ("0.24.9", 3),
            ("0.25.0", 4),
            ("0.30.0", 4),
            ("1.0.0", 4),
        ];
        for (version, generation) in cases {
            assert_eq!(metadata_generation(&v(version)), generation, "{version}");
        }
    }

    #[test]
    fn mismatches() {
        assert_eq!(metadata_mismatch(&v("0.12.0"), &v("0.15.1")), None);
        assert_eq!(metadata_mismatch(&v("0.25.0"), &v("0.25.3")), None);
        let warning = metadata_mismatch(&v("0.7.2"), &v("0.12.0")).unwrap();
        assert!(warning.starts_with(
            "the kit repo's twoliter 0.7.2 writes kit metadata v2 but the variant repo's twoliter \
             0.12.0 reads only v3"
        ));
        assert_eq!(metadata_mismatch(&v("0.25.0"), &v("0.26.0")), None);
        let warning = metadata_mismatch(&v("0.26.0"), &v("0.27.0")).unwrap();
        assert!(warning.contains("known only up to twoliter 0.26"), "{warning}");
    }

    #[test]
    fn build_id_lengths() {
        assert_eq!(build_id_abbrev(Some(&v("0.7.2"))), None);
        assert_eq!(build_id_abbrev(Some(&v("0.5.0"))), None);
        assert_eq!(build_id_abbrev(Some(&v("0.7.3-rc1"))), Some(8));
        assert_eq!(build_id_abbrev(Some(&v("0.7.3"))), Some(8));
        assert_eq!(build_id_abbrev(Some(&v("0.26.0"))), Some(8));
        assert_eq!(build_id_abbrev(None), Some(8));
    }

    #[test]
    fn lock_schemas() {
        assert_eq!(lock_schema(&v("0.11.0")), 1);
        assert_eq!(lock_schema(&v("0.5.0")), 1);
        assert_eq!(lock_schema(&v("0.12.0-rc1")), 2);
        assert_eq!(lock_schema(&v("0.12.0")), 2);
        assert_eq!(lock_schema(&v("0.26.0")), 2);
    }

    #[test]
    fn pins() {
        assert_eq!(parse_pin("\"0.22.0\""), Some(v("0.22.0")));
        assert_eq!(parse_pin("v0.26.0"), Some(v("0.26.0")));
        assert_eq!(parse_pin("'0.25.0-rc1'"), Some(v("0.25.0-rc1")));
        assert_eq!(parse_pin("\"v0.7.2\""), Some(v("0.7.2")));
        assert_eq!(parse_pin("latest"), None);
        assert_eq!(parse_pin("196f8c8"), None);
    }

    #[test]
    fn versions_from_output() {
        assert_eq!(parse_twoliter_version("twoliter 0.12.0\n").unwrap(), v("0.12.0"));
        assert_eq!(parse_twoliter_version("twoliter v0.7.3-rc2").unwrap(), v("0.7.3-rc2"));
        assert_eq!(
            parse_twoliter_version("[WARN] something\ntwoliter 0.25.0\n").unwrap(),
            v("0.25.0")
        );
        assert_eq!(parse_twoliter_version("0.5.0\n").unwrap(), v("0.5.0"));
        let err = parse_twoliter_version("command not found").unwrap_err().to_string();
        assert!(
            err.starts_with("cannot read a version from `twoliter --version` output"),
            "{err}"
        );
        let err = parse_twoliter_version("twoliter 0.12").unwrap_err().to_string();
        assert!(
            err.starts_with("`twoliter --version` says `0.12`, which is not a semver"),
            "{err}"
        );
    }
}
