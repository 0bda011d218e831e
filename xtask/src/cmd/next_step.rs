//! `next-step`: one JSON action on stdout per call, for agent orchestrators.

use std::process::ExitCode;

use anyhow::Result;
use xshell::Shell;

use crate::flags::{self, PhaseResultFlag};
use crate::orchestrate::agent::{self, Call};
use crate::orchestrate::machine::Report;
use crate::orchestrate::Subject;
use crate::protocol::{Action, Answer, ErrorAnswer};
use crate::workflow::Workspace;

impl flags::NextStep {
    pub(crate) fn run(self, sh: &Shell) -> Result<ExitCode> {
        let (action, code) = match self.answer(sh) {
            Ok(action) => (action, ExitCode::SUCCESS),
            Err(err) => (
                Action::Error(ErrorAnswer {
                    reason: format!("{err:#}"),
                }),
                ExitCode::from(2),
            ),
        };
        println!("{}", Answer(action).to_line()?);
        Ok(code)
    }

    fn answer(&self, sh: &Shell) -> Result<Action> {
        let ws = Workspace::new(&self.workspace);
        let subject = Subject::load(&ws)?;
        let call = Call {
            report: Report {
                success: self.phase_result.map(|r| r == PhaseResultFlag::Success),
                reason: self.reason.clone(),
            },
            max_attempts: self.max_attempts,
            retry: self.retry,
        };
        agent::next_step(sh, &subject, &call)
    }
}
