//! The one error shape of checks that report every fault they find (image checks, GPT, the
//! inventory), rather than stopping at the first: a list of sentences, each naming what is
//! wrong. Everything else uses `anyhow`.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Problems(Vec<String>);

impl Problems {
    pub(crate) fn new() -> Problems {
        Problems(Vec::new())
    }

    pub(crate) fn push(&mut self, problem: impl Into<String>) {
        self.0.push(problem.into());
    }

    pub(crate) fn extend(&mut self, more: Problems) {
        self.0.extend(more.0);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, String> {
        self.0.iter()
    }

    /// `Ok(value)` when nothing was found wrong.
    pub(crate) fn into_result<T>(self, value: T) -> Result<T, Problems> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }

    /// Each problem, with `prefix` (a file name) before it.
    pub(crate) fn prefixed(self, prefix: &str) -> Problems {
        Problems(self.0.into_iter().map(|p| format!("{prefix}: {p}")).collect())
    }
}

impl From<String> for Problems {
    fn from(problem: String) -> Problems {
        Problems(vec![problem])
    }
}

impl From<&str> for Problems {
    fn from(problem: &str) -> Problems {
        Problems(vec![problem.to_string()])
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

impl std::error::Error for Problems {}

impl<'a> IntoIterator for &'a Problems {
    type Item = &'a String;
    type IntoIter = std::slice::Iter<'a, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_and_reads_as_one_sentence_each() {
        let mut found = Problems::new();
        assert_eq!(found.clone().into_result(1), Ok(1));
        found.push("header CRC mismatch");
        found.extend(Problems::from("no ROOT partition"));
        assert_eq!(found.len(), 2);
        assert_eq!(found.to_string(), "header CRC mismatch; no ROOT partition");
        let named = found.prefixed("disk.img");
        assert_eq!(named.iter().next().unwrap(), "disk.img: header CRC mismatch");
        assert!(named.into_result(()).is_err());
    }
}
