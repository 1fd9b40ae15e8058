//! Settling an attempt: its line written and counted, or the task back in the queue (at
//! once, or after a backoff), and the login's gate paused or opened.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::report::clock::rfc3339;
use crate::report::RunEvent;

use super::super::judge::Seen;
use super::super::results::{Failure, Record, Status};
use super::{Halt, Run, Worker, LOGIN};

impl Run {
    pub(super) fn count_attempt(&self, index: usize) {
        self.lock().attempts[index] += 1;
    }

    pub(super) fn probe_passed(&self) {
        let resumed = self.lock().gate.probe_passed(SystemTime::now());
        if let Some(paused) = resumed {
            crate::metrics::fleet().login_paused_until(LOGIN, 0);
            self.reporter.event(&RunEvent::LoginResumed {
                login: LOGIN.into(),
                paused_secs: paused.as_secs(),
            });
            self.bump();
        }
    }

    pub(super) fn pause(&self, resets_at: Option<i64>, limit: Option<&str>) {
        let (until, limit, epoch, login) = {
            let mut s = self.lock();
            let until = s.gate.pause(resets_at, limit, SystemTime::now());
            let limit = s.gate.limit().map(str::to_string);
            (until, limit, s.gate.epoch, s.gate.login.clone())
        };
        if let Some(until) = until {
            let secs = until
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            crate::metrics::fleet().login_paused_until(&login, secs);
            self.reporter.event(&RunEvent::LoginPaused {
                login,
                until: secs,
                limit,
            });
        }
        self.paused.send_if_modified(|e| {
            let moved = *e != epoch;
            *e = epoch;
            moved
        });
        self.bump();
    }

    /// Back to the front of the queue, not as an attempt.
    pub(super) fn put_back(&self, worker: &Worker, index: usize, reason: &str) {
        let task = &*self.taken(index);
        self.lock()
            .queue
            .put_back(index, task.agent.as_ref().map(|(a, _)| a.as_str()));
        self.reporter.event(&RunEvent::TaskRequeued {
            id: task.id.clone(),
            container: worker.member.name.clone(),
            reason: reason.to_string(),
        });
        self.bump();
    }

    /// A failed attempt: tried again after a backoff while attempts are left (unless
    /// `for_good`), else its line is written.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn settle_failure(
        self: &Arc<Self>,
        worker: &Worker,
        index: usize,
        probe: bool,
        failure: Failure,
        for_good: bool,
        exit_code: Option<i64>,
        seen: &Seen,
    ) -> bool {
        if probe {
            self.probe_passed();
        }
        let attempts = self.lock().attempts[index];
        let task = &*self.taken(index);
        if !for_good && attempts <= self.retries {
            let delay = backoff(attempts);
            self.reporter.event(&RunEvent::TaskRetried {
                id: task.id.clone(),
                container: worker.member.name.clone(),
                attempt: attempts,
                class: failure.class.clone(),
                message: failure.message.clone(),
                delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            });
            let agent = task.agent.as_ref().map(|(a, _)| a.clone());
            let mut abort = self.abort.subscribe();
            let me = Arc::downgrade(self);
            tokio::spawn(async move {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = abort.wait_for(|a| *a) => return,
                }
                if let Some(run) = me.upgrade() {
                    run.lock().queue.put_back(index, agent.as_deref());
                    run.bump();
                }
            });
            return true;
        }
        let status = if failure.class == "timeout" {
            Status::Timeout
        } else {
            Status::Failed
        };
        self.write(worker, index, status, exit_code, seen, Some(failure));
        true
    }

    /// Writes task `index`'s line and counts it; the task is finished for good.
    pub(super) fn write(
        &self,
        worker: &Worker,
        index: usize,
        status: Status,
        exit_code: Option<i64>,
        seen: &Seen,
        error: Option<Failure>,
    ) {
        let task = &*self.taken(index);
        let (attempts, started, collected) = {
            let mut s = self.lock();
            (
                s.attempts[index],
                s.started[index],
                s.collected.remove(&index),
            )
        };
        let (collected, refused) = collected.map_or((None, Vec::new()), |(c, r)| (Some(c), r));
        let result = seen.result.as_ref();
        let details = result.map(|r| &r.details);
        let record = Record {
            id: task.id.clone(),
            status,
            agent: worker.member.agent.clone(),
            container: worker.member.name.clone(),
            attempts,
            exit_code,
            result: result.map(|r| r.text.clone()),
            session_id: details.and_then(|d| d.session_id.clone()),
            num_turns: details.and_then(|d| d.num_turns),
            duration_ms: details.and_then(|d| d.duration_ms),
            total_cost_usd: details.and_then(|d| d.total_cost_usd),
            usage: details.and_then(|d| d.usage),
            started_at: rfc3339(started.unwrap_or_else(SystemTime::now)),
            ended_at: rfc3339(SystemTime::now()),
            error: error.clone(),
            collected,
            refused,
        };
        let written = tokio::task::block_in_place(|| {
            self.results.lock().expect("results lock").append(&record)
        });
        if let Err(e) = written {
            self.halt(Halt::Fatal(format!(
                "cannot write the results: {e}; stopping so that no finished task goes unrecorded"
            )));
            return;
        }
        self.forget(index);
        {
            let mut s = self.lock();
            s.queue.finish();
            let c = &mut s.counts;
            match status {
                Status::Ok => c.ok += 1,
                Status::Failed => c.failed += 1,
                Status::Timeout => c.timeout += 1,
            }
            c.cost += record.total_cost_usd.unwrap_or(0.0);
            let u = record.usage.unwrap_or_default();
            crate::metrics::fleet().task_finished(
                LOGIN,
                status.as_str(),
                record.total_cost_usd,
                &[
                    ("input", u.input_tokens),
                    ("output", u.output_tokens),
                    ("cache_read", u.cache_read_input_tokens),
                    ("cache_creation", u.cache_creation_input_tokens),
                ],
            );
            if let Some(u) = record.usage {
                c.input_tokens += u.input_tokens;
                c.output_tokens += u.output_tokens;
            }
        }
        self.reporter.event(&RunEvent::TaskFinished {
            id: task.id.clone(),
            container: worker.member.name.clone(),
            status: status.as_str().into(),
            attempts,
            class: error.as_ref().map(|f| f.class.clone()),
            message: error.map(|f| f.message),
            total_cost_usd: record.total_cost_usd,
        });
        self.bump();
    }
}

/// The pause before attempt `attempt + 1`: 1 s, 2 s, 4 s… at most 30 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(2u64.pow(attempt.saturating_sub(1).min(5))).min(Duration::from_secs(30))
}
