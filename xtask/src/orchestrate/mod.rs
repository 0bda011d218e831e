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
use crate::workflow::{PhaseKind, Workspace};
use input::Input;
use progress::Marks;

/// A workspace with its inputs resolved: the workflow it runs.
#[derive(Debug, Clone)]
pub(crate) enum Subject {
    Kit(Kit),
    Variant(Variant),
}

impl Subject {
    /// Reads and resolves the workspace's `input.json`, with what an earlier call resolved
    /// (`resolved.json`) for whatever the input leaves open, and records what it resolved.
    pub(crate) fn load(ws: &Workspace) -> Result<Subject> {
        // Before anything else: no tool a killed run left behind keeps running beside this one.
        ws.stop_orphans()?;
        let recorded = input::read_resolved(ws);
        if let Some(recorded) = &recorded {
            crate::project::use_recorded_root(&recorded.root);
            if let Some(forest) = &recorded.forest_root {
                crate::project::use_recorded_forest_root(forest);
            }
        }
        let subject = match input::read(ws)? {
            Input::Kit(mut input) => {
                if let Some(recorded) = &recorded {
                    input.kit_dir.get_or_insert_with(|| recorded.repo.clone());
                }
                Subject::Kit(Kit::resolve(ws, &input)?)
            }
            Input::Variant(mut input) => {
                if let Some(recorded) = &recorded {
                    input.variant_dir.get_or_insert_with(|| recorded.repo.clone());
                    input.arch = input.arch.or(Some(recorded.arch));
                    input.variant = input.variant.or(recorded.variant.clone());
                }
                let variant = Variant::resolve(ws, &input)?;
                variant.recover()?;
                Subject::Variant(variant)
            }
        };
        subject.record()?;
        Ok(subject)
    }

    /// Writes `resolved.json` when it would change.
    pub(crate) fn record(&self) -> Result<()> {
        let (ws, resolved) = match self {
            Subject::Kit(kit) => (
                &kit.ws,
                input::Resolved {
                    root: crate::project::root(),
                    repo: kit.repo.clone(),
                    arch: kit.arch,
                    variant: None,
                    forest_root: crate::project::forest_root(),
                },
            ),
            Subject::Variant(variant) => (
                &variant.ws,
                input::Resolved {
                    root: crate::project::root(),
                    repo: variant.repo.clone(),
                    arch: variant.arch,
                    variant: Some(variant.variant.clone()),
                    forest_root: crate::project::forest_root(),
                },
            ),
        };
        if input::read_resolved(ws).as_ref() != Some(&resolved) {
            crate::fsx::write_json_state(&input::resolved_path(ws), &resolved)?;
        }
        Ok(())
    }
}

/// What is in the workspace for a phase now: the id of its result and the size and time of
/// the answer file an orchestrator writes.
pub(crate) fn marks(ws: &Workspace, phase: impl PhaseKind) -> Marks {
    let path = ws.answer_path(phase);
    let meta = std::fs::metadata(&path).ok().filter(|m| m.is_file());
    let answer = meta.as_ref().map(|m| {
        let modified = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis());
        (m.len(), modified)
    });
    // An answer is prose, read whole; one too large to be one is marked by size and time only.
    let answer_sha256 = meta
        .filter(|m| m.len() <= ANSWER_DIGEST_MAX)
        .and_then(|_| std::fs::read(&path).ok())
        .map(|bytes| crate::fsx::sha256_hex(&bytes));
    Marks {
        result: ws.result_value(phase).ok().flatten().map(|r| r.id),
        answer,
        answer_sha256,
    }
}

/// The largest answer file whose contents are hashed into its marks.
const ANSWER_DIGEST_MAX: u64 = 16 << 20;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::KitPhase;

    /// A second answer of the same size written within one tick of the file clock (its time
    /// set back to the first's here) is still a change; the same bytes again are not.
    #[test]
    fn an_answer_rewritten_within_one_clock_tick_is_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::new(dir.path());
        let path = ws.answer_path(KitPhase::Setup);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "Registry up! (1)").unwrap();
        let first = marks(&ws, KitPhase::Setup);
        let time = std::fs::metadata(&path).unwrap().modified().unwrap();
        let rewrite = |text: &str| {
            std::fs::write(&path, text).unwrap();
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(time)
                .unwrap();
            marks(&ws, KitPhase::Setup)
        };
        let second = rewrite("Registry up! (2)");
        assert_eq!(second.answer, first.answer, "same size, same time");
        assert!(second.changed_since(&first));
        assert!(!rewrite("Registry up! (1)").changed_since(&first));
        // Progress saved before digests were kept: only size and time count.
        let old = Marks {
            answer_sha256: None,
            ..first.clone()
        };
        assert!(!second.changed_since(&old));
        assert!(rewrite("Registry up! (22)").changed_since(&old));
        assert!(Marks::default().changed_since(&old));
    }
}
