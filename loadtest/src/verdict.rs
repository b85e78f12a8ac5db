//! The runbook's decision (section 6): FAIL on any data-loss incident,
//! PASS WITH ACTIONS when nothing was lost but something needs a look,
//! PASS otherwise.

use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Decision {
    #[serde(rename = "PASS")]
    Pass,
    #[serde(rename = "PASS WITH ACTIONS")]
    PassWithActions,
    #[serde(rename = "FAIL")]
    Fail,
}

impl Decision {
    /// The worse of two decisions: FAIL over PASS WITH ACTIONS over PASS.
    pub fn worst(self, other: Decision) -> Decision {
        let rank = |d: Decision| match d {
            Decision::Pass => 0,
            Decision::PassWithActions => 1,
            Decision::Fail => 2,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }

    /// The process exit status: 0 unless FAIL.
    pub fn exit_code(self) -> i32 {
        match self {
            Decision::Pass | Decision::PassWithActions => 0,
            Decision::Fail => 1,
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::Pass => "PASS",
            Decision::PassWithActions => "PASS WITH ACTIONS",
            Decision::Fail => "FAIL",
        })
    }
}

/// Incidents (data lost, duplicated, or a write answered 500) and follow-up
/// actions (everything else worth a look) gathered over a run.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Verdict {
    pub incidents: Vec<String>,
    pub actions: Vec<String>,
}

impl Verdict {
    pub fn incident(&mut self, what: impl Into<String>) {
        self.incidents.push(what.into());
    }

    pub fn action(&mut self, what: impl Into<String>) {
        self.actions.push(what.into());
    }

    pub fn decision(&self) -> Decision {
        if !self.incidents.is_empty() {
            Decision::Fail
        } else if !self.actions.is_empty() {
            Decision::PassWithActions
        } else {
            Decision::Pass
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_incident_fails_whatever_the_actions() {
        let mut verdict = Verdict::default();
        assert_eq!(verdict.decision(), Decision::Pass);
        verdict.action("look at the log");
        assert_eq!(verdict.decision(), Decision::PassWithActions);
        verdict.incident("record r1 saved but disappeared");
        assert_eq!(verdict.decision(), Decision::Fail);
        assert_eq!(verdict.decision().exit_code(), 1);
        assert_eq!(Decision::PassWithActions.exit_code(), 0);
        assert_eq!(
            Decision::Pass.worst(Decision::PassWithActions),
            Decision::PassWithActions
        );
        assert_eq!(Decision::Fail.worst(Decision::Pass), Decision::Fail);
        assert_eq!(Decision::Pass.worst(Decision::Pass), Decision::Pass);
    }
}
