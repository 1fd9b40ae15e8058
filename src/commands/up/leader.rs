//! A rotating login close to expiry: the leader goes first, its refresh is written back,
//! and only then are followers given the new access token.

use std::sync::Arc;
use std::time::Duration;

use super::replica::{converge, layout_for};
use super::{Shared, Status};
use crate::credentials;
use crate::credentials::login::Login;
use crate::credentials::sync;
use crate::credentials::Role;
use crate::fleet;
use crate::fleet::Member;
use crate::plan::Work;

/// With a rotating login close to expiry, the leader goes first: its claude refreshes the
/// login, claunch writes the new one back to the source, and only then are followers
/// given the new access token. A leader that already runs is made to refresh.
pub(super) async fn leader_first(
    shared: &Arc<Shared>,
    tasks: &mut Vec<Work>,
    observed: &[Member],
) -> Vec<(String, Status)> {
    let current = {
        let login = shared.login.read().expect("login lock");
        match &*login {
            Login::Rotating(c) => c.clone(),
            _ => return Vec::new(),
        }
    };
    let near = near_expiry(&current);
    if !near {
        return Vec::new();
    }
    let r = shared.reporter.as_ref();
    let is_leader = |w: &Work| w.role() == Role::Leader;
    let mut results = Vec::new();
    let (agent, name, id) = if let Some(i) = tasks.iter().position(is_leader) {
        let action = tasks.remove(i);
        r.info("the login's access token is expired or about to be: starting the leader first so it refreshes");
        let (agent, replica) = (action.agent().to_string(), action.replica());
        let result = converge(shared.clone(), action).await;
        let ok = result.1 == Status::Done;
        results.push(result);
        if !ok {
            return results;
        }
        let name = fleet::container_name(&shared.spec.project, &agent, replica);
        (agent, name.clone(), name)
    } else if let Some(o) = observed
        .iter()
        .find(|o| o.role == Role::Leader && o.running())
    {
        if !shared.agents.contains_key(&o.agent) {
            return results;
        }
        (o.agent.clone(), o.name.clone(), o.id.clone())
    } else {
        return results;
    };
    let prepared = shared.agents[&agent].clone();
    let Ok(layout) = layout_for(shared, &prepared, &id, &name).await else {
        return results;
    };
    let holder = crate::credentials::holder::Holder {
        id,
        name,
        layout: layout.clone(),
    };
    let source = &shared.spec;
    let mut newest = sync::adopt_from_leader(&shared.engine, source, &current, &holder, r).await;
    if let Ok(c) = &newest {
        if near_expiry(c) {
            let timeout = prepared
                .agent
                .smoke
                .as_ref()
                .map_or(Duration::from_secs(120), |s| s.timeout);
            newest = match sync::make_leader_refresh(&shared.engine, c, &holder, timeout, r).await {
                Ok(()) => sync::adopt_from_leader(&shared.engine, source, c, &holder, r).await,
                Err(e) => Err(e),
            };
        }
    }
    match newest {
        Ok(c) => *shared.login.write().expect("login lock") = Login::Rotating(c),
        Err(e) => r.warn(&format!(
            "could not take the refreshed login from the leader: {e:#}"
        )),
    }
    results
}

pub(super) fn near_expiry(c: &credentials::Credentials) -> bool {
    let within = i64::try_from(LEADER_FIRST_WITHIN.as_millis()).unwrap_or(i64::MAX);
    c.summary
        .expires_in_ms(credentials::now_ms())
        .is_none_or(|ms| ms < within)
}

/// How close to expiry a login must be for `up` to start its leader before the others.
const LEADER_FIRST_WITHIN: Duration = Duration::from_secs(30 * 60);
