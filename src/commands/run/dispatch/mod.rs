//! The fleet at work: one worker per container takes the next task it may run from the
//! queue when its container is free and its login's gate is open, runs it, and writes
//! its line; passing failures go back to the queue after a backoff, a usage limit closes
//! the gate until the reset, a lost login or an interrupt stops everything.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::{watch, OnceCell, Semaphore};

use crate::credentials::holder::Probes;
use crate::credentials::identity::Identity;
use crate::engine::archive::Bounds;
use crate::engine::Engine;
use crate::fleet::Member;
use crate::report::{RunEvent, RunReporter};

mod settle;
mod task;

use super::attempt::Defaults;
use super::files;
use super::queue::{Gate, Pass, Queue};
use super::results::ResultsFile;
use super::taskfile::TaskFile;
use super::tasks::Task;

/// The login every container uses today; pauses are kept by login so that a fleet of
/// several logins pauses only the one that met its limit.
pub use crate::credentials::DEFAULT_LOGIN as LOGIN;

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
    /// What a task's `collect` brought out, until its line is written.
    collected: HashMap<usize, (files::Collected, Vec<files::RefusedEntry>)>,
}

/// Everything the workers share.
pub struct Run {
    pub engine: Engine,
    pub tasks: TaskFile,
    /// The tasks taken from the queue and not finished yet, read again from their lines.
    live_tasks: Mutex<HashMap<usize, Arc<Task>>>,
    pub defaults: Defaults,
    pub retries: u32,
    pub collect_dir: PathBuf,
    /// What one task's `collect` may bring out.
    pub collect_bounds: Bounds,
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
        tasks: TaskFile,
        pending: Vec<usize>,
        defaults: Defaults,
        retries: u32,
        results: ResultsFile,
        collect_dir: PathBuf,
        collect_bounds: Bounds,
        parallel: usize,
        reporter: Arc<dyn RunReporter>,
    ) -> Self {
        let queue = Queue::new(pending.into_iter().map(|i| (i, tasks.agent(i))));
        let n = tasks.slots.len();
        Self {
            engine,
            defaults,
            retries,
            collect_dir,
            collect_bounds,
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
                collected: HashMap::new(),
            }),
            tasks,
            live_tasks: Mutex::new(HashMap::new()),
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

    /// Task `index`, read again from its line the first time it is taken.
    pub(super) fn task(&self, index: usize) -> Result<Arc<Task>, String> {
        if let Some(t) = self.live_tasks.lock().expect("tasks lock").get(&index) {
            return Ok(Arc::clone(t));
        }
        let task = Arc::new(tokio::task::block_in_place(|| self.tasks.load(index))?);
        self.live_tasks
            .lock()
            .expect("tasks lock")
            .insert(index, Arc::clone(&task));
        Ok(task)
    }

    /// A task in flight (taken, so already read).
    pub(super) fn taken(&self, index: usize) -> Arc<Task> {
        self.task(index).unwrap_or_else(|message| {
            // Read when it was taken, so only a file changed since gets here: the run halts.
            self.halt(Halt::Fatal(message));
            Arc::new(Task {
                line: self.tasks.slots[index].line as usize,
                id: format!("(line {})", self.tasks.slots[index].line),
                prompt: String::new(),
                agent: self.tasks.agent(index).map(|a| (a.to_string(), 0)),
                max_turns: None,
                timeout: None,
                args: Vec::new(),
                workdir: None,
                files: Vec::new(),
                collect: Vec::new(),
            })
        })
    }

    /// Task `index` is finished for good: its copy goes.
    pub(super) fn forget(&self, index: usize) {
        self.live_tasks.lock().expect("tasks lock").remove(&index);
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
            let task = match self.task(index) {
                Ok(task) => task,
                Err(message) => {
                    self.halt(Halt::Fatal(message));
                    return;
                }
            };
            if probe {
                self.reporter.event(&RunEvent::LoginProbing {
                    login: LOGIN.into(),
                    id: task.id.clone(),
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
            let mut ids: Vec<String> = stranded
                .iter()
                .take(10)
                .map(|i| {
                    self.tasks
                        .load(*i)
                        .map_or_else(|_| format!("line {}", self.tasks.slots[*i].line), |t| t.id)
                })
                .collect();
            if stranded.len() > ids.len() {
                ids.push(format!("and {} more", stranded.len() - ids.len()));
            }
            self.reporter.warn(&format!(
                "{}: no container left to run {} task(s): {}",
                worker.member.name,
                stranded.len(),
                ids.join(", ")
            ));
        }
        self.bump();
    }
}
