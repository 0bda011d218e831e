//! Validates JSON against the JSON Schema the xtask ships for `next-step` answers
//! (`phases/next-step.schema.json`, generated from the protocol types by schemars).
//!
//! Only the keywords that schema uses are implemented, and [`check_keywords`] fails on any other,
//! so a schema that grows a new keyword fails loudly here instead of being half-checked. A full
//! validator crate would add some 56 crates to Cargo.lock, and cargo resolves every one of them
//! on each `cargo xtask` call (measured: +17 ms per `next-step` through cargo).
#![allow(dead_code)]

use serde_json::Value;

/// Keywords [`validate`] understands; the annotations among them change nothing.
const KNOWN: [&str; 16] = [
    "$schema",
    "$defs",
    "$ref",
    "title",
    "description",
    "type",
    "const",
    "enum",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "oneOf",
    "anyOf",
    "format",
    "minimum",
];

/// Every keyword of `schema`, at any depth, must be one [`validate`] implements.
pub fn check_keywords(schema: &Value) -> Result<(), String> {
    let Value::Object(map) = schema else {
        return Ok(());
    };
    for (key, value) in map {
        if !KNOWN.contains(&key.as_str()) {
            return Err(format!("schema keyword `{key}` is not implemented by this validator"));
        }
        match key.as_str() {
            "properties" | "$defs" => {
                for sub in value.as_object().into_iter().flat_map(|m| m.values()) {
                    check_keywords(sub)?;
                }
            }
            "oneOf" | "anyOf" => {
                for sub in value.as_array().into_iter().flatten() {
                    check_keywords(sub)?;
                }
            }
            "items" | "additionalProperties" => check_keywords(value)?,
            _ => {}
        }
    }
    Ok(())
}

/// The faults of `value` against `schema` (whose `$ref`s point into `root`); empty when valid.
pub fn validate(root: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let mut faults = Vec::new();
    let Value::Object(s) = schema else {
        return faults;
    };
    if let Some(Value::String(reference)) = s.get("$ref") {
        let name = reference.strip_prefix("#/$defs/").expect("local $defs references only");
        return validate(root, &root["$defs"][name], value, at);
    }
    if let Some(types) = s.get("type") {
        let allowed: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !allowed.iter().any(|t| is_type(value, t)) {
            faults.push(format!("{at}: {value} is not of type {allowed:?}"));
            return faults;
        }
    }
    if let Some(expected) = s.get("const") {
        if value != expected {
            faults.push(format!("{at}: {value} is not {expected}"));
        }
    }
    if let Some(Value::Array(options)) = s.get("enum") {
        if !options.contains(value) {
            faults.push(format!("{at}: {value} is not one of {options:?}"));
        }
    }
    if let (Some(minimum), Some(n)) = (s.get("minimum").and_then(Value::as_f64), value.as_f64()) {
        if n < minimum {
            faults.push(format!("{at}: {n} is below {minimum}"));
        }
    }
    if let Value::Object(object) = value {
        let properties = s.get("properties").and_then(Value::as_object);
        for name in s.get("required").and_then(Value::as_array).into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            if !object.contains_key(name) {
                faults.push(format!("{at}: `{name}` is required"));
            }
        }
        for (name, field) in object {
            match properties.and_then(|p| p.get(name)) {
                Some(sub) => faults.extend(validate(root, sub, field, &format!("{at}.{name}"))),
                None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    faults.push(format!("{at}: `{name}` is not allowed"))
                }
                None => {}
            }
        }
    }
    if let (Some(items), Value::Array(elements)) = (s.get("items"), value) {
        for (index, element) in elements.iter().enumerate() {
            faults.extend(validate(root, items, element, &format!("{at}[{index}]")));
        }
    }
    if let Some(Value::Array(branches)) = s.get("oneOf") {
        let passing = branches
            .iter()
            .filter(|b| validate(root, b, value, at).is_empty())
            .count();
        if passing != 1 {
            faults.push(format!(
                "{at}: matches {passing} of the oneOf branches, not exactly one"
            ));
        }
    }
    if let Some(Value::Array(branches)) = s.get("anyOf") {
        if !branches.iter().any(|b| validate(root, b, value, at).is_empty()) {
            faults.push(format!("{at}: matches none of the anyOf branches"));
        }
    }
    faults
}

fn is_type(value: &Value, name: &str) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        _ => false,
    }
}

/// `validate` against a whole schema document.
pub fn faults(schema: &Value, value: &Value) -> Vec<String> {
    validate(schema, schema, value, "answer")
}
