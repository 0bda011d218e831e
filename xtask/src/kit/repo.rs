use anyhow::Result;
pub fn makefile_var_default(makefile: &str, var: &str) -> Option<String> {
    makefile.lines().find_map(|l| l.strip_prefix(&format!("{var} ?= ")).map(|v| v.trim().to_string()))
}
pub fn makefile_has_target(makefile: &str, target: &str) -> bool {
    makefile.lines().any(|l| l.starts_with(&format!("{target}:")))
}
pub fn release_version(twoliter_toml: &str) -> Result<semver::Version> {
    let doc: toml_edit::DocumentMut = twoliter_toml.parse()?;
    Ok(semver::Version::parse(doc.get("release-version").and_then(|v| v.as_str()).unwrap_or(""))?)
}
