//! What `claunch run` decides in plain data: which task a free container takes next (the
//! queue), and whether a login may be sent work now (its gate, closed at a usage limit
//! until the reset, then opened by one task that goes first).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The tasks still to run, in file order; a task put back goes first.
#[derive(Debug, Default)]
pub struct Queue {
    /// Tasks any container may take.
    general: VecDeque<usize>,
    /// Tasks only one agent's containers may take.
    by_agent: HashMap<String, VecDeque<usize>>,
    /// Tasks not finished for good: queued, running, or waiting to be tried again.
    pub outstanding: usize,
}

impl Queue {
    /// A queue of `pending`: task indexes, with the agent each is for.
    pub fn new<'a>(pending: impl IntoIterator<Item = (usize, Option<&'a str>)>) -> Self {
        let mut queue = Self::default();
        for (index, agent) in pending {
            queue.outstanding += 1;
            match agent {
                Some(agent) => queue
                    .by_agent
                    .entry(agent.to_string())
                    .or_default()
                    .push_back(index),
                None => queue.general.push_back(index),
            }
        }
        queue
    }

    /// The next task a container of `agent` may take, without taking it.
    pub fn peek(&self, agent: &str) -> Option<usize> {
        let mine = self.by_agent.get(agent).and_then(|q| q.front().copied());
        match (mine, self.general.front().copied()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes the task [`Queue::peek`] names.
    pub fn take(&mut self, agent: &str) -> Option<usize> {
        let index = self.peek(agent)?;
        if self.general.front() == Some(&index) {
            self.general.pop_front()
        } else {
            self.by_agent.get_mut(agent).and_then(VecDeque::pop_front)
        }
    }

    /// Puts a task taken earlier back at the front.
    pub fn put_back(&mut self, index: usize, agent: Option<&str>) {
        match agent {
            Some(agent) => self
                .by_agent
                .entry(agent.to_string())
                .or_default()
                .push_front(index),
            None => self.general.push_front(index),
        }
    }

    /// A task finished for good (a line was written, or it is given up).
    pub fn finish(&mut self) {
        self.outstanding = self.outstanding.saturating_sub(1);
    }

    /// Removes the queued tasks only `agent` may take (no container of it is left), and
    /// returns them.
    pub fn drain_agent(&mut self, agent: &str) -> Vec<usize> {
        let drained: Vec<usize> = self
            .by_agent
            .remove(agent)
            .map(Vec::from)
            .unwrap_or_default();
        self.outstanding = self.outstanding.saturating_sub(drained.len());
        drained
    }

    /// Removes every queued task (no container is left at all), and returns them.
    pub fn drain_all(&mut self) -> Vec<usize> {
        let mut drained: Vec<usize> = self.general.drain(..).collect();
        for (_, q) in self.by_agent.drain() {
            drained.extend(q);
        }
        self.outstanding = self.outstanding.saturating_sub(drained.len());
        drained
    }
}

/// Whether work may be sent on a login now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateState {
    Open,
    /// At its usage limit until `until`.
    Paused {
        until: SystemTime,
        since: SystemTime,
        limit: Option<String>,
        /// Probes that found the limit still there: each one waits longer.
        rejected_probes: u32,
    },
    /// One task runs to see whether the limit is over; the others wait.
    Probing {
        since: SystemTime,
        rejected_probes: u32,
        limit: Option<String>,
    },
}

/// What a free container may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Open,
    /// Run one task, the first since the pause.
    Probe,
    /// Wait until then (or until something changes).
    WaitUntil(SystemTime),
    /// Wait until something changes (a probe is out).
    Wait,
}

/// One login's gate.
#[derive(Debug)]
pub struct Gate {
    pub login: String,
    pub state: GateState,
    /// Counts pauses: a task started before a pause stops when it changes.
    pub epoch: u64,
}

/// How long to wait after a reset before trying again, so that containers of several
/// logins do not all knock at the same second.
const JITTER_MS: u64 = 2_000;

/// When the reset time is unknown or already past: 30 s, doubling per rejected probe,
/// at most 15 minutes.
fn fallback(rejected_probes: u32) -> Duration {
    Duration::from_secs(30 * 2u64.pow(rejected_probes.min(5))).min(Duration::from_secs(900))
}

/// A few hundred milliseconds to two seconds, different each call.
fn jitter() -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    Duration::from_millis(200 + nanos % (JITTER_MS - 200))
}

impl Gate {
    pub fn new(login: &str) -> Self {
        Self {
            login: login.to_string(),
            state: GateState::Open,
            epoch: 0,
        }
    }

    /// Asked by a container that has a task to take.
    pub fn pass(&mut self, now: SystemTime) -> Pass {
        match &self.state {
            GateState::Open => Pass::Open,
            GateState::Paused {
                until,
                since,
                limit,
                rejected_probes,
            } => {
                if now >= *until {
                    self.state = GateState::Probing {
                        since: *since,
                        rejected_probes: *rejected_probes,
                        limit: limit.clone(),
                    };
                    Pass::Probe
                } else {
                    Pass::WaitUntil(*until)
                }
            }
            GateState::Probing { .. } => Pass::Wait,
        }
    }

    /// The usage limit was hit (`resets_at` in Unix seconds, when claude said). Returns
    /// the time dispatch starts again when this closes the gate or moves its reopening;
    /// `None` when it was already closed until then.
    pub fn pause(
        &mut self,
        resets_at: Option<i64>,
        limit: Option<&str>,
        now: SystemTime,
    ) -> Option<SystemTime> {
        let (since, rejected_probes, was_paused_until) = match &self.state {
            GateState::Open => (now, 0, None),
            GateState::Probing {
                since,
                rejected_probes,
                ..
            } => (*since, rejected_probes + 1, None),
            GateState::Paused {
                since,
                rejected_probes,
                until,
                ..
            } => (*since, *rejected_probes, Some(*until)),
        };
        let reset = resets_at
            .and_then(|s| u64::try_from(s).ok())
            .map(|s| UNIX_EPOCH + Duration::from_secs(s))
            .filter(|t| *t > now);
        let until = reset.unwrap_or_else(|| now + fallback(rejected_probes)) + jitter();
        if let Some(current) = was_paused_until {
            // Already closed: other tasks of this login ran into the same limit.
            if reset.is_none_or(|r| r <= current) {
                return None;
            }
        } else {
            self.epoch += 1;
        }
        self.state = GateState::Paused {
            until,
            since,
            limit: limit
                .map(str::to_string)
                .or_else(|| self.limit().map(str::to_string)),
            rejected_probes,
        };
        Some(until)
    }

    /// The limit's kind, while closed.
    pub fn limit(&self) -> Option<&str> {
        match &self.state {
            GateState::Paused { limit, .. } | GateState::Probing { limit, .. } => limit.as_deref(),
            GateState::Open => None,
        }
    }

    /// The probe ended without meeting the limit: open again. Returns how long the
    /// login was paused, when this opened it.
    pub fn probe_passed(&mut self, now: SystemTime) -> Option<Duration> {
        if let GateState::Probing { since, .. } = self.state {
            self.state = GateState::Open;
            return Some(now.duration_since(since).unwrap_or_default());
        }
        None
    }

    /// The probe ended without telling (interrupted, or its container went away): let
    /// another container try.
    pub fn probe_undecided(&mut self, now: SystemTime) {
        if let GateState::Probing {
            since,
            rejected_probes,
            limit,
        } = &self.state
        {
            self.state = GateState::Paused {
                until: now,
                since: *since,
                limit: limit.clone(),
                rejected_probes: *rejected_probes,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_order_agent_restrictions_and_put_back_first() {
        let mut q = Queue::new([(0, None), (1, Some("a")), (2, None), (3, Some("b"))]);
        assert_eq!(q.outstanding, 4);
        assert_eq!(q.take("a"), Some(0));
        assert_eq!(q.take("b"), Some(2));
        assert_eq!(q.take("a"), Some(1));
        q.put_back(1, Some("a"));
        assert_eq!(q.peek("c"), None, "a task of `a` waits for `a`");
        assert_eq!(q.take("a"), Some(1));
        assert_eq!(q.take("a"), None);
        assert_eq!(q.drain_agent("b"), [3]);
        assert_eq!(q.outstanding, 3);
        q.finish();
        assert_eq!(q.outstanding, 2);
    }

    #[test]
    fn a_pause_lasts_until_the_reset_then_one_task_goes_first() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut gate = Gate::new("default");
        assert_eq!(gate.pass(now), Pass::Open);
        let until = gate.pause(Some(1_000_060), Some("five_hour"), now).unwrap();
        let reset = UNIX_EPOCH + Duration::from_secs(1_000_060);
        assert!(until > reset && until <= reset + Duration::from_secs(2));
        assert_eq!(gate.epoch, 1);
        // Other tasks meeting the same limit change nothing.
        assert_eq!(gate.pause(Some(1_000_060), Some("five_hour"), now), None);
        assert_eq!(gate.epoch, 1);
        assert_eq!(gate.pass(now), Pass::WaitUntil(until));
        let later = until + Duration::from_millis(1);
        assert_eq!(gate.pass(later), Pass::Probe);
        assert_eq!(gate.pass(later), Pass::Wait, "only one probe");
        // The probe meets the limit again: closed again, with no reset known, 60 s.
        let again = gate.pause(None, None, later).unwrap();
        assert!(again >= later + Duration::from_secs(60), "{again:?}");
        assert_eq!(gate.limit(), Some("five_hour"));
        assert_eq!(gate.epoch, 2);
        assert_eq!(gate.pass(again), Pass::Probe);
        let paused = gate.probe_passed(again).unwrap();
        assert!(paused >= Duration::from_secs(120));
        assert_eq!(gate.pass(again), Pass::Open);
    }

    #[test]
    fn an_undecided_probe_lets_another_container_try() {
        let now = UNIX_EPOCH + Duration::from_secs(10);
        let mut gate = Gate::new("default");
        gate.pause(Some(5), None, now);
        let later = now + Duration::from_secs(100);
        assert_eq!(gate.pass(later), Pass::Probe);
        gate.probe_undecided(later);
        assert_eq!(gate.pass(later), Pass::Probe);
    }
}
