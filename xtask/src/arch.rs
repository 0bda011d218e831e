//! The two architectures Bottlerocket builds, under their twoliter and OCI names.

use std::fmt;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// CPU architecture of a Bottlerocket build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
pub(crate) enum Arch {
    #[serde(rename = "x86_64", alias = "amd64")]
    #[value(name = "x86_64", alias = "amd64")]
    X86_64,
    #[serde(rename = "aarch64", alias = "arm64")]
    #[value(name = "aarch64", alias = "arm64")]
    Aarch64,
}

impl Arch {
    /// Parses twoliter (`x86_64`, `aarch64`) and OCI/Docker (`amd64`, `arm64`) names.
    pub(crate) fn parse(text: &str) -> Result<Arch> {
        match text {
            "x86_64" | "amd64" => Ok(Arch::X86_64),
            "aarch64" | "arm64" => Ok(Arch::Aarch64),
            other => bail!("unknown arch `{other}`: use x86_64 (amd64) or aarch64 (arm64)"),
        }
    }

    /// The host's architecture, as the kit Makefile's `ARCH ?= $(uname -m)` would pick.
    pub(crate) fn host() -> Result<Arch> {
        Arch::parse(std::env::consts::ARCH).map_err(|_| {
            anyhow::anyhow!(
                "this host's arch `{}` cannot build Bottlerocket: pass --arch",
                std::env::consts::ARCH
            )
        })
    }

    /// The name twoliter, cargo-make and file names use.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// The `architecture` of an OCI platform.
    pub(crate) fn oci(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }
}

impl std::str::FromStr for Arch {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Arch> {
        Arch::parse(text)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(Arch::parse("amd64").unwrap(), Arch::X86_64);
        assert_eq!(Arch::parse("arm64").unwrap().name(), "aarch64");
        assert_eq!(Arch::X86_64.oci(), "amd64");
        assert!(Arch::parse("riscv64")
            .unwrap_err()
            .to_string()
            .contains("x86_64 (amd64)"));
        assert_eq!(serde_json::to_string(&Arch::Aarch64).unwrap(), "\"aarch64\"");
    }
}
