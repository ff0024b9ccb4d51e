//! A group of polls (`poll_sms_group`): the first polls of numbers recorded together, which the
//! outbox relay publishes as one message, and the polls of those that must look again
//! together later.
//!
//! The members are loaded in one statement. The group waits, held by the consumer, until its
//! last member is due: numbers recorded in one statement are due within milliseconds of one
//! another. Then each member is polled side by side, as the message it would have been
//! alone. The members whose next polls fall due together go on as one group again; a member
//! that fails, or looks again alone, goes on as a `poll_sms` message of its own.

use std::time::Duration;
use tracing::Instrument;

use namaskah_core::{
    domain::Status,
    queue::{
        Attempt, Envelope, FollowUp, GroupedVerification, Handled, Job, JobError,
        MAX_GROUPED_POLLS, member_follow_ups,
    },
};

use super::{MIN_POLL_DELAY, PollingWorker};

/// How far apart the next polls of two members may fall and still go on together: the later
/// one is asked at most this much early.
const TOGETHER_WITHIN: Duration = MIN_POLL_DELAY;

impl PollingWorker {
    pub(super) async fn poll_group(
        &self,
        group: &Envelope,
        polls: &[GroupedVerification],
        attempt: Attempt,
    ) -> Handled {
        let retry = &self.deps.config.retry.polling;
        let alone = |poll: &GroupedVerification| Envelope {
            attempt: attempt.number,
            ..poll.poll_alone()
        };
        let loads = polls
            .iter()
            .map(|poll| self.loads.call(poll.verification_id));
        let loaded = futures_util::future::join_all(loads).await;

        let mut follow_ups = Vec::new();
        let mut waiting = Vec::with_capacity(polls.len());
        for (poll, loaded) in polls.iter().zip(loaded) {
            let handled = match loaded {
                Ok(Some(verification)) if verification.status == Status::WaitingSms => {
                    waiting.push((poll, verification));
                    continue;
                }
                Ok(Some(_)) => Ok(Handled::Done),
                Ok(None) => Err(JobError::Permanent("no such verification".to_owned())),
                Err(error) => Err(error.into()),
            };
            follow_ups.extend(member_follow_ups(alone(poll), attempt, retry, handled));
        }

        let last_due = waiting
            .iter()
            .filter_map(|(_, verification)| self.not_due_for(verification))
            .max();
        if let Some(wait) = last_due {
            let rest = waiting.iter().map(|(poll, _)| (*poll).clone()).collect();
            // The same attempt as the group: only the members still waiting, without cloning
            // the group's own list first.
            let next = Envelope {
                job: Job::PollSmsGroup { polls: rest },
                attempt: group.attempt,
                trace_id: group.trace_id.clone(),
            };
            return go_on(follow_ups, vec![FollowUp { after: wait, next }]);
        }

        let members = waiting.into_iter().map(|(poll, verification)| {
            let alone = alone(poll);
            let span = tracing::info_span!(
                "grouped_poll",
                subject = %poll.verification_id,
                trace_id = %poll.trace_id,
            );
            async move {
                let handled = match self.group_slots.acquire().await {
                    Ok(_slot) => self.poll(&alone, verification).await,
                    Err(_) => Err(JobError::Retryable("the worker is closing".to_owned())),
                };
                (alone, handled)
            }
            .instrument(span)
        });
        let mut again = Vec::new();
        for (alone, handled) in futures_util::future::join_all(members).await {
            match handled {
                Ok(Handled::Again {
                    after,
                    next:
                        Envelope {
                            job: Job::PollSms { verification_id },
                            trace_id,
                            ..
                        },
                }) => again.push(LookAgain {
                    after,
                    poll: GroupedVerification {
                        verification_id,
                        trace_id,
                    },
                }),
                handled => follow_ups.extend(member_follow_ups(alone, attempt, retry, handled)),
            }
        }
        go_on(follow_ups, together(again))
    }
}

/// A member with no SMS yet, to poll again after `after`.
#[derive(Debug)]
struct LookAgain {
    after: Duration,
    poll: GroupedVerification,
}

/// What is left of the group: held by the consumer when it is one group (or poll) to come
/// back to, published otherwise.
fn go_on(mut alone: Vec<FollowUp>, mut together: Vec<FollowUp>) -> Handled {
    if alone.is_empty()
        && together.len() == 1
        && let Some(FollowUp { after, next }) = together.pop()
    {
        return Handled::Again { after, next };
    }
    alone.append(&mut together);
    if alone.is_empty() {
        Handled::Done
    } else {
        Handled::FollowUps(alone)
    }
}

/// The polls that look again, gathered into groups of those due within [`TOGETHER_WITHIN`]
/// of one another (each group due when its first member is); a poll with no company goes on
/// alone.
fn together(mut polls: Vec<LookAgain>) -> Vec<FollowUp> {
    polls.sort_by_key(|poll| poll.after);
    let mut gathered = Vec::new();
    let mut rest = polls.as_slice();
    while let Some(first) = rest.first() {
        let size = rest
            .iter()
            .take(MAX_GROUPED_POLLS)
            .take_while(|poll| poll.after <= first.after + TOGETHER_WITHIN)
            .count();
        let (run, after_run) = rest.split_at(size);
        let next = match run {
            [one] => one.poll.poll_alone(),
            _ => Envelope::first(
                Job::PollSmsGroup {
                    polls: run.iter().map(|poll| poll.poll.clone()).collect(),
                },
                first.poll.trace_id.clone(),
            ),
        };
        gathered.push(FollowUp {
            after: first.after,
            next,
        });
        rest = after_run;
    }
    gathered
}

#[cfg(test)]
mod tests {
    use super::*;
    use namaskah_core::domain::VerificationId;

    fn look_again(millis: u64, trace_id: &str) -> LookAgain {
        LookAgain {
            after: Duration::from_millis(millis),
            poll: GroupedVerification {
                verification_id: VerificationId::new(),
                trace_id: trace_id.to_owned(),
            },
        }
    }

    fn members(follow_up: &FollowUp) -> Vec<&str> {
        match &follow_up.next.job {
            Job::PollSmsGroup { polls } => polls.iter().map(|p| p.trace_id.as_str()).collect(),
            Job::PollSms { .. } => vec![follow_up.next.trace_id.as_str()],
            other => panic!("not a poll: {other:?}"),
        }
    }

    #[test]
    fn polls_due_together_go_on_together_and_a_late_one_alone() {
        let gathered = together(vec![
            look_again(3_100, "b"),
            look_again(3_000, "a"),
            look_again(9_000, "d"),
            look_again(3_200, "c"),
        ]);
        assert_eq!(gathered.len(), 2);
        assert_eq!(gathered[0].after, Duration::from_millis(3_000));
        assert_eq!(members(&gathered[0]), ["a", "b", "c"]);
        assert_eq!(gathered[0].next.trace_id, "a");
        assert_eq!(gathered[0].next.attempt, 1);
        assert_eq!(gathered[1].after, Duration::from_millis(9_000));
        assert!(matches!(gathered[1].next.job, Job::PollSms { .. }));
        assert_eq!(members(&gathered[1]), ["d"]);
    }

    #[test]
    fn groups_of_polls_that_look_again_are_bounded() {
        let many = (0..MAX_GROUPED_POLLS + 1)
            .map(|n| look_again(2_000, &n.to_string()))
            .collect();
        let gathered = together(many);
        assert_eq!(gathered.len(), 2);
        assert_eq!(members(&gathered[0]).len(), MAX_GROUPED_POLLS);
        assert!(matches!(gathered[1].next.job, Job::PollSms { .. }));
    }

    #[test]
    fn one_group_to_come_back_to_is_held_and_anything_more_is_published() {
        let [group, other] = <[FollowUp; 2]>::try_from(together(vec![
            look_again(2_000, "a"),
            look_again(2_000, "b"),
            look_again(8_000, "c"),
        ]))
        .expect("two follow-ups");
        assert!(matches!(go_on(Vec::new(), Vec::new()), Handled::Done));
        match go_on(Vec::new(), vec![group]) {
            Handled::Again { after, next } => {
                assert_eq!(after, Duration::from_secs(2));
                assert!(matches!(next.job, Job::PollSmsGroup { .. }));
            }
            handled => panic!("not held: {handled:?}"),
        }
        match go_on(vec![other], together(vec![look_again(1_000, "d")])) {
            Handled::FollowUps(follow_ups) => assert_eq!(follow_ups.len(), 2),
            handled => panic!("not published: {handled:?}"),
        }
    }
}
