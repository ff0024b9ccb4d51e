//! The leader's loop: wait for the next tick of any job, start it (once per tick), record it.

use chrono::{DateTime, Utc};
use std::{collections::HashMap, sync::Arc};
use tokio::task::JoinHandle;

use namaskah_core::{
    Shutdown,
    errors::{self, Failure},
    store::scheduler_runs,
};

use crate::{
    jobs::{self, JobContext, JobName},
    leader::Leadership,
};

pub struct Scheduler {
    context: Arc<JobContext>,
    /// Names this process in `scheduler_runs`.
    instance: String,
}

impl Scheduler {
    pub fn new(context: JobContext) -> Self {
        let instance = format!(
            "{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Self {
            context: Arc::new(context),
            instance,
        }
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Leads whenever it can, until shutdown.
    pub async fn run(self, shutdown: Shutdown) {
        let settings = &self.context.config.scheduler;
        loop {
            let Some(mut leadership) = Leadership::acquire(
                &self.context.config.database_url,
                settings.leader_poll,
                &shutdown,
            )
            .await
            else {
                break;
            };
            tracing::info!(instance = %self.instance, "scheduler leads");
            metrics::gauge!("namaskah_scheduler_leader").set(1.0);
            match scheduler_runs::abandon_others(&self.context.pool, &self.instance).await {
                Ok(0) => {}
                Ok(abandoned) => {
                    tracing::warn!(abandoned, "runs of a previous leader were left unfinished")
                }
                Err(error) => tracing::warn!(%error, "cannot mark abandoned runs"),
            }
            self.lead(&mut leadership, &shutdown).await;
            metrics::gauge!("namaskah_scheduler_leader").set(0.0);
            leadership.release().await;
            if shutdown.is_triggered() {
                break;
            }
            tracing::warn!("scheduler lost the lead; trying to take it again");
        }
        tracing::info!("scheduler stopped");
    }

    /// Runs jobs while the lock is held.
    async fn lead(&self, leadership: &mut Leadership, shutdown: &Shutdown) {
        let settings = &self.context.config.scheduler;
        let mut upcoming: Vec<(JobName, cron::Schedule, DateTime<Utc>)> = settings
            .schedules
            .iter()
            .filter_map(|(name, schedule)| {
                let job = JobName::parse(name)?;
                let schedule = schedule.clone()?;
                let next = schedule.upcoming(Utc).next()?;
                Some((job, schedule, next))
            })
            .collect();
        let mut running: HashMap<JobName, JoinHandle<()>> = HashMap::new();
        let mut health = tokio::time::interval(settings.leader_poll);
        loop {
            let Some(soonest) = upcoming.iter().map(|(_, _, at)| *at).min() else {
                // Every job switched off: keep the lead (so no other instance wakes up) idly.
                tokio::select! {
                    _ = shutdown.wait() => break,
                    _ = health.tick() => if !leadership.still_held().await { break } else { continue },
                }
            };
            let wait = (soonest - Utc::now()).to_std().unwrap_or_default();
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = health.tick() => {
                    if !leadership.still_held().await {
                        break;
                    }
                }
                _ = tokio::time::sleep(wait) => {
                    let now = Utc::now();
                    for (job, schedule, next) in upcoming.iter_mut() {
                        if *next <= now {
                            self.fire(*job, *next, &mut running).await;
                            *next = schedule.after(&now).next().unwrap_or(DateTime::<Utc>::MAX_UTC);
                        }
                    }
                }
            }
        }
        // Let started runs finish and record themselves; their ticks are taken either way.
        for (_, handle) in running {
            let _ = handle.await;
        }
    }

    async fn fire(
        &self,
        job: JobName,
        tick: DateTime<Utc>,
        running: &mut HashMap<JobName, JoinHandle<()>>,
    ) {
        let pool = &self.context.pool;
        if running
            .get(&job)
            .is_some_and(|handle| !handle.is_finished())
        {
            tracing::warn!(job = job.as_str(), %tick, "previous run still going; skipping this tick");
            if let Err(error) = scheduler_runs::skip(
                pool,
                job.as_str(),
                tick,
                &self.instance,
                "the previous run was still going",
            )
            .await
            {
                tracing::warn!(%error, "cannot record a skipped tick");
            }
            return;
        }
        let run_id = match scheduler_runs::start(pool, job.as_str(), tick, &self.instance).await {
            Ok(Some(id)) => id,
            Ok(None) => return, // this tick already ran
            Err(error) => {
                tracing::warn!(job = job.as_str(), %error, "cannot record the start of a run; skipping it");
                return;
            }
        };
        let context = Arc::clone(&self.context);
        let handle = tokio::spawn(async move {
            let started = std::time::Instant::now();
            let outcome = jobs::run(job, &context).await;
            metrics::histogram!("namaskah_scheduler_job_duration_seconds", "job" => job.as_str())
                .record(started.elapsed().as_secs_f64());
            match &outcome {
                Ok(rows) => {
                    tracing::debug!(job = job.as_str(), rows, "job done");
                    metrics::counter!("namaskah_scheduler_runs_total", "job" => job.as_str(), "outcome" => "succeeded").increment(1);
                }
                Err(error) => {
                    tracing::error!(job = job.as_str(), %error, "job failed");
                    errors::record(Failure {
                        role: "scheduler",
                        queue: None,
                        kind: format!("job_{}", job.as_str()),
                        message: error.chars().take(1000).collect(),
                        ..Failure::default()
                    });
                    metrics::counter!("namaskah_scheduler_runs_total", "job" => job.as_str(), "outcome" => "failed").increment(1);
                }
            }
            if let Err(error) = scheduler_runs::finish(&context.pool, run_id, outcome).await {
                tracing::warn!(%error, "cannot record the end of a run");
            }
        });
        running.insert(job, handle);
    }
}
