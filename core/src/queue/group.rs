//! The members of a grouped message (`deliver_webhooks`, `order_numbers`, `poll_sms_group`):
//! each is handled as if it were a message of its own, and what the consumer would have done
//! with that message's answer becomes a follow-up, so that the group is acked once every
//! member is done or under way on its own.

use std::time::Duration;

use super::{Attempt, Envelope, FollowUp, Handled, JobError, backoff_delay};
use crate::config::RetryPolicy;

/// What is left of one member once its handler has answered, as messages of its own. `alone`
/// is the member as a message at `attempt`, the group's attempt.
///
/// - done: nothing;
/// - again, or follow-ups: as asked;
/// - retryable, with attempts left: the next attempt, after the retry policy's delay;
/// - unavailable: the same attempt, after the retry policy's first delay (an outage spends
///   no attempt);
/// - permanent, or retryable at the last attempt: the same attempt again at once, alone,
///   where the consumer parks it with its own reason if it fails the same way.
pub fn member_follow_ups(
    alone: Envelope,
    attempt: Attempt,
    retry: &RetryPolicy,
    handled: Result<Handled, JobError>,
) -> Vec<FollowUp> {
    let (after, next) = match handled {
        Ok(Handled::Done) => return Vec::new(),
        Ok(Handled::Again { after, next }) => (after, next),
        Ok(Handled::FollowUps(follow_ups)) => return follow_ups,
        Err(JobError::Retryable(reason)) if !attempt.is_last() => {
            tracing::info!(subject = %alone.job.subject_id(), %reason, "a grouped job is retried alone");
            (backoff_delay(retry, attempt.number), alone.next_attempt())
        }
        Err(JobError::Unavailable(reason)) => {
            tracing::info!(subject = %alone.job.subject_id(), %reason, "a grouped job waits alone for the database");
            (retry.base_delay, alone)
        }
        Err(error @ (JobError::Retryable(_) | JobError::Permanent(_))) => {
            tracing::info!(subject = %alone.job.subject_id(), %error, "a grouped job goes on alone");
            (Duration::ZERO, alone)
        }
    };
    vec![FollowUp { after, next }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{domain::VerificationId, queue::Job};

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
            jitter: 0.0,
        }
    }

    fn order() -> Envelope {
        Envelope::first(
            Job::OrderNumber {
                verification_id: VerificationId::new(),
            },
            "t",
        )
    }

    fn at(number: u32) -> Attempt {
        Attempt { number, max: 3 }
    }

    fn single(follow_ups: Vec<FollowUp>) -> (Duration, Envelope) {
        match <[FollowUp; 1]>::try_from(follow_ups) {
            Ok([FollowUp { after, next }]) => (after, next),
            Err(others) => panic!("not one follow-up: {others:?}"),
        }
    }

    #[test]
    fn a_member_goes_on_alone_as_the_consumer_would_take_its_answer() {
        let alone = order();
        let retry = policy();
        assert!(member_follow_ups(alone.clone(), at(1), &retry, Ok(Handled::Done)).is_empty());

        let again = Handled::Again {
            after: Duration::from_secs(5),
            next: alone.clone(),
        };
        assert_eq!(
            single(member_follow_ups(alone.clone(), at(1), &retry, Ok(again))),
            (Duration::from_secs(5), alone.clone())
        );

        let retried = member_follow_ups(
            alone.clone(),
            at(1),
            &retry,
            Err(JobError::Retryable("down".into())),
        );
        assert_eq!(
            single(retried),
            (Duration::from_secs(2), alone.next_attempt())
        );

        let waiting = member_follow_ups(
            alone.clone(),
            at(1),
            &retry,
            Err(JobError::Unavailable("away".into())),
        );
        assert_eq!(single(waiting), (Duration::from_secs(2), alone.clone()));

        for (number, error) in [
            (1, JobError::Permanent("bad".into())),
            (3, JobError::Retryable("down".into())),
        ] {
            let last = member_follow_ups(alone.clone(), at(number), &retry, Err(error));
            assert_eq!(single(last), (Duration::ZERO, alone.clone()));
        }
    }
}
