//! `claunch image build`: an agent image with the real `claude` in it (being written).

use std::path::PathBuf;
use std::sync::Arc;

use super::Global;
use crate::report::Reporter;

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// `--claude PATH`; default: `claude` on the host's PATH.
    pub claude: Option<PathBuf>,
    /// `--base IMAGE`: add claude on top of an image already on the engine.
    pub base: Option<String>,
    /// `--tag TAG`; default: `claunch/claude:<claude version>` (or with the base's name).
    pub tag: Option<String>,
}

#[allow(clippy::unused_async)] // replaced by the real build in the next commit
pub async fn build(
    _global: &Global,
    _o: BuildOptions,
    _r: Arc<dyn Reporter>,
) -> anyhow::Result<i32> {
    anyhow::bail!("claunch image build is not available yet")
}
