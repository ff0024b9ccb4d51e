//! Natural batching of one kind of statement: the requests that arrive while a batch's
//! statement runs go together in the next one. An idle worker's request runs at once, alone;
//! a busy worker's requests share a round trip and a commit, so the database does less work
//! per message exactly when there are more of them.

use futures_util::FutureExt;
use std::{future::Future, panic::AssertUnwindSafe};
use tokio::sync::{mpsc, oneshot};

use namaskah_core::{Config, queue::JobError, store::StoreError};

/// The largest batch worth having: the messages one worker holds at once.
pub fn limit(config: &Config) -> usize {
    usize::from(config.worker_prefetch).max(1)
}

type Reply<Answer> = oneshot::Sender<Result<Answer, JobError>>;

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
                    Ok(Err(error)) => fail_all(replies, &error.to_string()),
                    Err(_) => fail_all(replies, "the batch's statement panicked"),
                }
            }
        });
        Self { requests }
    }

    /// The answer to `request`, from the next batch.
    pub async fn call(&self, request: Request) -> Result<Answer, JobError> {
        let (reply, answer) = oneshot::channel();
        let unanswered = || JobError::Retryable("the batch went unanswered".to_owned());
        self.requests
            .send((request, reply))
            .map_err(|_| unanswered())?;
        answer.await.map_err(|_| unanswered())?
    }
}

fn fail_all<Answer>(replies: Vec<Reply<Answer>>, reason: &str) {
    for reply in replies {
        let _ = reply.send(Err(JobError::Retryable(reason.to_owned())));
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
            matches!(&failed, Err(JobError::Retryable(reason)) if reason.contains("unlucky")),
            "{failed:?}"
        );
        let panicked = batcher.call(666).await;
        assert!(
            matches!(panicked, Err(JobError::Retryable(_))),
            "{panicked:?}"
        );
        assert_eq!(batcher.call(21).await.expect("answered"), 42);
    }
}
