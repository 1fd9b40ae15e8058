//! What `up` must do, decided in plain data: from the declared fleet and what the engine
//! reports, which replicas to create, recreate, start, keep or remove. No engine here.

use std::collections::BTreeMap;

/// A container of the project as the engine reports it (from its labels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub id: String,
    pub name: String,
    pub agent: String,
    /// `None` when the replica label is missing or unreadable.
    pub replica: Option<u32>,
    pub config_hash: String,
    pub running: bool,
}

/// What one declared agent should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub agent: String,
    pub replicas: u32,
    pub config_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create {
        agent: String,
        replica: u32,
    },
    /// The config changed (or `--force-recreate`): replace the container.
    Recreate {
        agent: String,
        replica: u32,
        old: Observed,
    },
    /// Up to date but stopped: deliver fresh credentials and start it again.
    Start {
        agent: String,
        replica: u32,
        existing: Observed,
    },
    Keep {
        existing: Observed,
    },
    Remove {
        existing: Observed,
        reason: RemoveReason,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveReason {
    /// A replica number beyond the declared count.
    ScaledDown,
    /// A second container claiming the same replica.
    Duplicate,
    /// Its agent is no longer declared (only with `--remove-orphans`).
    Orphan,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Containers of agents that are not declared and were left alone.
    pub orphans: Vec<Observed>,
}

/// Decides the actions for `desired` agents. Containers of other agents are orphans:
/// listed, or removed when `remove_orphans`; with `only_declared` (agents named on the
/// command line) they are not considered at all.
pub fn plan(
    desired: &[Desired],
    observed: &[Observed],
    force_recreate: bool,
    remove_orphans: bool,
    only_declared: bool,
) -> Plan {
    let mut out = Plan::default();
    let mut by_agent: BTreeMap<&str, Vec<&Observed>> = BTreeMap::new();
    for o in observed {
        by_agent.entry(o.agent.as_str()).or_default().push(o);
    }
    for want in desired {
        let mut have = by_agent.remove(want.agent.as_str()).unwrap_or_default();
        // Prefer the container to keep: matching config, then running, then by name.
        have.sort_by_key(|o| {
            (
                o.config_hash != want.config_hash,
                !o.running,
                o.name.clone(),
            )
        });
        let mut slots: BTreeMap<u32, &Observed> = BTreeMap::new();
        for o in have {
            match o.replica {
                Some(n) if (1..=want.replicas).contains(&n) && !slots.contains_key(&n) => {
                    slots.insert(n, o);
                }
                Some(n) if n > want.replicas => out.actions.push(Action::Remove {
                    existing: o.clone(),
                    reason: RemoveReason::ScaledDown,
                }),
                _ => out.actions.push(Action::Remove {
                    existing: o.clone(),
                    reason: RemoveReason::Duplicate,
                }),
            }
        }
        for replica in 1..=want.replicas {
            let agent = want.agent.clone();
            out.actions.push(match slots.remove(&replica) {
                None => Action::Create { agent, replica },
                Some(o) if force_recreate || o.config_hash != want.config_hash => {
                    Action::Recreate {
                        agent,
                        replica,
                        old: o.clone(),
                    }
                }
                Some(o) if !o.running => Action::Start {
                    agent,
                    replica,
                    existing: o.clone(),
                },
                Some(o) => Action::Keep {
                    existing: o.clone(),
                },
            });
        }
    }
    if !only_declared {
        for o in by_agent.into_values().flatten() {
            if remove_orphans {
                out.actions.push(Action::Remove {
                    existing: o.clone(),
                    reason: RemoveReason::Orphan,
                });
            } else {
                out.orphans.push(o.clone());
            }
        }
    }
    out
}

impl Plan {
    /// True when nothing would change.
    pub fn is_noop(&self) -> bool {
        self.actions
            .iter()
            .all(|a| matches!(a, Action::Keep { .. }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(agent: &str, replica: u32, hash: &str, running: bool) -> Observed {
        Observed {
            id: format!("id-{agent}-{replica}-{hash}"),
            name: format!("p-{agent}-{replica}"),
            agent: agent.into(),
            replica: Some(replica),
            config_hash: hash.into(),
            running,
        }
    }

    fn want(agent: &str, replicas: u32, hash: &str) -> Desired {
        Desired {
            agent: agent.into(),
            replicas,
            config_hash: hash.into(),
        }
    }

    fn kinds(p: &Plan) -> Vec<String> {
        p.actions
            .iter()
            .map(|a| match a {
                Action::Create { agent, replica } => format!("create {agent}-{replica}"),
                Action::Recreate { agent, replica, .. } => format!("recreate {agent}-{replica}"),
                Action::Start { agent, replica, .. } => format!("start {agent}-{replica}"),
                Action::Keep { existing } => format!("keep {}", existing.name),
                Action::Remove { existing, reason } => {
                    format!("remove {} {reason:?}", existing.name)
                }
            })
            .collect()
    }

    #[test]
    fn an_empty_engine_creates_every_replica() {
        let p = plan(
            &[want("a", 2, "h"), want("b", 1, "h")],
            &[],
            false,
            false,
            false,
        );
        assert_eq!(kinds(&p), ["create a-1", "create a-2", "create b-1"]);
    }

    #[test]
    fn a_matching_running_fleet_is_a_noop() {
        let p = plan(
            &[want("a", 2, "h")],
            &[obs("a", 1, "h", true), obs("a", 2, "h", true)],
            false,
            false,
            false,
        );
        assert!(p.is_noop());
        assert_eq!(kinds(&p), ["keep p-a-1", "keep p-a-2"]);
    }

    #[test]
    fn scaling_down_removes_the_highest_replicas_and_up_adds() {
        let have = [
            obs("a", 1, "h", true),
            obs("a", 2, "h", true),
            obs("a", 3, "h", true),
        ];
        let p = plan(&[want("a", 1, "h")], &have, false, false, false);
        assert_eq!(
            kinds(&p),
            [
                "remove p-a-2 ScaledDown",
                "remove p-a-3 ScaledDown",
                "keep p-a-1"
            ]
        );
        let p = plan(&[want("a", 4, "h")], &have, false, false, false);
        assert_eq!(
            kinds(&p),
            ["keep p-a-1", "keep p-a-2", "keep p-a-3", "create a-4"]
        );
    }

    #[test]
    fn a_changed_hash_or_force_recreates_and_a_stopped_one_starts() {
        let p = plan(
            &[want("a", 2, "new")],
            &[obs("a", 1, "old", true), obs("a", 2, "new", false)],
            false,
            false,
            false,
        );
        assert_eq!(kinds(&p), ["recreate a-1", "start a-2"]);
        let p = plan(
            &[want("a", 1, "h")],
            &[obs("a", 1, "h", true)],
            true,
            false,
            false,
        );
        assert_eq!(kinds(&p), ["recreate a-1"]);
    }

    #[test]
    fn duplicates_keep_the_matching_running_one() {
        let mut stale = obs("a", 1, "old", false);
        stale.name = "p-a-1-stale".into();
        let p = plan(
            &[want("a", 1, "h")],
            &[stale, obs("a", 1, "h", true)],
            false,
            false,
            false,
        );
        assert_eq!(kinds(&p), ["remove p-a-1-stale Duplicate", "keep p-a-1"]);
    }

    #[test]
    fn orphans_are_reported_or_removed_and_ignored_for_a_subset() {
        let have = [obs("gone", 1, "h", true)];
        let p = plan(&[want("a", 0, "h")], &have, false, false, false);
        assert_eq!(p.orphans.len(), 1);
        assert!(p.actions.is_empty());
        let p = plan(&[want("a", 0, "h")], &have, false, true, false);
        assert_eq!(kinds(&p), ["remove p-gone-1 Orphan"]);
        let p = plan(&[want("a", 0, "h")], &have, false, true, true);
        assert!(p.actions.is_empty() && p.orphans.is_empty());
    }
}
