//! What a kit repo's Makefile says: the defaults of its variables and the targets it has.

/// The value a Makefile gives `var` when nothing overrides it: `KIT ?= bottlerocket-core-kit`,
/// `KIT ?=core-kit`, `KIT := x`, `export KIT ?= x`. Follows make's rules for plain assignments
/// (`?=` only sets an unset variable; `=`, `:=`, `::=` always set) in file order, ignoring
/// conditionals and includes. A computed value (`$(…)`, `${…}`, backticks) gives `None`: only
/// make could tell what it is.
pub(crate) fn makefile_var_default(makefile: &str, var: &str) -> Option<String> {
    let mut value: Option<String> = None;
    for line in logical_lines(makefile) {
        let Some((name, op, rhs)) = assignment(&line) else {
            continue;
        };
        if name != var {
            continue;
        }
        let rhs = strip_comment(rhs).trim().to_owned();
        match op {
            "?=" if value.is_some() => {}
            "+=" => {
                value = value.map(|v| {
                    if v.is_empty() {
                        rhs.clone()
                    } else {
                        format!("{v} {rhs}")
                    }
                });
            }
            _ => value = Some(rhs),
        }
    }
    value.filter(|v| !v.is_empty() && !v.contains('$') && !v.contains('`'))
}

/// Whether the Makefile has a rule for `target` (`build:`, `build: fetch`, `build fetch:`,
/// `build::`). `.PHONY: build` names the target but is not a rule for it, and a target-specific
/// variable (`build: ARCH = x`) is not a rule either.
pub(crate) fn makefile_has_target(makefile: &str, target: &str) -> bool {
    logical_lines(makefile).iter().any(|line| {
        if assignment(line).is_some() {
            return false;
        }
        let line = strip_comment(line);
        let Some((targets, rest)) = line.split_once(':') else {
            return false;
        };
        let rest = rest.strip_prefix(':').unwrap_or(rest);
        if rest.starts_with('=') || rest.contains('=') {
            return false;
        }
        targets.split_whitespace().any(|t| t == target)
    })
}

/// The Makefile's lines with `\`-continuations joined and recipe lines (tab-led) dropped.
fn logical_lines(makefile: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut pending = String::new();
    for raw in makefile.lines() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if pending.is_empty() && raw.starts_with('\t') {
            continue;
        }
        match raw.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(raw);
                lines.push(std::mem::take(&mut pending));
            }
        }
    }
    if !pending.is_empty() {
        lines.push(pending);
    }
    lines
}

/// `(name, operator, value)` of a variable assignment line, with `export`/`override` dropped.
fn assignment(line: &str) -> Option<(&str, &str, &str)> {
    let mut rest = line.trim_start();
    for prefix in ["export ", "override ", "private "] {
        if let Some(r) = rest.strip_prefix(prefix) {
            rest = r.trim_start();
        }
    }
    let end = rest
        .find(|c: char| c.is_whitespace() || matches!(c, '?' | ':' | '=' | '+' | '!' | '#'))
        .unwrap_or(rest.len());
    let (name, after) = rest.split_at(end);
    if name.is_empty() {
        return None;
    }
    let after = after.trim_start();
    for op in ["::=", ":::=", "?=", ":=", "+=", "!=", "="] {
        if let Some(value) = after.strip_prefix(op) {
            if op == "!=" {
                // A shell assignment: the value is computed.
                return Some((name, op, "$(shell)"));
            }
            return Some((name, op, value));
        }
    }
    None
}

fn strip_comment(text: &str) -> &str {
    let mut escaped = false;
    for (index, c) in text.char_indices() {
        match c {
            '\\' => escaped = !escaped,
            '#' if !escaped => return &text[..index],
            _ => escaped = false,
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORE_KIT_MAKEFILE: &str = "\
TOP := $(dir $(abspath $(firstword $(MAKEFILE_LIST))))
TOOLS_DIR := $(TOP)tools
TWOLITER_DIR := $(TOOLS_DIR)/twoliter
TWOLITER := $(TWOLITER_DIR)/twoliter
CARGO_HOME := $(TOP).cargo

TWOLITER_VERSION ?= \"0.12.0\"
KIT ?= bottlerocket-core-kit # the default kit
UNAME_ARCH = $(shell uname -m)
ARCH ?= $(UNAME_ARCH)
VENDOR ?= bottlerocket

export GO_MODULES = ecs-gpu-init host-ctr

all: build

prep:
\t@mkdir -p $(TWOLITER_DIR)
\t@mkdir -p $(CARGO_HOME)

.PHONY: update fetch build publish
update: prep
\t@$(TWOLITER) update

fetch: prep
\t@$(TWOLITER) fetch --arch $(ARCH)

build: fetch
\t@$(TWOLITER) build kit $(KIT) --arch $(ARCH)

publish: \\
\tbuild
\t@$(TWOLITER) publish kit $(KIT) $(VENDOR)
";

    #[test]
    fn makefile_defaults() {
        let m = CORE_KIT_MAKEFILE;
        assert_eq!(makefile_var_default(m, "KIT").as_deref(), Some("bottlerocket-core-kit"));
        assert_eq!(makefile_var_default(m, "VENDOR").as_deref(), Some("bottlerocket"));
        assert_eq!(
            makefile_var_default(m, "TWOLITER_VERSION").as_deref(),
            Some("\"0.12.0\"")
        );
        assert_eq!(makefile_var_default(m, "ARCH"), None, "computed");
        assert_eq!(makefile_var_default(m, "TWOLITER"), None, "computed");
        assert_eq!(
            makefile_var_default(m, "GO_MODULES").as_deref(),
            Some("ecs-gpu-init host-ctr")
        );
        assert_eq!(makefile_var_default(m, "MISSING"), None);
        assert_eq!(makefile_var_default(m, "KI"), None);

        assert_eq!(
            makefile_var_default("KIT ?=core-kit\n", "KIT").as_deref(),
            Some("core-kit")
        );
        assert_eq!(
            makefile_var_default("KIT?=core-kit\n", "KIT").as_deref(),
            Some("core-kit")
        );
        assert_eq!(makefile_var_default("KIT := x\n", "KIT").as_deref(), Some("x"));
        assert_eq!(makefile_var_default("KIT = x\r\n", "KIT").as_deref(), Some("x"));
        assert_eq!(makefile_var_default("export KIT ?= x\n", "KIT").as_deref(), Some("x"));
        assert_eq!(makefile_var_default("KIT_NAME ?= x\n", "KIT"), None);
        assert_eq!(makefile_var_default("KIT ?= ${OTHER}\n", "KIT"), None);
        assert_eq!(makefile_var_default("KIT != echo x\n", "KIT"), None);
        assert_eq!(makefile_var_default("KIT ?=\n", "KIT"), None);
        // make semantics: `?=` does not replace an earlier value, `:=` does.
        assert_eq!(
            makefile_var_default("KIT := a\nKIT ?= b\n", "KIT").as_deref(),
            Some("a")
        );
        assert_eq!(
            makefile_var_default("KIT ?= a\nKIT := b\n", "KIT").as_deref(),
            Some("b")
        );
        // A recipe line that looks like an assignment is not one.
        assert_eq!(makefile_var_default("x:\n\tKIT=y make\n", "KIT"), None);
    }

    #[test]
    fn makefile_targets() {
        let m = CORE_KIT_MAKEFILE;
        for target in ["all", "prep", "update", "fetch", "build", "publish"] {
            assert!(makefile_has_target(m, target), "{target}");
        }
        assert!(!makefile_has_target(m, "clean"));
        assert!(!makefile_has_target(m, "KIT"));
        assert!(!makefile_has_target(".PHONY: build\n", "build"));
        assert!(!makefile_has_target("build := x\n", "build"));
        assert!(!makefile_has_target("build: ARCH = x\n", "build"));
        assert!(!makefile_has_target("x:\n\tbuild: y\n", "build"));
        assert!(!makefile_has_target("# build: x\n", "build"));
        assert!(makefile_has_target("build fetch: prep\n", "fetch"));
        assert!(makefile_has_target("build:: prep\n", "build"));
        assert!(makefile_has_target("build:\n", "build"));
    }
}
