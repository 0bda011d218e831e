//! The text of each file adoption writes or edits, from the text that is there: pure functions.

use anyhow::{bail, Context, Result};
use toml_edit::DocumentMut;

/// The alias, relative to the repo root: the crate is its own workspace there.
pub(crate) const ALIAS: &str = "run --quiet --manifest-path xtask/Cargo.toml --";

/// `.cargo/config.toml`: the alias and nothing else, since the kit Makefile also uses `.cargo/`
/// as `CARGO_HOME`, where cargo would read any other setting as the user's own.
pub(crate) fn cargo_config() -> String {
    format!("[alias]\nxtask = \"{ALIAS}\"\n")
}

/// `planning/.gitignore`: the workspaces stay out of git, the file itself is committed.
pub(crate) const PLANNING_GITIGNORE: &str = "*\n!.gitignore\n";

/// `xtask/.gitignore`: the crate's own build directory (it is its own workspace).
pub(crate) const CRATE_GITIGNORE: &str = "/target/\n";

/// Whether `.cargo/config.toml` may be replaced by ours: only when what is there holds nothing
/// but an `xtask` alias (of any form); otherwise an error, since the file must hold only the alias.
pub(crate) fn check_cargo_config(existing: &str, path: &str) -> Result<()> {
    let doc: DocumentMut = existing
        .parse()
        .with_context(|| format!("{path} is not valid TOML: fix it, or move it away"))?;
    let mut others = Vec::new();
    for (key, item) in doc.iter() {
        match (key, item.as_table_like()) {
            ("alias", Some(alias)) => others.extend(
                alias
                    .iter()
                    .filter(|(k, _)| *k != "xtask")
                    .map(|(k, _)| format!("alias.{k}")),
            ),
            _ => others.push(key.to_string()),
        }
    }
    if !others.is_empty() {
        bail!(
            "{path} has settings of its own ({}): it may hold only the `xtask` alias, because the kit \
             Makefile uses .cargo/ as CARGO_HOME, where cargo reads this file as the user's own \
             configuration; move those settings elsewhere (e.g. ~/.cargo/config.toml) and run adopt again",
            others.join(", ")
        );
    }
    Ok(())
}

/// `xtask/Cargo.toml` as its own workspace: the crate's manifest, an empty `[workspace]`, and the
/// `[profile.dev…]` sections taken from `root_manifest` (cargo reads profiles only from the
/// workspace root). A manifest that is its own workspace already is kept as it is.
pub(crate) fn own_workspace_manifest(crate_manifest: &str, root_manifest: &str) -> Result<String> {
    let doc: DocumentMut = crate_manifest
        .parse()
        .context("the xtask's Cargo.toml is not valid TOML")?;
    if doc.get("workspace").is_some() {
        return Ok(crate_manifest.to_string());
    }
    let profiles = profile_sections(root_manifest)?;
    let mut out = crate_manifest.trim_end().to_string();
    out.push_str(
        "\n\n# Its own workspace: the repo's root Cargo.lock, which twoliter builds against with\n\
         # `--offline --locked`, must not list the xtask's crates. Its lock file is xtask/Cargo.lock.\n\
         [workspace]\n\n",
    );
    out.push_str(&profiles);
    let parsed: DocumentMut = out
        .parse()
        .context("the xtask's own-workspace manifest is not valid TOML")?;
    if parsed.get("workspace").is_none() || parsed.get("profile").is_none() {
        bail!("the xtask's own-workspace manifest lacks [workspace] or [profile]");
    }
    Ok(out)
}

/// Pure: the `[profile…]` tables of a manifest, as written there, each with the comment lines
/// right above its header.
fn profile_sections(manifest: &str) -> Result<String> {
    let lines: Vec<&str> = manifest.lines().collect();
    let is_header = |l: &str| l.trim_start().starts_with('[');
    let is_profile = |l: &str| l.trim_start().starts_with("[profile.") || l.trim() == "[profile]";
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        if !is_profile(lines[i]) {
            i += 1;
            continue;
        }
        let mut start = i;
        while start > 0 && lines[start - 1].trim_start().starts_with('#') {
            start -= 1;
        }
        let mut end = i + 1;
        while end < lines.len() && !is_header(lines[end]) {
            end += 1;
        }
        // Comments just above the next header belong to it.
        let mut body_end = end;
        while body_end > i + 1 && end < lines.len() && lines[body_end - 1].trim_start().starts_with('#') {
            body_end -= 1;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(lines[start..body_end].join("\n").trim_end());
        out.push('\n');
        i = end;
    }
    if out.is_empty() {
        bail!("the xtask's workspace Cargo.toml has no [profile.dev] sections to copy");
    }
    Ok(out)
}

/// The `.gitignore` lines that ignore the whole `.cargo/` directory in kit repos (their Makefile
/// uses it as `CARGO_HOME`), which would leave `.cargo/config.toml` silently untracked.
const CARGO_DIR_RULES: [&str; 2] = ["/.cargo", "/.cargo/"];

/// `.gitignore` with a rule ignoring all of `/.cargo` replaced by `/.cargo/*` and
/// `!/.cargo/config.toml`, so that CARGO_HOME's contents stay ignored and the alias is tracked;
/// `None` when there is no such rule. Line endings are kept.
pub(crate) fn unignore_cargo_config(gitignore: &str) -> Option<String> {
    let mut changed = false;
    let mut out = String::with_capacity(gitignore.len() + 32);
    for line in gitignore.split_inclusive('\n') {
        let ending = if line.ends_with("\r\n") {
            "\r\n"
        } else if line.ends_with('\n') {
            "\n"
        } else {
            ""
        };
        let rule = line.trim_end_matches(['\r', '\n']);
        if CARGO_DIR_RULES.contains(&rule.trim_end()) {
            let newline = if ending.is_empty() { "\n" } else { ending };
            out.push_str(&format!("/.cargo/*{newline}!/.cargo/config.toml{ending}"));
            changed = true;
        } else {
            out.push_str(line);
        }
    }
    changed.then_some(out)
}

/// Whether the repo's root `Cargo.toml` lists `xtask` as a workspace member (the old way of
/// adding it, which puts its crates into the root `Cargo.lock`).
pub(crate) fn root_lists_xtask(root_manifest: &str) -> bool {
    let Ok(doc) = root_manifest.parse::<DocumentMut>() else {
        return false;
    };
    doc.get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array())
        .is_some_and(|members| {
            members
                .iter()
                .filter_map(|m| m.as_str())
                .any(|m| m.trim_end_matches('/').trim_start_matches("./") == "xtask")
        })
}

/// A word as a POSIX shell reads it back unchanged: as it is when it is plain, else in single
/// quotes.
pub(crate) fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "[workspace]\nmembers = [\"xtask\"]\nresolver = \"2\"\n\n\
        # Measured.\n[profile.dev]\n# Small debug info.\ndebug = \"line-tables-only\"\nopt-level = 1\n\n\
        [profile.dev.package.\"*\"]\n# Dependencies.\ndebug = false\nopt-level = 0\n";

    const CRATE: &str = "[package]\nname = \"xtask\"\nversion = \"0.1.0\"\n\n[dependencies]\nanyhow = \"1\"\n";

    #[test]
    fn the_crate_becomes_its_own_workspace_with_the_profiles() {
        let out = own_workspace_manifest(CRATE, ROOT).unwrap();
        assert!(out.starts_with(CRATE.trim_end()), "{out}");
        let doc: DocumentMut = out.parse().unwrap();
        assert!(doc["workspace"].as_table().unwrap().is_empty());
        assert_eq!(doc["profile"]["dev"]["opt-level"].as_integer(), Some(1));
        assert_eq!(doc["profile"]["dev"]["package"]["*"]["opt-level"].as_integer(), Some(0));
        // The comments come along with the sections.
        assert!(
            out.contains("# Measured.\n[profile.dev]\n# Small debug info.\n"),
            "{out}"
        );
        assert!(out.contains("# Dependencies.\n"), "{out}");
        // Idempotent: a manifest that is its own workspace is kept.
        assert_eq!(own_workspace_manifest(&out, ROOT).unwrap(), out);
        assert!(own_workspace_manifest(CRATE, "[workspace]\nmembers = []\n").is_err());
    }

    #[test]
    fn profiles_stop_at_the_next_table_and_its_comment() {
        let root = "[profile.dev]\nopt-level = 1\n\n# About the next one.\n[patch.crates-io]\nx = 1\n";
        assert_eq!(profile_sections(root).unwrap(), "[profile.dev]\nopt-level = 1\n");
    }

    #[test]
    fn the_kit_repos_cargo_rule_is_split_so_the_alias_is_tracked() {
        let kit = "/build/\n/.cargo\n/.gomodcache\n";
        assert_eq!(
            unignore_cargo_config(kit).unwrap(),
            "/build/\n/.cargo/*\n!/.cargo/config.toml\n/.gomodcache\n"
        );
        assert_eq!(
            unignore_cargo_config("/.cargo/\r\n/html\r\n").unwrap(),
            "/.cargo/*\r\n!/.cargo/config.toml\r\n/html\r\n"
        );
        assert_eq!(
            unignore_cargo_config("/html\n/.cargo").unwrap(),
            "/html\n/.cargo/*\n!/.cargo/config.toml"
        );
        // Already split, or no such rule: nothing to change.
        assert_eq!(unignore_cargo_config("/.cargo/*\n!/.cargo/config.toml\n"), None);
        assert_eq!(unignore_cargo_config("/build\n"), None);
        assert_eq!(unignore_cargo_config("# /.cargo\n/.cargo-old\n"), None);
    }

    #[test]
    fn cargo_config_may_hold_only_the_alias() {
        check_cargo_config(&cargo_config(), "c").unwrap();
        check_cargo_config("[alias]\nxtask = \"run --package xtask --\"\n", "c").unwrap();
        check_cargo_config("", "c").unwrap();
        let err = check_cargo_config("[alias]\nxtask = \"x\"\nb = \"build\"\n[build]\njobs = 1\n", "c")
            .unwrap_err()
            .to_string();
        assert!(err.contains("alias.b, build") && err.contains("CARGO_HOME"), "{err}");
        assert!(check_cargo_config("[alias", "c").is_err());
    }

    #[test]
    fn a_root_workspace_listing_the_xtask_is_spotted() {
        assert!(root_lists_xtask("[workspace]\nmembers = [\"packages/a\", \"xtask\"]\n"));
        assert!(root_lists_xtask("[workspace]\nmembers = [\"./xtask/\"]\n"));
        assert!(!root_lists_xtask(
            "[workspace]\nmembers = [\"packages/xtask-helper\"]\n"
        ));
        assert!(!root_lists_xtask("[package]\nname = \"x\"\n"));
    }

    #[test]
    fn shell_words() {
        assert_eq!(
            shell_word("/home/dev/forest/kits/core-kit"),
            "/home/dev/forest/kits/core-kit"
        );
        assert_eq!(shell_word("/a b/it's"), r"'/a b/it'\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
