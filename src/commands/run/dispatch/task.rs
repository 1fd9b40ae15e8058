//! One attempt of one task on one worker: the task's files copied in, claude run under
//! the login's gate and the run's interrupts, its events read as they come, and the
//! attempt settled (a line, a retry, a pause).

use std::sync::Arc;
use std::time::SystemTime;

use super::{Halt, Run, Worker, LOGIN};
use crate::claude::Event;
use crate::commands::run::attempt::{attempt, Ended, Stop};
use crate::commands::run::files;
use crate::commands::run::judge::{Judgement, Seen};
use crate::commands::run::results::{Failure, Status};
use crate::credentials::identity::Identity;
use crate::report::RunEvent;

impl Run {
    async fn identity(&self, worker: &Worker) -> Result<Identity, String> {
        worker
            .identity
            .get_or_try_init(|| async {
                let info = self
                    .engine
                    .inspect_container(&worker.member.id)
                    .await
                    .map_err(|e| e.to_string())?;
                self.probes
                    .layout(&self.engine, &info)
                    .await
                    .map(|l| l.identity)
                    .map_err(|e| e.to_string())
            })
            .await
            .cloned()
    }

    /// Runs one attempt of task `index` on `worker` and settles it. `false` when the
    /// container is gone and its worker must stop.
    pub(super) async fn run_task(
        self: &Arc<Self>,
        worker: &Worker,
        index: usize,
        probe: bool,
    ) -> bool {
        let task = &*self.taken(index);
        let container = worker.member.name.clone();
        let attempt_no = {
            let mut s = self.lock();
            s.started[index].get_or_insert_with(SystemTime::now);
            s.attempts[index] + 1
        };
        self.reporter.event(&RunEvent::TaskStarted {
            id: task.id.clone(),
            container: container.clone(),
            attempt: attempt_no,
        });
        let epoch = *self.paused.borrow();
        if !task.files.is_empty() {
            let copied = match self.identity(worker).await {
                Ok(user) => files::copy_in(&self.engine, &worker.member.id, &task.files, &user)
                    .await
                    .map_err(|e| {
                        let passing =
                            matches!(&e, files::FilesError::Engine(e) if e.is_transient());
                        (e.to_string(), passing)
                    }),
                Err(e) => Err((e, false)),
            };
            match copied {
                Ok(skipped) => {
                    for s in skipped {
                        self.reporter.warn(&format!(
                            "{}: {s}: not a file or directory, left out",
                            task.id
                        ));
                    }
                }
                Err((message, passing)) => {
                    self.count_attempt(index);
                    return self.settle_failure(
                        worker,
                        index,
                        probe,
                        Failure {
                            class: "files".into(),
                            message,
                            http_status: None,
                        },
                        !passing,
                        None,
                        &Seen::default(),
                    );
                }
            }
        }
        let stop = {
            let mut abort = self.abort.subscribe();
            let mut paused = self.paused.subscribe();
            async move {
                tokio::select! {
                    _ = abort.wait_for(|a| *a) => Stop::Abort,
                    _ = paused.wait_for(|e| *e > epoch) => Stop::Paused,
                }
            }
        };
        let on_event = |event: &Event| {
            if let Event::RateLimit {
                status,
                resets_at,
                kind,
            } = event
            {
                if status == "rejected" {
                    self.pause(*resets_at, kind.as_deref());
                } else if status != "allowed" {
                    self.reporter.event(&RunEvent::RateLimitNotice {
                        login: LOGIN.into(),
                        status: status.clone(),
                        limit: kind.clone(),
                    });
                }
            }
        };
        let on_line = |line: &str| {
            self.reporter.event(&RunEvent::TaskOutput {
                id: task.id.clone(),
                container: container.clone(),
                line: line.to_string(),
            });
        };
        let ended = attempt(
            &self.engine,
            &worker.member.id,
            worker.shell,
            task,
            &self.defaults,
            stop,
            on_event,
            on_line,
        )
        .await;
        match ended {
            Ended::Judged {
                exit_code,
                seen,
                judgement,
            } => match judgement {
                Judgement::Ok => {
                    self.count_attempt(index);
                    if probe {
                        self.probe_passed();
                    }
                    if !task.collect.is_empty() {
                        let dest = self.collect_dir.join(&task.id);
                        match files::collect(
                            &self.engine,
                            &worker.member.id,
                            &task.collect,
                            &dest,
                            self.collect_bounds,
                        )
                        .await
                        {
                            Ok((got, refused)) => {
                                for r in &refused {
                                    self.reporter.warn(&format!("{}: left out {r}", task.id));
                                }
                                self.lock().collected.insert(index, (got, refused));
                            }
                            Err((e, got, refused)) => {
                                for r in &refused {
                                    self.reporter.warn(&format!("{}: left out {r}", task.id));
                                }
                                self.lock().collected.insert(index, (got, refused));
                                return self.settle_failure(
                                    worker,
                                    index,
                                    false,
                                    Failure {
                                        class: "collect".into(),
                                        message: e.to_string(),
                                        http_status: None,
                                    },
                                    true,
                                    Some(exit_code),
                                    &seen,
                                );
                            }
                        }
                    }
                    self.write(worker, index, Status::Ok, Some(exit_code), &seen, None);
                    true
                }
                Judgement::UsageLimit { resets_at, limit } => {
                    self.pause(resets_at, limit.as_deref());
                    self.put_back(worker, index, "usage limit");
                    true
                }
                Judgement::LoggedOut(failure) => {
                    self.count_attempt(index);
                    let hint = format!(
                        "{}: {}\n  hint: the login is not accepted: run `claunch creds sync` (or `claude login` on the host, then `claunch creds push`), then this command again",
                        worker.member.name, failure.message
                    );
                    self.write(
                        worker,
                        index,
                        Status::Failed,
                        Some(exit_code),
                        &seen,
                        Some(failure),
                    );
                    self.halt(Halt::Fatal(hint));
                    true
                }
                Judgement::Transient(failure) => {
                    self.count_attempt(index);
                    self.settle_failure(
                        worker,
                        index,
                        probe,
                        failure,
                        false,
                        Some(exit_code),
                        &seen,
                    )
                }
                Judgement::Failed(failure) => {
                    self.count_attempt(index);
                    self.settle_failure(worker, index, probe, failure, true, Some(exit_code), &seen)
                }
            },
            Ended::Stopped { why, seen } => match why {
                Stop::Abort => {
                    if probe {
                        self.lock().gate.probe_undecided(SystemTime::now());
                    }
                    true
                }
                Stop::Paused => {
                    self.put_back(worker, index, "login paused");
                    true
                }
                Stop::Timeout => {
                    self.count_attempt(index);
                    let secs = task
                        .timeout
                        .or(self.defaults.timeout)
                        .map_or(0, |t| t.as_secs());
                    let last = seen
                        .last_report
                        .as_ref()
                        .map(|l| format!("; claude last reported: {l}"))
                        .unwrap_or_default();
                    let failure = Failure {
                        class: "timeout".into(),
                        message: format!("no result within {secs}s{last}"),
                        http_status: None,
                    };
                    self.settle_failure(worker, index, probe, failure, false, None, &seen)
                }
            },
            Ended::Engine(e) => {
                if probe {
                    self.lock().gate.probe_undecided(SystemTime::now());
                }
                let running = self
                    .engine
                    .inspect_container(&worker.member.id)
                    .await
                    .is_ok_and(|i| i.state.running);
                if running {
                    self.count_attempt(index);
                    let failure = Failure {
                        class: "engine".into(),
                        message: e.to_string(),
                        http_status: None,
                    };
                    self.settle_failure(
                        worker,
                        index,
                        false,
                        failure,
                        !e.is_transient(),
                        None,
                        &Seen::default(),
                    )
                } else {
                    // Another container takes it; this one is gone.
                    self.put_back(worker, index, "its container stopped");
                    self.reporter.warn(&format!(
                        "{} stopped ({e}): no more tasks go to it; `claunch up` starts it again",
                        worker.member.name
                    ));
                    false
                }
            }
        }
    }
}
