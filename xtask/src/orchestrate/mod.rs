//! Driving a workflow: one pure decision function ([`machine::decide`]) carried out either by
//! sub-agents (`next-step`, [`agent`]) or right here (`build-kit` / `variant`, [`direct`]),
//! with the workspace's progress and inputs.

pub(crate) mod agent;
pub(crate) mod direct;
pub(crate) mod input;
pub(crate) mod machine;
pub(crate) mod progress;

use anyhow::Result;

use crate::kit::Kit;
use crate::variant::Variant;
use crate::workflow::Workspace;
use input::Input;

/// A workspace with its inputs resolved: the workflow it runs.
#[derive(Debug, Clone)]
pub(crate) enum Subject {
    Kit(Kit),
    Variant(Variant),
}

impl Subject {
    /// Reads and resolves the workspace's `input.json`.
    pub(crate) fn load(ws: &Workspace) -> Result<Subject> {
        Ok(match input::read(ws)? {
            Input::Kit(input) => Subject::Kit(Kit::resolve(ws, &input)?),
            Input::Variant(input) => Subject::Variant(Variant::resolve(ws, &input)?),
        })
    }
}
