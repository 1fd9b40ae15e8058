//! What `up` must do, decided in plain data: from the declared fleet and what the engine
//! reports, which replicas to create, recreate, start, keep or remove. No engine here.

use std::collections::BTreeMap;

use crate::credentials::Role;
use crate::fleet::Member;

/// What one declared agent should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub agent: String,
    pub replicas: u32,
    pub config_hash: String,
    /// The smoke setting's hash when `up` smoke-tests: a running container that has not
    /// passed this one is tested again. `None` with `--no-smoke` or no smoke test.
    pub smoke: Option<String>,
}

/// One decision about one container or replica, in the order they were made.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Remove(Removal),
    Keep(Member),
    Do(Work),
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

/// What `up` will do: remove some containers, keep some as they are, and work on replicas.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub removals: Vec<Removal>,
    /// Up to date and running: left alone.
    pub keeps: Vec<Member>,
    pub work: Vec<Work>,
    /// Containers of agents that are not declared and were left alone.
    pub orphans: Vec<Member>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub existing: Member,
    pub reason: RemoveReason,
}

/// A replica to bring up: made anew, made again, or started again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    Create {
        agent: String,
        replica: u32,
        role: Role,
    },
    /// The config changed (or `--force-recreate`, or the leader must move here): replace it.
    Recreate {
        agent: String,
        replica: u32,
        old: Member,
        role: Role,
    },
    /// Up to date but stopped: deliver fresh credentials and start it again.
    Start {
        agent: String,
        replica: u32,
        existing: Member,
    },
    /// Up to date and running, but its last smoke test did not pass (or was of another
    /// `smoke:` setting): test it again, and only that.
    Retest {
        agent: String,
        replica: u32,
        existing: Member,
    },
}

impl Work {
    pub fn agent(&self) -> &str {
        match self {
            Self::Create { agent, .. }
            | Self::Recreate { agent, .. }
            | Self::Start { agent, .. }
            | Self::Retest { agent, .. } => agent,
        }
    }

    pub fn replica(&self) -> u32 {
        match self {
            Self::Create { replica, .. }
            | Self::Recreate { replica, .. }
            | Self::Start { replica, .. }
            | Self::Retest { replica, .. } => *replica,
        }
    }

    /// The role the replica will have once the work is done.
    pub fn role(&self) -> Role {
        match self {
            Self::Create { role, .. } | Self::Recreate { role, .. } => *role,
            Self::Start { existing, .. } | Self::Retest { existing, .. } => existing.role,
        }
    }
}

/// How `up` was asked to converge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    pub force_recreate: bool,
    pub remove_orphans: bool,
    /// Agents were named on the command line: leave the others (and orphans) alone.
    pub only_declared: bool,
    /// The login rotates its refresh token: one leader, the rest followers.
    pub rotating: bool,
}

/// Decides the actions for `desired` agents. Containers of other agents are orphans:
/// listed, or removed when `remove_orphans`; with `only_declared` (agents named on the
/// command line) they are not considered at all. With a rotating login, see
/// [`assign_roles`].
pub fn plan(desired: &[Desired], observed: &[Member], options: Options) -> Plan {
    let Decisions { actions, orphans } = decide(desired, observed, options);
    let mut out = Plan {
        orphans,
        ..Plan::default()
    };
    for action in actions {
        match action {
            Action::Remove(removal) => out.removals.push(removal),
            Action::Keep(existing) => out.keeps.push(existing),
            Action::Do(work) => out.work.push(work),
        }
    }
    out
}

/// The decisions, one per container or replica, in order, and the orphans left alone.
fn decide(desired: &[Desired], observed: &[Member], options: Options) -> Decisions {
    let Options {
        force_recreate,
        remove_orphans,
        only_declared,
        rotating,
    } = options;
    let mut out = Decisions::default();
    let mut by_agent: BTreeMap<&str, Vec<&Member>> = BTreeMap::new();
    for o in observed {
        by_agent.entry(o.agent.as_str()).or_default().push(o);
    }
    for want in desired {
        let mut have = by_agent.remove(want.agent.as_str()).unwrap_or_default();
        // Prefer the container to keep: matching config, then running, then by name.
        have.sort_by_key(|o| {
            (
                o.config_hash != want.config_hash,
                !o.running(),
                o.name.clone(),
            )
        });
        let mut slots: BTreeMap<u32, &Member> = BTreeMap::new();
        for o in have {
            match o.replica {
                Some(n) if (1..=want.replicas).contains(&n) && !slots.contains_key(&n) => {
                    slots.insert(n, o);
                }
                Some(n) if n > want.replicas => out.actions.push(Action::Remove(Removal {
                    existing: o.clone(),
                    reason: RemoveReason::ScaledDown,
                })),
                _ => out.actions.push(Action::Remove(Removal {
                    existing: o.clone(),
                    reason: RemoveReason::Duplicate,
                })),
            }
        }
        for replica in 1..=want.replicas {
            let agent = want.agent.clone();
            let role = if rotating {
                Role::Follower
            } else {
                Role::Shared
            };
            out.actions.push(match slots.remove(&replica) {
                None => Action::Do(Work::Create {
                    agent,
                    replica,
                    role,
                }),
                Some(o) if force_recreate || o.config_hash != want.config_hash => {
                    Action::Do(Work::Recreate {
                        agent,
                        replica,
                        old: o.clone(),
                        role,
                    })
                }
                Some(o) if !o.running() => Action::Do(Work::Start {
                    agent,
                    replica,
                    existing: o.clone(),
                }),
                Some(o)
                    if want
                        .smoke
                        .as_ref()
                        .is_some_and(|h| !o.smoke.as_ref().is_some_and(|r| r.passed(h))) =>
                {
                    Action::Do(Work::Retest {
                        agent,
                        replica,
                        existing: o.clone(),
                    })
                }
                Some(o) => Action::Keep(o.clone()),
            });
        }
    }
    let leaders_elsewhere = by_agent
        .values()
        .flatten()
        .any(|o| o.role == Role::Leader && o.running());
    if !only_declared {
        for o in by_agent.into_values().flatten() {
            if remove_orphans {
                out.actions.push(Action::Remove(Removal {
                    existing: o.clone(),
                    reason: RemoveReason::Orphan,
                }));
            } else {
                out.orphans.push(o.clone());
            }
        }
    }
    if rotating {
        // Containers of agents not being converged keep their roles; a leader among them
        // still counts when only some agents were named.
        assign_roles(&mut out.actions, only_declared && leaders_elsewhere);
    }
    out
}

#[derive(Default)]
struct Decisions {
    actions: Vec<Action>,
    orphans: Vec<Member>,
}

/// Makes exactly one container the leader of a rotating login: an existing running
/// leader that stays, else the first container to be made, else the first kept one is
/// recreated as leader (its label cannot change in place). Extra leaders are recreated as
/// followers, since two holders of one refresh token break each other.
fn assign_roles(actions: &mut [Action], leader_elsewhere: bool) {
    let mut have_leader = leader_elsewhere;
    for a in actions.iter_mut() {
        let (Action::Keep(existing)
        | Action::Do(Work::Start { existing, .. } | Work::Retest { existing, .. })) = a
        else {
            continue;
        };
        if existing.role == Role::Leader && !have_leader {
            have_leader = true;
        } else if existing.role == Role::Leader || existing.role == Role::Shared {
            *a = recreate_as(a, Role::Follower);
        }
    }
    if have_leader {
        return;
    }
    let first_new = actions
        .iter()
        .position(|a| matches!(a, Action::Do(Work::Create { .. } | Work::Recreate { .. })));
    let first_kept = actions.iter().position(|a| {
        matches!(
            a,
            Action::Keep(_) | Action::Do(Work::Start { .. } | Work::Retest { .. })
        )
    });
    if let Some(Action::Do(Work::Create { role, .. } | Work::Recreate { role, .. })) =
        first_new.map(|i| &mut actions[i])
    {
        *role = Role::Leader;
    } else if let Some(i) = first_kept {
        actions[i] = recreate_as(&actions[i], Role::Leader);
    }
}

fn recreate_as(action: &Action, role: Role) -> Action {
    match action {
        Action::Keep(existing)
        | Action::Do(Work::Start { existing, .. } | Work::Retest { existing, .. }) => {
            Action::Do(Work::Recreate {
                agent: existing.agent.clone(),
                replica: existing.replica.unwrap_or(1),
                old: existing.clone(),
                role,
            })
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // The decisions in order, as `plan` makes them before sorting them by kind.
    use super::decide as plan;

    impl Decisions {
        fn is_noop(&self) -> bool {
            self.actions.iter().all(|a| matches!(a, Action::Keep(_)))
        }
    }

    fn obs(agent: &str, replica: u32, hash: &str, running: bool) -> Member {
        Member {
            id: format!("id-{agent}-{replica}-{hash}"),
            name: format!("p-{agent}-{replica}"),
            agent: agent.into(),
            replica: Some(replica),
            config_hash: hash.into(),
            role: Role::Shared,
            state: if running { "running" } else { "exited" }.into(),
            image: "img".into(),
            created: 0,
            smoke: None,
        }
    }

    #[test]
    fn the_plan_sorts_the_decisions_by_kind() {
        let have = [
            obs("a", 1, "h", true),
            obs("a", 2, "old", true),
            obs("a", 3, "h", false),
            obs("a", 4, "h", true),
        ];
        let p = super::plan(&[want("a", 3, "h")], &have, opts(false, false, false));
        assert_eq!(p.removals.len(), 1);
        assert_eq!(p.removals[0].existing.name, "p-a-4");
        assert_eq!(p.removals[0].reason, RemoveReason::ScaledDown);
        assert_eq!(p.keeps, [have[0].clone()]);
        let work: Vec<String> = p
            .work
            .iter()
            .map(|w| format!("{}-{} {}", w.agent(), w.replica(), w.role().as_str()))
            .collect();
        assert_eq!(work, ["a-2 shared", "a-3 shared"]);
        assert!(matches!(p.work[0], Work::Recreate { .. }));
        assert!(matches!(p.work[1], Work::Start { .. }));
    }

    fn opts(force_recreate: bool, remove_orphans: bool, only_declared: bool) -> Options {
        Options {
            force_recreate,
            remove_orphans,
            only_declared,
            rotating: false,
        }
    }

    fn rotating() -> Options {
        Options {
            rotating: true,
            ..Options::default()
        }
    }

    fn with_role(mut o: Member, role: Role) -> Member {
        o.role = role;
        o
    }

    fn roles(p: &Decisions) -> Vec<String> {
        p.actions
            .iter()
            .map(|a| match a {
                Action::Do(Work::Create {
                    agent,
                    replica,
                    role,
                }) => format!("create {agent}-{replica} {}", role.as_str()),
                Action::Do(Work::Recreate {
                    agent,
                    replica,
                    role,
                    ..
                }) => format!("recreate {agent}-{replica} {}", role.as_str()),
                Action::Do(Work::Start { existing, .. } | Work::Retest { existing, .. })
                | Action::Keep(existing) => {
                    format!("keep {} {}", existing.name, existing.role.as_str())
                }
                Action::Remove(r) => format!("remove {}", r.existing.name),
            })
            .collect()
    }

    fn want(agent: &str, replicas: u32, hash: &str) -> Desired {
        Desired {
            agent: agent.into(),
            replicas,
            config_hash: hash.into(),
            smoke: None,
        }
    }

    fn smoked(mut o: Member, class: &str, spec: &str) -> Member {
        o.smoke = Some(crate::smoke::record::Record {
            class: class.into(),
            spec: spec.into(),
            at: 0,
        });
        o
    }

    #[test]
    fn a_container_that_has_not_passed_this_smoke_test_is_tested_again_and_only_it() {
        let mut desired = want("a", 4, "h");
        desired.smoke = Some("s1".into());
        let have = [
            smoked(obs("a", 1, "h", true), "passed", "s1"),
            smoked(obs("a", 2, "h", true), "timed_out", "s1"),
            smoked(obs("a", 3, "h", true), "passed", "s0"),
            obs("a", 4, "h", true),
        ];
        let p = plan(&[desired.clone()], &have, opts(false, false, false));
        assert_eq!(
            kinds(&p),
            ["keep p-a-1", "retest a-2", "retest a-3", "retest a-4"]
        );
        // With --no-smoke, nothing is tested.
        desired.smoke = None;
        let p = plan(&[desired], &have, opts(false, false, false));
        assert!(p.is_noop());
    }

    fn kinds(p: &Decisions) -> Vec<String> {
        p.actions
            .iter()
            .map(|a| match a {
                Action::Do(w @ Work::Create { .. }) => {
                    format!("create {}-{}", w.agent(), w.replica())
                }
                Action::Do(w @ Work::Recreate { .. }) => {
                    format!("recreate {}-{}", w.agent(), w.replica())
                }
                Action::Do(w @ Work::Start { .. }) => {
                    format!("start {}-{}", w.agent(), w.replica())
                }
                Action::Do(w @ Work::Retest { .. }) => {
                    format!("retest {}-{}", w.agent(), w.replica())
                }
                Action::Keep(existing) => format!("keep {}", existing.name),
                Action::Remove(r) => format!("remove {} {:?}", r.existing.name, r.reason),
            })
            .collect()
    }

    #[test]
    fn an_empty_engine_creates_every_replica() {
        let p = plan(
            &[want("a", 2, "h"), want("b", 1, "h")],
            &[],
            opts(false, false, false),
        );
        assert_eq!(kinds(&p), ["create a-1", "create a-2", "create b-1"]);
    }

    #[test]
    fn a_matching_running_fleet_is_a_noop() {
        let p = plan(
            &[want("a", 2, "h")],
            &[obs("a", 1, "h", true), obs("a", 2, "h", true)],
            opts(false, false, false),
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
        let p = plan(&[want("a", 1, "h")], &have, opts(false, false, false));
        assert_eq!(
            kinds(&p),
            [
                "remove p-a-2 ScaledDown",
                "remove p-a-3 ScaledDown",
                "keep p-a-1"
            ]
        );
        let p = plan(&[want("a", 4, "h")], &have, opts(false, false, false));
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
            opts(false, false, false),
        );
        assert_eq!(kinds(&p), ["recreate a-1", "start a-2"]);
        let p = plan(
            &[want("a", 1, "h")],
            &[obs("a", 1, "h", true)],
            opts(true, false, false),
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
            opts(false, false, false),
        );
        assert_eq!(kinds(&p), ["remove p-a-1-stale Duplicate", "keep p-a-1"]);
    }

    #[test]
    fn orphans_are_reported_or_removed_and_ignored_for_a_subset() {
        let have = [obs("gone", 1, "h", true)];
        let p = plan(&[want("a", 0, "h")], &have, opts(false, false, false));
        assert_eq!(p.orphans.len(), 1);
        assert!(p.actions.is_empty());
        let p = plan(&[want("a", 0, "h")], &have, opts(false, true, false));
        assert_eq!(kinds(&p), ["remove p-gone-1 Orphan"]);
        let p = plan(&[want("a", 0, "h")], &have, opts(false, true, true));
        assert!(p.actions.is_empty() && p.orphans.is_empty());
    }

    #[test]
    fn a_rotating_login_gets_exactly_one_leader() {
        let p = plan(&[want("a", 2, "h"), want("b", 1, "h")], &[], rotating());
        assert_eq!(
            roles(&p),
            [
                "create a-1 leader",
                "create a-2 follower",
                "create b-1 follower"
            ]
        );
        // A running leader stays leader; new containers follow.
        let have = [with_role(obs("a", 1, "h", true), Role::Leader)];
        let p = plan(&[want("a", 2, "h")], &have, rotating());
        assert_eq!(roles(&p), ["keep p-a-1 leader", "create a-2 follower"]);
    }

    #[test]
    fn a_lost_leader_is_replaced_and_extra_leaders_demoted() {
        // The leader was scaled away: the first kept follower is recreated as leader.
        let have = [
            with_role(obs("a", 1, "h", true), Role::Follower),
            with_role(obs("a", 2, "h", true), Role::Leader),
        ];
        let p = plan(&[want("a", 1, "h")], &have, rotating());
        assert_eq!(roles(&p), ["remove p-a-2", "recreate a-1 leader"]);
        // Two leaders (e.g. a crash mid-up): one stays, the other becomes a follower.
        let have = [
            with_role(obs("a", 1, "h", true), Role::Leader),
            with_role(obs("a", 2, "h", true), Role::Leader),
        ];
        let p = plan(&[want("a", 2, "h")], &have, rotating());
        assert_eq!(roles(&p), ["keep p-a-1 leader", "recreate a-2 follower"]);
        // A stopped leader is started again and stays leader: it still holds the token.
        let have = [with_role(obs("a", 1, "h", false), Role::Leader)];
        let p = plan(&[want("a", 2, "h")], &have, rotating());
        assert_eq!(roles(&p), ["keep p-a-1 leader", "create a-2 follower"]);
    }

    #[test]
    fn a_leader_of_an_agent_not_named_still_counts() {
        let have = [with_role(obs("a", 1, "h", true), Role::Leader)];
        let options = Options {
            only_declared: true,
            ..rotating()
        };
        let p = plan(&[want("b", 1, "h")], &have, options);
        assert_eq!(roles(&p), ["create b-1 follower"]);
    }
}
