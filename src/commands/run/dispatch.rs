//! The fleet at work: one worker per container takes the next task it may run from the
//! queue when its container is free and its login's gate is open, runs it, and writes
//! its line; passing failures go back to the queue after a backoff, a usage limit closes
//! the gate until the reset, a lost login or an interrupt stops everything.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{watch, OnceCell, Semaphore};

use crate::claude::Event;
use crate::credentials::holder::Probes;
use crate::credentials::identity::Identity;
use crate::engine::Engine;
use crate::fleet::Member;
use crate::report::clock::rfc3339;
use crate::report::{RunEvent, RunReporter};

use super::attempt::{attempt, Defaults, Ended, Stop};
use super::files;
use super::judge::{Judgement, Seen};
use super::queue::{Gate, Pass, Queue};
use super::results::{Failure, Record, ResultsFile, Status};
use super::tasks::Task;

/// The login every container uses today; pauses are kept by login so that a fleet of
/// several logins pauses only the one that met its limit.
pub const LOGIN: &str = "default";

/// A container of the fleet, as a worker sees it.
pub struct Worker {
    pub member: Member,
    /// Whether it has `/bin/sh`, to stop claude by its pid.
    pub shell: bool,
    identity: OnceCell<Identity>,
}

impl Worker {
    pub fn new(member: Member, shell: bool) -> Self {
        Self {
            member,
            shell,
            identity: OnceCell::new(),
        }
    }
}

/// Why a run stopped before its queue was empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Halt {
    Interrupted,
    /// Something every task would meet (a lost login, an unwritable results file).
    Fatal(String),
}

/// What the run did, counted.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub ok: u64,
    pub failed: u64,
    pub timeout: u64,
    pub cost: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

struct State {
    queue: Queue,
    gate: Gate,
    attempts: Vec<u32>,
    started: Vec<Option<SystemTime>>,
    halt: Option<Halt>,
    /// Live workers per agent.
    live: HashMap<String, usize>,
    counts: Counts,
}

/// Everything the workers share.
pub struct Run {
    pub engine: Engine,
    pub tasks: Vec<Task>,
    pub defaults: Defaults,
    pub retries: u32,
    pub collect_dir: PathBuf,
    pub reporter: Arc<dyn RunReporter>,
    results: Mutex<ResultsFile>,
    state: Mutex<State>,
    /// Bumped whenever a worker waiting for work may find some.
    changed: watch::Sender<u64>,
    /// The gate's epoch: tasks started before a pause stop when it moves.
    paused: watch::Sender<u64>,
    abort: watch::Sender<bool>,
    permits: Semaphore,
    probes: Probes,
}

/// What a free worker does next.
enum Decision {
    Exit,
    /// Until something changes, or until then.
    Wait(Option<SystemTime>),
    /// Task `.0`, as the probe of a paused login when `.1`.
    Run(usize, bool),
}

/// How a run ended.
pub struct Finished {
    pub counts: Counts,
    pub halt: Option<Halt>,
}

impl Run {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        engine: Engine,
        tasks: Vec<Task>,
        pending: Vec<usize>,
        defaults: Defaults,
        retries: u32,
        results: ResultsFile,
        collect_dir: PathBuf,
        parallel: usize,
        reporter: Arc<dyn RunReporter>,
    ) -> Self {
        let queue = Queue::new(&tasks, pending);
        let n = tasks.len();
        Self {
            engine,
            defaults,
            retries,
            collect_dir,
            reporter,
            results: Mutex::new(results),
            state: Mutex::new(State {
                queue,
                gate: Gate::new(LOGIN),
                attempts: vec![0; n],
                started: vec![None; n],
                halt: None,
                live: HashMap::new(),
                counts: Counts::default(),
            }),
            tasks,
            changed: watch::Sender::new(0),
            paused: watch::Sender::new(0),
            abort: watch::Sender::new(false),
            permits: Semaphore::new(parallel.max(1)),
            probes: Probes::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("run state lock")
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Stops dispatching; tasks in flight stop in their containers.
    pub fn halt(&self, why: Halt) {
        {
            let mut s = self.lock();
            if s.halt.is_none() {
                s.halt = Some(why);
            }
        }
        self.abort.send_replace(true);
        self.bump();
    }

    /// Runs every queued task on `workers` until the queue is empty or the run halts.
    pub async fn run_all(self: Arc<Self>, workers: Vec<Worker>) -> Finished {
        {
            let mut s = self.lock();
            for w in &workers {
                *s.live.entry(w.member.agent.clone()).or_default() += 1;
            }
        }
        let handles: Vec<_> = workers
            .into_iter()
            .map(|w| tokio::spawn(Arc::clone(&self).work(Arc::new(w))))
            .collect();
        for handle in handles {
            let _ = handle.await;
        }
        let s = self.lock();
        Finished {
            counts: s.counts.clone(),
            halt: s.halt.clone(),
        }
    }

    async fn work(self: Arc<Self>, worker: Arc<Worker>) {
        let mut changed = self.changed.subscribe();
        let agent = worker.member.agent.clone();
        loop {
            changed.borrow_and_update();
            let Ok(permit) = self.permits.acquire().await else {
                return;
            };
            let decision = {
                let mut s = self.lock();
                if s.halt.is_some() {
                    Decision::Exit
                } else {
                    match s.queue.peek(&agent) {
                        None if s.queue.outstanding == 0 => Decision::Exit,
                        None => Decision::Wait(None),
                        Some(_) => match s.gate.pass(SystemTime::now()) {
                            Pass::Open => s
                                .queue
                                .take(&agent)
                                .map_or(Decision::Wait(None), |i| Decision::Run(i, false)),
                            Pass::Probe => s
                                .queue
                                .take(&agent)
                                .map_or(Decision::Wait(None), |i| Decision::Run(i, true)),
                            Pass::WaitUntil(until) => Decision::Wait(Some(until)),
                            Pass::Wait => Decision::Wait(None),
                        },
                    }
                }
            };
            let (index, probe) = match decision {
                Decision::Exit => return,
                Decision::Wait(until) => {
                    drop(permit);
                    let wait =
                        until.map(|u| u.duration_since(SystemTime::now()).unwrap_or_default());
                    tokio::select! {
                        _ = changed.changed() => {}
                        () = async {
                            match wait {
                                Some(w) => tokio::time::sleep(w).await,
                                None => std::future::pending().await,
                            }
                        } => {}
                    }
                    continue;
                }
                Decision::Run(index, probe) => (index, probe),
            };
            if probe {
                self.reporter.event(&RunEvent::LoginProbing {
                    login: LOGIN.into(),
                    id: self.tasks[index].id.clone(),
                    container: worker.member.name.clone(),
                });
            }
            let keep_going = self.run_task(&worker, index, probe).await;
            drop(permit);
            if !keep_going {
                self.retire(&worker);
                return;
            }
        }
    }

    /// A worker whose container is gone: its agent's tasks may have nobody left.
    fn retire(&self, worker: &Worker) {
        let agent = &worker.member.agent;
        let mut s = self.lock();
        let left = s.live.get_mut(agent).map_or(0, |n| {
            *n = n.saturating_sub(1);
            *n
        });
        let mut stranded = Vec::new();
        if left == 0 {
            stranded.extend(s.queue.drain_agent(agent));
        }
        if s.live.values().all(|n| *n == 0) {
            stranded.extend(s.queue.drain_all());
        }
        drop(s);
        if !stranded.is_empty() {
            let ids: Vec<&str> = stranded
                .iter()
                .map(|i| self.tasks[*i].id.as_str())
                .collect();
            self.reporter.warn(&format!(
                "{}: no container left to run {} task(s): {}",
                worker.member.name,
                ids.len(),
                ids.join(", ")
            ));
        }
        self.bump();
    }

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
    async fn run_task(self: &Arc<Self>, worker: &Worker, index: usize, probe: bool) -> bool {
        let task = &self.tasks[index];
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
                        match files::collect(&self.engine, &worker.member.id, &task.collect, &dest)
                            .await
                        {
                            Ok(skipped) => {
                                for s in skipped {
                                    self.reporter.warn(&format!("{}: left out {s}", task.id));
                                }
                            }
                            Err(e) => {
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

    fn count_attempt(&self, index: usize) {
        self.lock().attempts[index] += 1;
    }

    fn probe_passed(&self) {
        let resumed = self.lock().gate.probe_passed(SystemTime::now());
        if let Some(paused) = resumed {
            self.reporter.event(&RunEvent::LoginResumed {
                login: LOGIN.into(),
                paused_secs: paused.as_secs(),
            });
            self.bump();
        }
    }

    fn pause(&self, resets_at: Option<i64>, limit: Option<&str>) {
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
    fn put_back(&self, worker: &Worker, index: usize, reason: &str) {
        let task = &self.tasks[index];
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
    fn settle_failure(
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
        let task = &self.tasks[index];
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
    fn write(
        &self,
        worker: &Worker,
        index: usize,
        status: Status,
        exit_code: Option<i64>,
        seen: &Seen,
        error: Option<Failure>,
    ) {
        let task = &self.tasks[index];
        let (attempts, started) = {
            let s = self.lock();
            (s.attempts[index], s.started[index])
        };
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
