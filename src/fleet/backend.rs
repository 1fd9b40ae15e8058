//! The seam between a fleet and what runs it. A standalone engine runs every replica
//! itself. A Swarm backend (the cluster work) will implement the same trait: its members
//! are the tasks of the project's services, and a member on another node is reached
//! through that node's own engine, since a manager cannot exec into, or copy files in and
//! out of, a container on another node.

use std::future::Future;

use super::label;
use super::member::{by_agent_then_replica, Member};
use crate::engine::Engine;

/// Where a fleet's replicas run and how each one is reached.
pub trait Backend: Send + Sync {
    /// The engine that answers for the project as a whole (networks, volumes, images).
    fn engine(&self) -> &Engine;

    /// The project's members, sorted by agent then replica.
    fn members(&self, project: &str) -> impl Future<Output = anyhow::Result<Vec<Member>>> + Send;

    /// The engine that can exec in `member`'s container and copy files in and out of it.
    fn engine_for(&self, member: &Member) -> anyhow::Result<&Engine>;
}

/// One engine running every replica: today's only backend.
impl Backend for Engine {
    fn engine(&self) -> &Engine {
        self
    }

    async fn members(&self, project: &str) -> anyhow::Result<Vec<Member>> {
        let list = self.list_containers(&[(label::PROJECT, project)]).await?;
        let mut out: Vec<Member> = list.into_iter().map(Member::from).collect();
        out.sort_by(by_agent_then_replica);
        Ok(out)
    }

    fn engine_for(&self, _member: &Member) -> anyhow::Result<&Engine> {
        Ok(self)
    }
}
