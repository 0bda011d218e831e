//! `registry list`: every repository and tag with its digest, media type, platforms and size.
//! One broken repository or manifest is reported in its row; the rest are still listed.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::Client;
use crate::oci::{Descriptor, Manifest};
use crate::ui;

/// One tag of one repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Row {
    pub(crate) repository: String,
    /// `None` when the repository's tags could not be listed.
    pub(crate) tag: Option<String>,
    /// The registry's content digest of the manifest.
    pub(crate) digest: Option<String>,
    pub(crate) media_type: Option<String>,
    /// `os/arch[/variant]` of each image of an index; empty for a single image.
    pub(crate) platforms: Vec<String>,
    /// Bytes of config and layers: for an index, summed over the images it references.
    pub(crate) size: Option<u64>,
    pub(crate) error: Option<String>,
}

/// Pure: bytes of an image manifest's config and layers.
pub(crate) fn image_size(config: &Descriptor, layers: &[Descriptor]) -> u64 {
    config.size + layers.iter().map(|l| l.size).sum::<u64>()
}

/// Every row of the registry, following pagination.
pub(crate) fn rows(client: &Client) -> Result<Vec<Row>> {
    let repositories = client.catalog().context("cannot list the registry's repositories")?;
    let mut rows = Vec::new();
    for repository in repositories {
        match client.tags(&repository) {
            Ok(mut tags) => {
                tags.sort();
                for tag in tags {
                    rows.push(row(client, &repository, &tag));
                }
            }
            Err(err) => rows.push(Row {
                error: Some(format!("{err:#}")),
                ..empty(&repository, None)
            }),
        }
    }
    Ok(rows)
}

fn empty(repository: &str, tag: Option<&str>) -> Row {
    Row {
        repository: repository.to_string(),
        tag: tag.map(str::to_string),
        digest: None,
        media_type: None,
        platforms: Vec::new(),
        size: None,
        error: None,
    }
}

fn row(client: &Client, repository: &str, tag: &str) -> Row {
    let mut row = empty(repository, Some(tag));
    let fetched = match client.manifest(repository, tag) {
        Ok(Some(fetched)) => fetched,
        Ok(None) => {
            row.error = Some("the tag is listed but its manifest is missing".into());
            return row;
        }
        Err(err) => {
            row.error = Some(format!("{err:#}"));
            return row;
        }
    };
    row.digest = Some(fetched.digest.clone());
    row.media_type = Some(fetched.manifest.media_type().to_string());
    match &fetched.manifest {
        Manifest::Image { config, layers, .. } => row.size = Some(image_size(config, layers)),
        Manifest::Index { manifests, .. } => {
            row.platforms = manifests.iter().map(Descriptor::platform_name).collect();
            match index_size(client, repository, manifests) {
                Ok(size) => row.size = Some(size),
                Err(err) => row.error = Some(format!("{err:#}")),
            }
        }
    }
    row
}

/// The sum over an index's images of their config and layers.
fn index_size(client: &Client, repository: &str, manifests: &[Descriptor]) -> Result<u64> {
    let mut total = 0;
    for child in manifests {
        let fetched = client.manifest(repository, &child.digest)?.with_context(|| {
            format!(
                "the index references {}, which the registry does not have",
                child.digest
            )
        })?;
        total += match &fetched.manifest {
            Manifest::Image { config, layers, .. } => image_size(config, layers),
            // Nested indexes are legal (content addressing rules out cycles).
            Manifest::Index { manifests, .. } => index_size(client, repository, manifests)?,
        };
    }
    Ok(total)
}

/// Pure: the human table.
pub(crate) fn table(rows: &[Row]) -> String {
    if rows.is_empty() {
        return "the registry holds no repositories\n".to_string();
    }
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.repository.clone(),
                r.tag.clone().unwrap_or_else(|| "-".into()),
                r.digest.as_deref().map(short_digest).unwrap_or_else(|| "-".into()),
                r.media_type.as_deref().map(short_type).unwrap_or("-").to_string(),
                if r.platforms.is_empty() {
                    "-".into()
                } else {
                    r.platforms.join(",")
                },
                r.size.map(ui::bytes).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let header = ["REPOSITORY", "TAG", "DIGEST", "TYPE", "PLATFORMS", "SIZE"];
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[String]| {
        let mut s = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s
    };
    let mut out = line(&header.map(String::from));
    out.push('\n');
    for (row, r) in cells.iter().zip(rows) {
        out.push_str(&line(row));
        out.push('\n');
        if let Some(err) = &r.error {
            out.push_str(&format!("  error: {err}\n"));
        }
    }
    out
}

fn short_digest(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algo, hex)) => format!("{algo}:{}", &hex[..hex.len().min(12)]),
        None => digest.to_string(),
    }
}

fn short_type(media_type: &str) -> &str {
    match media_type {
        crate::oci::OCI_INDEX => "oci-index",
        crate::oci::OCI_MANIFEST => "oci-image",
        crate::oci::DOCKER_LIST => "docker-list",
        crate::oci::DOCKER_MANIFEST => "docker-image",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(size: u64) -> Descriptor {
        Descriptor {
            media_type: String::new(),
            digest: "sha256:00".into(),
            size,
            platform: None,
            annotations: Default::default(),
        }
    }

    #[test]
    fn image_size_counts_config_and_layers() {
        assert_eq!(image_size(&desc(100), &[desc(1000), desc(24)]), 1124);
        assert_eq!(image_size(&desc(7), &[]), 7);
    }

    #[test]
    fn table_shows_rows_and_errors() {
        let rows = vec![
            Row {
                repository: "my-kit".into(),
                tag: Some("v1.0.0".into()),
                digest: Some("sha256:0123456789abcdef0123".into()),
                media_type: Some(crate::oci::OCI_INDEX.into()),
                platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
                size: Some(3 * 1024 * 1024 / 2),
                error: None,
            },
            Row {
                error: Some("the index references sha256:aa, which the registry does not have".into()),
                ..empty("broken", Some("v2"))
            },
        ];
        let expected = "\
REPOSITORY  TAG     DIGEST               TYPE       PLATFORMS                SIZE
my-kit      v1.0.0  sha256:0123456789ab  oci-index  linux/amd64,linux/arm64  1.5 MiB
broken      v2      -                    -          -                        -
  error: the index references sha256:aa, which the registry does not have
";
        assert_eq!(table(&rows), expected);
        let json = serde_json::to_string(&rows).unwrap();
        assert_eq!(serde_json::from_str::<Vec<Row>>(&json).unwrap(), rows);
    }
}
