//! The fleet's health as Prometheus metrics: one registry for the process, fed by small
//! hook calls where the facts are known (the sync loop, `claunch run`'s dispatch), served
//! at `GET /metrics` by [`server`]. Labels carry names (login, agent, status, reason),
//! never a token.

use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub mod server;

pub use server::{parse_address, Server};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    login: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    login: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ContainerLabels {
    agent: String,
    login: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    status: String,
    login: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    login: String,
    kind: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;
type FloatCounter = Counter<f64, AtomicU64>;

/// Why a refresh did not happen, as a fixed word (never an error's text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshFailure {
    /// The login was about to expire and no leader ran to refresh it.
    NoLeader,
    /// The leader's refresh run failed or timed out.
    RefreshRun,
    /// A whole sync pass failed (the source or the leader could not be read or written).
    Sync,
}

impl RefreshFailure {
    fn as_str(self) -> &'static str {
        match self {
            Self::NoLeader => "no_leader",
            Self::RefreshRun => "refresh_run",
            Self::Sync => "sync",
        }
    }
}

/// The metrics of one process.
pub struct Fleet {
    registry: Registry,
    expiry: Family<LoginLabels, FloatGauge>,
    refreshes: Family<LoginLabels, Counter>,
    refresh_failures: Family<FailureLabels, Counter>,
    paused_until: Family<LoginLabels, FloatGauge>,
    sync_success: FloatGauge,
    containers: Family<ContainerLabels, Gauge>,
    /// Serializes replacing the container counts, so a scrape never sees half of them.
    containers_lock: Mutex<()>,
    tasks: Family<TaskLabels, Counter>,
    cost: Family<LoginLabels, FloatCounter>,
    tokens: Family<TokenLabels, Counter>,
}

/// The process's metrics, made on first use.
pub fn fleet() -> &'static Fleet {
    static FLEET: OnceLock<Fleet> = OnceLock::new();
    FLEET.get_or_init(Fleet::new)
}

fn unix_secs(ms: i64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let secs = ms as f64 / 1000.0;
    secs
}

impl Fleet {
    fn new() -> Self {
        let mut registry = Registry::default();
        let f = Self {
            registry: Registry::default(),
            expiry: Family::default(),
            refreshes: Family::default(),
            refresh_failures: Family::default(),
            paused_until: Family::default(),
            sync_success: FloatGauge::default(),
            containers: Family::default(),
            containers_lock: Mutex::new(()),
            tasks: Family::default(),
            cost: Family::default(),
            tokens: Family::default(),
        };
        registry.register(
            "claunch_login_expiry_timestamp_seconds",
            "When the login's access token in force expires, Unix seconds",
            f.expiry.clone(),
        );
        registry.register(
            "claunch_login_refreshes",
            "Refreshes of the login adopted from its leader and written back to its source",
            f.refreshes.clone(),
        );
        registry.register(
            "claunch_login_refresh_failures",
            "Times the login could not be kept fresh, by reason (no_leader, refresh_run, sync)",
            f.refresh_failures.clone(),
        );
        registry.register(
            "claunch_login_paused_until_timestamp_seconds",
            "Until when claunch run holds the login's tasks back at a usage limit, Unix seconds (0: not paused)",
            f.paused_until.clone(),
        );
        registry.register(
            "claunch_sync_last_success_timestamp_seconds",
            "When a sync pass of the fleet's login last succeeded, Unix seconds",
            f.sync_success.clone(),
        );
        registry.register(
            "claunch_containers",
            "The project's containers by agent, login and engine state",
            f.containers.clone(),
        );
        registry.register(
            "claunch_tasks",
            "Tasks claunch run finished, by status (ok, failed, timeout) and login",
            f.tasks.clone(),
        );
        registry.register(
            "claunch_task_cost_usd",
            "What the finished tasks cost as claude reported it, US dollars",
            f.cost.clone(),
        );
        registry.register(
            "claunch_task_tokens",
            "Tokens the finished tasks used, by kind (input, output, cache_read, cache_creation)",
            f.tokens.clone(),
        );
        Self { registry, ..f }
    }

    fn login(login: &str) -> LoginLabels {
        LoginLabels {
            login: login.to_string(),
        }
    }

    /// The login's access token expires at `at_ms` (epoch milliseconds).
    pub fn login_expires(&self, login: &str, at_ms: i64) {
        self.expiry
            .get_or_create(&Self::login(login))
            .set(unix_secs(at_ms));
    }

    /// The login is in force: its refresh count starts at 0 rather than missing.
    pub fn login_seen(&self, login: &str) {
        let _ = self.refreshes.get_or_create(&Self::login(login));
    }

    /// The login was refreshed (a newer member of its family adopted).
    pub fn login_refreshed(&self, login: &str) {
        self.refreshes.get_or_create(&Self::login(login)).inc();
    }

    /// The login could not be kept fresh.
    pub fn login_refresh_failed(&self, login: &str, reason: RefreshFailure) {
        self.refresh_failures
            .get_or_create(&FailureLabels {
                login: login.to_string(),
                reason: reason.as_str().to_string(),
            })
            .inc();
        self.login_seen(login);
    }

    /// The login's tasks are held back until `until_secs`; 0 when they no longer are.
    pub fn login_paused_until(&self, login: &str, until_secs: i64) {
        #[allow(clippy::cast_precision_loss)]
        let until = until_secs as f64;
        self.paused_until
            .get_or_create(&Self::login(login))
            .set(until);
    }

    /// A sync pass succeeded at `at_ms`.
    pub fn sync_succeeded(&self, at_ms: i64) {
        self.sync_success.set(unix_secs(at_ms));
    }

    /// The project's containers now, as (agent, login, state): replaces the last counts.
    pub fn set_containers<'a>(&self, list: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>) {
        let _held = self
            .containers_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.containers.clear();
        for (agent, login, state) in list {
            self.containers
                .get_or_create(&ContainerLabels {
                    agent: agent.to_string(),
                    login: login.to_string(),
                    state: state.to_string(),
                })
                .inc();
        }
    }

    /// A task of `login` finished for good with `status`, costing `cost_usd`, using the
    /// tokens of each kind in `tokens`.
    pub fn task_finished(
        &self,
        login: &str,
        status: &str,
        cost_usd: Option<f64>,
        tokens: &[(&str, u64)],
    ) {
        self.tasks
            .get_or_create(&TaskLabels {
                status: status.to_string(),
                login: login.to_string(),
            })
            .inc();
        self.cost
            .get_or_create(&Self::login(login))
            .inc_by(cost_usd.unwrap_or(0.0));
        for (kind, n) in tokens {
            self.tokens
                .get_or_create(&TokenLabels {
                    login: login.to_string(),
                    kind: (*kind).to_string(),
                })
                .inc_by(*n);
        }
    }

    /// Everything in the text exposition format.
    pub fn render(&self) -> String {
        let _held = self
            .containers_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_metric_renders_with_its_help_and_labels() {
        let f = Fleet::new();
        f.login_expires("alice", 1_800_000_000_500);
        f.login_refreshed("alice");
        f.login_refresh_failed("alice", RefreshFailure::NoLeader);
        f.login_paused_until("alice", 1_800_000_100);
        f.sync_succeeded(1_700_000_000_000);
        f.set_containers([
            ("worker", "alice", "running"),
            ("worker", "alice", "running"),
        ]);
        f.task_finished("alice", "ok", Some(0.25), &[("input", 10), ("output", 3)]);
        let text = f.render();
        for line in [
            "claunch_login_expiry_timestamp_seconds{login=\"alice\"} 1800000000.5",
            "claunch_login_refreshes_total{login=\"alice\"} 1",
            "claunch_login_refresh_failures_total{login=\"alice\",reason=\"no_leader\"} 1",
            "claunch_login_paused_until_timestamp_seconds{login=\"alice\"} 1800000100.0",
            "claunch_sync_last_success_timestamp_seconds 1700000000.0",
            "claunch_containers{agent=\"worker\",login=\"alice\",state=\"running\"} 2",
            "claunch_tasks_total{status=\"ok\",login=\"alice\"} 1",
            "claunch_task_cost_usd_total{login=\"alice\"} 0.25",
            "claunch_task_tokens_total{login=\"alice\",kind=\"output\"} 3",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert_eq!(text.matches("# HELP").count(), 9, "{text}");
        f.set_containers([("worker", "alice", "exited")]);
        let text = f.render();
        assert!(!text.contains("state=\"running\""), "{text}");
    }
}
