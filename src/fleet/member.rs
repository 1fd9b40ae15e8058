//! The project's containers as members of the fleet: what their labels say of them, and
//! which of them a TARGET on the command line names.

use anyhow::bail;

use super::backend::Backend;
use super::label;
use crate::credentials::Role;
use crate::engine::ContainerListing;
use crate::smoke::record::Record;

/// A container of the project, as its labels describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub agent: String,
    pub replica: Option<u32>,
    pub config_hash: String,
    pub role: Role,
    pub state: String,
    pub image: String,
    /// Unix seconds.
    pub created: i64,
    /// Its last smoke verdict, when read ([`crate::smoke::record`]): `None` until then,
    /// or when it has none.
    pub smoke: Option<Record>,
}

impl Member {
    pub fn running(&self) -> bool {
        self.state == "running"
    }
}

impl From<ContainerListing> for Member {
    fn from(c: ContainerListing) -> Self {
        let get = |k: &str| c.labels.get(k).cloned().unwrap_or_default();
        Self {
            agent: get(label::AGENT),
            replica: get(label::REPLICA).parse().ok(),
            config_hash: get(label::CONFIG_HASH),
            role: Role::parse(&get(label::ROLE)),
            id: c.id,
            name: c.name,
            state: c.state,
            image: c.image,
            created: c.created,
            smoke: None,
        }
    }
}

/// Every container labelled as the project's, sorted by agent then replica.
pub async fn members(backend: &impl Backend, project: &str) -> anyhow::Result<Vec<Member>> {
    backend.members(project).await
}

/// The order members are listed in: by agent, then replica, then name.
pub(super) fn by_agent_then_replica(a: &Member, b: &Member) -> std::cmp::Ordering {
    (&a.agent, a.replica, &a.name).cmp(&(&b.agent, b.replica, &b.name))
}

/// The members a TARGET names: a container name, `<agent>-<n>`, or an agent (all its
/// replicas).
pub fn select<'a>(
    project: &str,
    members: &'a [Member],
    target: &str,
) -> anyhow::Result<Vec<&'a Member>> {
    let exact: Vec<&Member> = members
        .iter()
        .filter(|m| m.name == target || m.name == format!("{project}-{target}"))
        .collect();
    if !exact.is_empty() {
        return Ok(exact);
    }
    let by_agent: Vec<&Member> = members.iter().filter(|m| m.agent == target).collect();
    if !by_agent.is_empty() {
        return Ok(by_agent);
    }
    let known: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    if known.is_empty() {
        bail!("no container matches `{target}`: project `{project}` has no containers\n  hint: run `claunch up` first");
    }
    bail!(
        "no container matches `{target}` in project `{project}` (it has {})\n  hint: use a container name, <agent>-<n> or an agent name; `claunch ps` lists them",
        known.join(", ")
    )
}

/// The members any of the TARGETs name (as [`select`] reads each), each once, in the
/// fleet's order; every member when there is no TARGET.
pub fn select_many(
    project: &str,
    members: &[Member],
    targets: &[String],
) -> anyhow::Result<Vec<Member>> {
    if targets.is_empty() {
        return Ok(members.to_vec());
    }
    let mut named = std::collections::HashSet::new();
    for target in targets {
        named.extend(select(project, members, target)?.into_iter().map(|m| &m.id));
    }
    Ok(members
        .iter()
        .filter(|m| named.contains(&m.id))
        .cloned()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(agent: &str, replica: u32) -> Member {
        Member {
            id: format!("id-{agent}-{replica}"),
            name: format!("p-{agent}-{replica}"),
            agent: agent.into(),
            replica: Some(replica),
            config_hash: String::new(),
            role: Role::Shared,
            state: "running".into(),
            image: "img".into(),
            created: 0,
            smoke: None,
        }
    }

    #[test]
    fn many_targets_name_each_member_once_in_fleet_order() {
        let fleet = [
            member("coder", 1),
            member("planner", 1),
            member("planner", 2),
        ];
        let names = |targets: &[&str]| -> Vec<String> {
            let targets: Vec<String> = targets.iter().map(|t| (*t).to_string()).collect();
            select_many("p", &fleet, &targets)
                .unwrap()
                .into_iter()
                .map(|m| m.name)
                .collect()
        };
        assert_eq!(names(&[]), ["p-coder-1", "p-planner-1", "p-planner-2"]);
        assert_eq!(
            names(&["planner-2", "coder", "planner"]),
            ["p-coder-1", "p-planner-1", "p-planner-2"]
        );
        assert_eq!(names(&["p-planner-2"]), ["p-planner-2"]);
        let err = select_many("p", &fleet, &["ghost".to_string()]).unwrap_err();
        assert!(err.to_string().starts_with("no container matches `ghost`"));
    }
}
