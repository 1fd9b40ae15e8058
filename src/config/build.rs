//! From the parsed file to a [`Spec`]: the project, the login and the agents.

use super::agent;
use super::ctx::{key, Ctx};
use super::error::ConfigError;
use super::project::{self, Origin};
use super::raw::RawConfig;
use super::{credentials, AgentSpec, Spec};

pub(crate) fn build(raw: RawConfig, ctx: &Ctx, flag: Option<&str>) -> Result<Spec, ConfigError> {
    let env_project = (ctx.lookup)("CLAUNCH_PROJECT");
    let (project, _) = project::resolve(
        flag,
        env_project.as_deref(),
        raw.project.as_deref(),
        ctx.dir,
    )
    .map_err(|empty| {
        let segs = [key("project")];
        let nth = usize::from(empty.origin == Origin::File);
        ctx.invalid(&segs, nth, empty.message(), Some(&empty.hint()))
    })?;
    let (credentials, credentials_timeout) = credentials::credentials(raw.credentials, ctx)?;
    if raw.agents.0.is_empty() {
        return Err(ctx.invalid(
            &[key("agents")],
            1,
            "at least one agent is required".to_owned(),
            Some("add one, e.g. `agents: {worker: {image: my-agent:latest}}`"),
        ));
    }
    let onboarding = raw.onboarding.unwrap_or(false);
    let mut agents: Vec<AgentSpec> = Vec::with_capacity(raw.agents.0.len());
    for (name, agent) in raw.agents.0 {
        let segs = [key("agents"), key(&name)];
        let earlier = agents.iter().filter(|a| a.name == name).count();
        if earlier > 0 {
            let message = format!("agent `{name}` is defined more than once");
            return Err(ctx.invalid(&segs, earlier + 1, message, None));
        }
        agents.push(agent::agent_spec(name, agent, onboarding, &segs, ctx)?);
    }
    Ok(Spec {
        file: ctx.absolute.to_owned(),
        project,
        credentials,
        credentials_timeout,
        agents,
    })
}
