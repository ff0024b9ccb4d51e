//! Natural batching of one kind of statement: the requests that arrive while a batch's
//! statement runs go together in the next one. An idle process's request runs at once, alone;
//! a busy one's requests share a round trip and a commit, so the database does less work
//! per request exactly when there are more of them. The workers batch their claims, loads
//! and transitions; the API its orders.

use futures_util::FutureExt;
use std::{future::Future, panic::AssertUnwindSafe};
use tokio::sync::{mpsc, oneshot};

use crate::{queue::JobError, store::StoreError};

/// Why a request got no answer from its batch.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{reason}")]
pub struct BatchFailed {
    pub reason: String,
    /// The database was unreachable or overloaded ([`StoreError::is_connection_problem`]),
    /// or kept aborting the statement to break deadlocks: worth retrying, and for the API a
    /// 503 rather than a 500.
    pub unavailable: bool,
}

impl BatchFailed {
    fn new(reason: impl Into<String>, unavailable: bool) -> Self {
        Self {
            reason: reason.into(),
            unavailable,
        }
    }
}

/// A worker retries a message whose batch failed: the statement is idempotent, and the
/// failure is most likely the database's. An outage, or conflicts that outlasted the
/// runner's retries, spend no attempt of the message's.
impl From<BatchFailed> for JobError {
    fn from(failed: BatchFailed) -> Self {
        if failed.unavailable {
            JobError::Unavailable(failed.reason)
        } else {
            JobError::Retryable(failed.reason)
        }
    }
}

type Reply<Answer> = oneshot::Sender<Result<Answer, BatchFailed>>;

/// Sends requests to a task that runs them in batches of at most `max` with `run`.
pub struct Batcher<Request, Answer> {
    requests: mpsc::UnboundedSender<(Request, Reply<Answer>)>,
}

impl<Request, Answer> Batcher<Request, Answer>
where
    Request: Send + 'static,
    Answer: Send + 'static,
{
    /// `run` answers a batch with one answer per request, in order. `name` labels the
    /// batch-size histogram. Must be called inside the Tokio runtime.
    pub fn spawn<Run, Ran>(name: &'static str, max: usize, run: Run) -> Self
    where
        Run: Fn(Vec<Request>) -> Ran + Send + 'static,
        Ran: Future<Output = Result<Vec<Answer>, StoreError>> + Send,
    {
        let (requests, mut incoming) = mpsc::unbounded_channel::<(Request, Reply<Answer>)>();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(max);
            while incoming.recv_many(&mut batch, max).await > 0 {
                let (batch_requests, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
                metrics::histogram!("namaskah_db_batch_size", "batch" => name)
                    .record(batch_requests.len() as f64);
                // A panic fails this batch's requests (they are retried), not every later one.
                let ran = AssertUnwindSafe(run(batch_requests)).catch_unwind().await;
                match ran {
                    Ok(Ok(answers)) => {
                        // A reply without an answer is dropped: its caller sees an error.
                        for (reply, answer) in replies.into_iter().zip(answers) {
                            let _ = reply.send(Ok(answer));
                        }
                    }
                    // A conflict that outlasted the runner's own retries is as good as an
                    // outage to the caller: worth retrying, not a fault.
                    Ok(Err(error)) => fail_all(
                        replies,
                        &BatchFailed::new(
                            error.to_string(),
                            error.is_connection_problem() || error.is_transient_conflict(),
                        ),
                    ),
                    Err(_) => fail_all(
                        replies,
                        &BatchFailed::new("the batch's statement panicked", false),
                    ),
                }
            }
        });
        Self { requests }
    }

    /// The answer to `request`, from the next batch.
    pub async fn call(&self, request: Request) -> Result<Answer, BatchFailed> {
        let (reply, answer) = oneshot::channel();
        let unanswered = || BatchFailed::new("the batch went unanswered", false);
        self.requests
            .send((request, reply))
            .map_err(|_| unanswered())?;
        answer.await.map_err(|_| unanswered())?
    }
}

fn fail_all<Answer>(replies: Vec<Reply<Answer>>, failed: &BatchFailed) {
    for reply in replies {
        let _ = reply.send(Err(failed.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    type Batches = Arc<Mutex<Vec<Vec<u32>>>>;

    /// A batcher that doubles numbers and remembers the batches it ran.
    fn doubler(max: usize) -> (Batcher<u32, u32>, Batches) {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&batches);
        let batcher = Batcher::spawn("test", max, move |requests: Vec<u32>| {
            let seen = Arc::clone(&seen);
            async move {
                seen.lock().expect("lock").push(requests.clone());
                if requests.contains(&13) {
                    return Err(StoreError::Missing("an unlucky number"));
                }
                if requests.contains(&666) {
                    panic!("a statement that panics");
                }
                Ok(requests.into_iter().map(|n| n * 2).collect())
            }
        });
        (batcher, batches)
    }

    #[tokio::test]
    async fn requests_made_together_share_a_batch_and_each_gets_its_own_answer() {
        let (batcher, batches) = doubler(4);
        let answers = futures_util::future::join_all((1..=10).map(|n| batcher.call(n))).await;
        let answers: Vec<u32> = answers
            .into_iter()
            .map(|answer| answer.expect("answered"))
            .collect();
        assert_eq!(answers, (1..=10).map(|n| n * 2).collect::<Vec<_>>());
        let batches = batches.lock().expect("lock");
        assert!(batches.iter().all(|batch| batch.len() <= 4), "{batches:?}");
        assert!(
            batches.len() < 10,
            "some requests shared a batch: {batches:?}"
        );
    }

    #[tokio::test]
    async fn a_failed_or_panicking_batch_fails_its_requests_and_the_next_batch_runs() {
        let (batcher, _) = doubler(1);
        let failed = batcher.call(13).await;
        assert!(
            matches!(&failed, Err(BatchFailed { reason, unavailable: false }) if reason.contains("unlucky")),
            "{failed:?}"
        );
        let panicked = batcher.call(666).await;
        assert!(matches!(panicked, Err(BatchFailed { .. })), "{panicked:?}");
        assert_eq!(batcher.call(21).await.expect("answered"), 42);
    }
}
