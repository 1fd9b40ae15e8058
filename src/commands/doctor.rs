//! `claunch doctor`: checks the login, the engine and each container (being written).

use super::Global;

#[derive(Debug, Clone, Default)]
pub struct DoctorOptions {
    pub target: Option<String>,
    pub smoke: bool,
    pub json: bool,
}

pub async fn run(global: &Global, options: DoctorOptions) -> anyhow::Result<i32> {
    let _ = (global, options);
    anyhow::bail!("claunch doctor is not available yet")
}
