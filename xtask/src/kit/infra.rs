use anyhow::Result;
pub fn set_vendor_registry(infra_toml: Option<&str>, vendor: &str, registry: &str) -> Result<String> {
    let mut doc: toml_edit::DocumentMut = infra_toml.unwrap_or("").parse()?;
    doc["vendor"][vendor]["registry"] = toml_edit::value(registry);
    Ok(doc.to_string())
}
pub fn vendor_registry(infra_toml: &str, vendor: &str) -> Result<Option<String>> {
    let doc: toml_edit::DocumentMut = infra_toml.parse()?;
    Ok(doc.get("vendor").and_then(|v| v.get(vendor)).and_then(|v| v.get("registry")).and_then(|r| r.as_str()).map(String::from))
}
