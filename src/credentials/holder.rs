//! A container as a holder of credentials: inspected, probed for where claude looks (its
//! user, HOME and config dir), and its credentials file read back, bounded. The one way
//! `ps`, `creds` and `doctor` look inside a running container.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::deliver::{self, DeliverError, Layout, Needs};
use super::{Credentials, ShapeError};
use crate::engine::{ContainerInfo, Engine};
use crate::secret::Secret;

/// The most claunch reads back of a container's credentials file.
pub const MAX_READ: usize = 64 * 1024;

/// Where a container keeps its credentials.
#[derive(Debug, Clone)]
pub struct Holder {
    pub id: String,
    pub name: String,
    pub layout: Layout,
}

/// What a container's credentials file turned out to be.
#[derive(Debug)]
pub enum Held {
    Valid(Credentials),
    Missing,
    Invalid(ShapeError),
    Unreadable(DeliverError),
}

/// Probes shared between containers: replicas of one agent share image, user and env, so
/// one probe (an archive read of /etc/passwd, then a few stats) serves them all.
#[derive(Default)]
pub struct Probes {
    cells: Mutex<HashMap<ProbeKey, Arc<OnceCell<Layout>>>>,
}

type ProbeKey = (String, Option<String>, Vec<String>);

impl Probes {
    /// The layout of container `info`, probed once per image, user and env.
    pub async fn layout(
        &self,
        engine: &Engine,
        info: &ContainerInfo,
    ) -> Result<Layout, DeliverError> {
        let key = (info.image_id.clone(), info.user.clone(), info.env.clone());
        let cell = self
            .cells
            .lock()
            .expect("probe cache")
            .entry(key)
            .or_default()
            .clone();
        cell.get_or_try_init(|| {
            deliver::probe(
                engine,
                &info.id,
                info.user.as_deref(),
                &info.env,
                &[],
                Needs::default(),
            )
        })
        .await
        .cloned()
    }
}

impl Holder {
    /// Inspects container `id` and probes where its credentials live.
    pub async fn look(
        engine: &Engine,
        id: &str,
        name: &str,
        probes: &Probes,
    ) -> Result<(Self, ContainerInfo), DeliverError> {
        let info = engine.inspect_container(id).await?;
        let layout = probes.layout(engine, &info).await?;
        let holder = Self {
            id: id.to_string(),
            name: name.to_string(),
            layout,
        };
        Ok((holder, info))
    }

    pub fn credentials_path(&self) -> String {
        self.layout.identity.credentials_path()
    }

    /// The container's credentials file, bounded; `None` when it has none.
    pub async fn read(&self, engine: &Engine) -> Result<Option<Secret>, DeliverError> {
        deliver::read_back(engine, &self.id, &self.credentials_path(), MAX_READ).await
    }

    /// The container's credentials file, parsed.
    pub async fn read_credentials(&self, engine: &Engine) -> Held {
        match self.read(engine).await {
            Ok(Some(raw)) => match Credentials::parse(raw) {
                Ok(c) => Held::Valid(c),
                Err(e) => Held::Invalid(e),
            },
            Ok(None) => Held::Missing,
            Err(e) => Held::Unreadable(e),
        }
    }

    /// Replaces the container's credentials file (its directories exist by now).
    pub async fn write(&self, engine: &Engine, file: &Secret) -> Result<(), DeliverError> {
        let mut layout = self.layout.clone();
        layout.missing_dirs.clear();
        deliver::deliver(engine, &self.id, &layout, Some(file), &[]).await
    }
}
