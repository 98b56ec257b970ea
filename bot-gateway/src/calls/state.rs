//! The state machine of one call leg, as Graph reports it.
//!
//! ```text
//!  incoming ──▶ establishing/ringing ──▶ established ⇄ hold / transferring /
//!     │                 │                    │        transferAccepted / redirecting
//!     └─────────────────┴────────────────────┴──▶ terminating ──▶ terminated
//! ```
//!
//! Graph may deliver `establishing` after `established` (Microsoft says so
//! in the `call: answer` documentation), and any notification may be
//! replayed. So states are ranked and a leg never moves to a lower rank:
//! a late `establishing` after `established` is ignored, and nothing
//! follows `terminated`. States of the same rank may alternate (a call
//! goes on hold and back).

/// Graph `callState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallState {
    Incoming,
    Establishing,
    Ringing,
    Established,
    Hold,
    Transferring,
    TransferAccepted,
    Redirecting,
    Terminating,
    Terminated,
}

impl CallState {
    /// Parses Graph's camelCase value (case-insensitively).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "incoming" => CallState::Incoming,
            "establishing" => CallState::Establishing,
            "ringing" => CallState::Ringing,
            "established" => CallState::Established,
            "hold" => CallState::Hold,
            "transferring" => CallState::Transferring,
            "transferaccepted" => CallState::TransferAccepted,
            "redirecting" => CallState::Redirecting,
            "terminating" => CallState::Terminating,
            "terminated" => CallState::Terminated,
            _ => return None,
        })
    }

    /// Graph's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Incoming => "incoming",
            CallState::Establishing => "establishing",
            CallState::Ringing => "ringing",
            CallState::Established => "established",
            CallState::Hold => "hold",
            CallState::Transferring => "transferring",
            CallState::TransferAccepted => "transferAccepted",
            CallState::Redirecting => "redirecting",
            CallState::Terminating => "terminating",
            CallState::Terminated => "terminated",
        }
    }

    fn rank(self) -> u8 {
        match self {
            CallState::Incoming => 0,
            CallState::Establishing | CallState::Ringing => 1,
            CallState::Established
            | CallState::Hold
            | CallState::Transferring
            | CallState::TransferAccepted
            | CallState::Redirecting => 2,
            CallState::Terminating => 3,
            CallState::Terminated => 4,
        }
    }

    /// The state after a notification reporting `next`: `next` unless it
    /// would go backwards (then `self`).
    pub fn advance(self, next: CallState) -> CallState {
        if self == CallState::Terminated || next.rank() < self.rank() {
            self
        } else {
            next
        }
    }

    /// Media can flow (the call was established at least once).
    pub fn is_connected(self) -> bool {
        self.rank() >= 2
    }

    /// The leg is being transferred or redirected: a party joining now is
    /// the one the call is being redirected to.
    pub fn is_redirecting(self) -> bool {
        matches!(
            self,
            CallState::Transferring | CallState::TransferAccepted | CallState::Redirecting
        )
    }

    /// The leg is over.
    pub fn is_over(self) -> bool {
        self.rank() >= 3
    }
}

#[cfg(test)]
mod tests {
    use super::CallState::*;
    use super::*;

    #[test]
    fn late_establishing_does_not_regress() {
        assert_eq!(Incoming.advance(Established), Established);
        assert_eq!(Established.advance(Establishing), Established);
        assert_eq!(Establishing.advance(Established), Established);
    }

    #[test]
    fn same_rank_states_alternate_and_terminated_is_final() {
        assert_eq!(Established.advance(Hold), Hold);
        assert_eq!(Hold.advance(Established), Established);
        assert_eq!(Terminated.advance(Established), Terminated);
        assert_eq!(Terminated.advance(Terminating), Terminated);
        assert_eq!(Established.advance(Terminated), Terminated);
    }

    #[test]
    fn states_round_trip() {
        for s in [
            Incoming,
            Establishing,
            Ringing,
            Established,
            Hold,
            Transferring,
            TransferAccepted,
            Redirecting,
            Terminating,
            Terminated,
        ] {
            assert_eq!(CallState::parse(s.as_str()), Some(s));
        }
        assert_eq!(CallState::parse("nonsense"), None);
    }
}
