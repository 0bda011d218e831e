//! What a build depends on, as one hash: the committed tree, uncommitted changes to tracked
//! files, untracked files git does not ignore, the arch and the twoliter version.
//! Two builds with the same fingerprint produce the same kit; the build id alone cannot tell,
//! since every uncommitted edit shares the same `<commit>-dirty` id.

use std::path::Path;

use anyhow::{Context, Result};
use hmac_sha256::Hash as Sha256;
use xshell::{cmd, Shell};

use crate::arch::Arch;
use crate::process;

/// `twoliter` is the version the repo builds with, as its workflow found it (empty when unknown).
pub(crate) fn compute(sh: &Shell, repo: &Path, arch: Arch, twoliter: &str) -> Result<String> {
    let _dir = sh.push_dir(repo);
    let mut hasher = Sha256::new();
    hasher.update(format!("arch={arch}\n"));
    let rev = "HEAD^{tree}";
    let tree = process::read(cmd!(sh, "git rev-parse {rev}")).with_context(|| {
        format!(
            "cannot fingerprint {}: is it a git checkout with a commit?",
            repo.display()
        )
    })?;
    hasher.update(format!("tree={tree}\n"));
    // Uncommitted changes to tracked files, staged or not, binary-safe.
    let diff = cmd!(sh, "git diff HEAD --binary --no-ext-diff").quiet().output()?;
    hasher.update(&diff.stdout);
    let untracked = cmd!(sh, "git ls-files -z --others --exclude-standard")
        .quiet()
        .output()?;
    for path in untracked.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let path = String::from_utf8_lossy(path).into_owned();
        hasher.update(format!("untracked={path}\n"));
        if let Ok(bytes) = std::fs::read(repo.join(&path)) {
            hasher.update(Sha256::hash(&bytes));
        }
    }
    hasher.update(format!("twoliter={twoliter}\n"));
    Ok(crate::fsx::hex(&hasher.finalize()))
}
