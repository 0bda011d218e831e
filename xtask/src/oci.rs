//! OCI and Docker manifests as twoliter publishes them, kit labels, and the digest twoliter
//! writes into `Twoliter.lock`. Pure functions over bytes.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use base64::Engine;
use hmac_sha256::Hash as Sha256;
use serde::{Deserialize, Serialize};

pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The `Accept` header that lets a registry answer with any of the four manifest kinds.
pub(crate) const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// Prefix of the config label that carries a kit's metadata (`…v2`, `…v3`, …).
pub(crate) const KIT_LABEL_PREFIX: &str = "dev.bottlerocket.kit.v";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Platform {
    pub(crate) architecture: String,
    pub(crate) os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) variant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub(crate) media_type: String,
    pub(crate) digest: String,
    #[serde(default)]
    pub(crate) size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) annotations: BTreeMap<String, String>,
}

/// A manifest as a registry served it: either an index (OCI index / Docker manifest list) of
/// per-platform images, or one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Manifest {
    Index {
        media_type: String,
        manifests: Vec<Descriptor>,
    },
    Image {
        media_type: String,
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

impl Manifest {
    /// Parses manifest bytes; `content_type` is the registry's `Content-Type` and wins over a
    /// missing `mediaType` field (OCI makes the field optional).
    pub(crate) fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest> {
        let raw: RawManifest = crate::fsx::parse_json_bytes(bytes).context("manifest is not valid JSON")?;
        let media_type = raw
            .media_type
            .or_else(|| content_type.map(|c| c.split(';').next().unwrap_or(c).trim().to_string()))
            .unwrap_or_default();
        if let Some(manifests) = raw.manifests {
            return Ok(Manifest::Index { media_type, manifests });
        }
        if let Some(config) = raw.config {
            return Ok(Manifest::Image {
                media_type,
                config,
                layers: raw.layers.unwrap_or_default(),
            });
        }
        bail!("manifest of media type `{media_type}` has neither `manifests` nor `config`")
    }

    pub(crate) fn media_type(&self) -> &str {
        match self {
            Manifest::Index { media_type, .. } | Manifest::Image { media_type, .. } => media_type,
        }
    }
}

impl Descriptor {
    /// `os/arch[/variant]`, or `unknown`.
    pub(crate) fn platform_name(&self) -> String {
        match &self.platform {
            Some(p) => match &p.variant {
                Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                None => format!("{}/{}", p.os, p.architecture),
            },
            None => "unknown".to_string(),
        }
    }
}

/// The registry's content digest of manifest or blob bytes: `sha256:<hex>`.
pub(crate) fn content_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", crate::fsx::hex(&Sha256::hash(bytes)))
}

/// The digest twoliter records in `Twoliter.lock`: base64 (standard, padded) of SHA-256 over
/// the manifest re-serialised as canonical JSON (keys sorted, no whitespace).
pub(crate) fn lock_digest(manifest: &[u8]) -> Result<String> {
    let value: serde_json::Value = serde_json::from_slice(manifest).context("manifest is not valid JSON")?;
    let mut canonical = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut canonical, olpc_cjson::CanonicalFormatter::new());
    value
        .serialize(&mut ser)
        .context("manifest cannot be written as canonical JSON")?;
    Ok(base64::engine::general_purpose::STANDARD.encode(Sha256::hash(&canonical)))
}

/// What a kit's config label says about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KitMetadata {
    pub(crate) name: String,
    pub(crate) version: String,
    /// The label it came from, e.g. `dev.bottlerocket.kit.v2`.
    #[serde(default)]
    pub(crate) label: String,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    config: Option<RawContainerConfig>,
}

#[derive(Deserialize)]
struct RawContainerConfig {
    #[serde(default, rename = "Labels")]
    labels: Option<BTreeMap<String, String>>,
}

/// Decodes the kit label of an image config blob (the highest `dev.bottlerocket.kit.vN`).
pub(crate) fn kit_metadata(config_blob: &[u8]) -> Result<KitMetadata> {
    let config: RawConfig = serde_json::from_slice(config_blob).context("image config is not valid JSON")?;
    let labels = config.config.and_then(|c| c.labels).unwrap_or_default();
    let (label, value) = labels
        .iter()
        .filter_map(|(k, v)| {
            let n: u32 = k.strip_prefix(KIT_LABEL_PREFIX)?.parse().ok()?;
            Some((n, k, v))
        })
        .max_by_key(|(n, _, _)| *n)
        .map(|(_, k, v)| (k.clone(), v))
        .with_context(|| format!("image config has no `{KIT_LABEL_PREFIX}N` label: it is not a twoliter kit image"))?;
    let json = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .with_context(|| format!("label {label} is not base64"))?;
    #[derive(Deserialize)]
    struct Raw {
        name: String,
        version: String,
    }
    let raw: Raw = serde_json::from_slice(&json)
        .with_context(|| format!("label {label} does not hold kit JSON with `name` and `version`"))?;
    Ok(KitMetadata {
        name: raw.name,
        version: raw.version,
        label,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_digest_is_canonical() {
        // Same content, different key order and whitespace: same lock digest.
        let a = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        let b = b"{ \"manifests\": [],\n  \"schemaVersion\": 2, \"mediaType\": \"application/vnd.oci.image.index.v1+json\" }";
        assert_eq!(lock_digest(a).unwrap(), lock_digest(b).unwrap());
        // And it is base64 of sha256 over the sorted, compact form.
        let sorted = br#"{"manifests":[],"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}"#;
        let expected = base64::engine::general_purpose::STANDARD.encode(Sha256::hash(sorted));
        assert_eq!(lock_digest(b).unwrap(), expected);
        assert_ne!(lock_digest(a).unwrap(), content_digest(a));
    }

    #[test]
    fn parses_index_and_image() {
        let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
            "manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","size":10,
            "platform":{"architecture":"amd64","os":"linux"}}]}"#;
        let parsed = Manifest::parse(index, None).unwrap();
        let Manifest::Index { manifests, media_type } = &parsed else {
            panic!("{parsed:?}")
        };
        assert_eq!(media_type, OCI_INDEX);
        assert_eq!(manifests[0].platform_name(), "linux/amd64");
        let image = br#"{"schemaVersion":2,"config":{"digest":"sha256:bb","size":3},"layers":[{"digest":"sha256:cc","size":7}]}"#;
        let parsed = Manifest::parse(image, Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8")).unwrap();
        assert_eq!(parsed.media_type(), OCI_MANIFEST);
        assert!(matches!(parsed, Manifest::Image { .. }));
        assert!(Manifest::parse(b"{}", None).is_err());
    }

    #[test]
    fn decodes_highest_kit_label() {
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let config = serde_json::json!({"config": {"Labels": {
            "dev.bottlerocket.kit.v2": enc(r#"{"name":"old","version":"0.1.0"}"#),
            "dev.bottlerocket.kit.v3": enc(r#"{"name":"my-kit","version":"1.2.3","sdk":{},"kit":[]}"#),
            "other": "x"}}});
        let meta = kit_metadata(config.to_string().as_bytes()).unwrap();
        assert_eq!(
            (meta.name.as_str(), meta.version.as_str(), meta.label.as_str()),
            ("my-kit", "1.2.3", "dev.bottlerocket.kit.v3")
        );
        let err = kit_metadata(br#"{"config":{"Labels":{}}}"#).unwrap_err().to_string();
        assert!(err.contains("not a twoliter kit image"), "{err}");
    }
}
