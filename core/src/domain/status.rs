//! A verification's status and the moves allowed between statuses.
//!
//! ```text
//! pending ──> ordering ──> waiting_sms ──> completed
//!    │            │              │
//!    │            │              ├──> timed_out ──> refunded
//!    │            │              ├──> cancelled ──> refunded
//!    │            │              └──> failed ─────> refunded
//!    │            ├──> failed ───────────────────> refunded
//!    │            └──> cancelled ────────────────> refunded
//!    └──> cancelled ─────────────────────────────> refunded
//! ```
//!
//! Every change of status in the store is one conditional `UPDATE … WHERE status = ANY(from)`
//! built from a [`Transition`]; zero rows updated means another worker moved the row first.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Accepted and charged; waiting for the ordering worker.
    Pending,
    /// The ordering worker is buying a number.
    Ordering,
    /// A number is assigned; waiting for the SMS until the deadline.
    WaitingSms,
    /// The SMS arrived and its code is stored. Final.
    Completed,
    /// No SMS before the deadline; a refund follows.
    TimedOut,
    /// Cancelled by the customer; a refund follows.
    Cancelled,
    /// No provider could sell a number, or the provider dropped the order; a refund follows.
    Failed,
    /// The price is back on the balance. Final.
    Refunded,
}

/// A status name that is not one of ours.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "unknown status {0:?}; expected one of pending, ordering, waiting_sms, completed, timed_out, cancelled, failed, refunded"
)]
pub struct UnknownStatus(pub String);

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Pending,
        Status::Ordering,
        Status::WaitingSms,
        Status::Completed,
        Status::TimedOut,
        Status::Cancelled,
        Status::Failed,
        Status::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Ordering => "ordering",
            Status::WaitingSms => "waiting_sms",
            Status::Completed => "completed",
            Status::TimedOut => "timed_out",
            Status::Cancelled => "cancelled",
            Status::Failed => "failed",
            Status::Refunded => "refunded",
        }
    }

    pub fn parse(text: &str) -> Result<Self, UnknownStatus> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| UnknownStatus(text.to_owned()))
    }

    /// Nothing more will happen: the customer got the code or the money back.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Completed | Status::Refunded)
    }

    /// The customer's part is over: no code can arrive any more, though a refund may
    /// still be on its way. Cancelling such a verification is refused.
    pub fn is_settled(self) -> bool {
        !matches!(
            self,
            Status::Pending | Status::Ordering | Status::WaitingSms
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Status {
    type Error = UnknownStatus;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Status::parse(&text)
    }
}

/// Every allowed move, named for what happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The ordering worker claims the verification (again, on a retry).
    StartOrdering,
    /// A provider sold a number.
    AssignNumber,
    /// No provider could sell a number.
    FailOrdering,
    /// The customer cancelled before a number was bought.
    CancelBeforeNumber,
    /// The SMS arrived.
    Complete,
    /// The deadline passed without an SMS.
    TimeOut,
    /// The customer cancelled while waiting; the provider order is cancelled.
    CancelWaiting,
    /// The provider ended the order (banned or cancelled on its side).
    FailWaiting,
    /// The refund was written.
    Refund,
}

impl Transition {
    /// The statuses this move starts from.
    pub fn from(self) -> &'static [Status] {
        use Status::*;
        match self {
            // `ordering` too: a retry of the ordering step claims the row again.
            Transition::StartOrdering => &[Pending, Ordering],
            Transition::AssignNumber | Transition::FailOrdering => &[Ordering],
            Transition::CancelBeforeNumber => &[Pending, Ordering],
            Transition::Complete
            | Transition::TimeOut
            | Transition::CancelWaiting
            | Transition::FailWaiting => &[WaitingSms],
            Transition::Refund => &[TimedOut, Cancelled, Failed],
        }
    }

    /// The status this move ends in.
    pub fn to(self) -> Status {
        match self {
            Transition::StartOrdering => Status::Ordering,
            Transition::AssignNumber => Status::WaitingSms,
            Transition::FailOrdering | Transition::FailWaiting => Status::Failed,
            Transition::CancelBeforeNumber | Transition::CancelWaiting => Status::Cancelled,
            Transition::Complete => Status::Completed,
            Transition::TimeOut => Status::TimedOut,
            Transition::Refund => Status::Refunded,
        }
    }

    /// The `from` statuses as the text array the conditional `UPDATE` binds.
    pub fn from_names(self) -> Vec<&'static str> {
        self.from().iter().map(|status| status.as_str()).collect()
    }

    /// Whether this move leaves the customer owed a refund.
    pub fn owes_refund(self) -> bool {
        matches!(
            self.to(),
            Status::TimedOut | Status::Cancelled | Status::Failed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_statuses_have_no_way_out() {
        let all = [
            Transition::StartOrdering,
            Transition::AssignNumber,
            Transition::FailOrdering,
            Transition::CancelBeforeNumber,
            Transition::Complete,
            Transition::TimeOut,
            Transition::CancelWaiting,
            Transition::FailWaiting,
            Transition::Refund,
        ];
        for transition in all {
            assert!(
                transition.from().iter().all(|from| !from.is_final()),
                "{transition:?} leaves a final status"
            );
        }
    }

    #[test]
    fn only_refund_reaches_refunded_and_only_from_an_owed_status() {
        assert_eq!(Transition::Refund.to(), Status::Refunded);
        assert!(
            Transition::Refund
                .from()
                .iter()
                .all(|s| s.is_settled() && !s.is_final())
        );
        assert!(Transition::TimeOut.owes_refund());
        assert!(!Transition::Complete.owes_refund());
    }

    #[test]
    fn names_round_trip() {
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Ok(status));
        }
        assert!(Status::parse("done").is_err());
    }
}
