//! `claunch doctor`: the options; the checks live in [`crate::doctor`].

use super::Global;

#[derive(Debug, Clone, Default)]
pub struct DoctorOptions {
    pub target: Option<String>,
    pub smoke: bool,
    pub json: bool,
}

pub async fn run(global: &Global, options: DoctorOptions) -> anyhow::Result<i32> {
    crate::doctor::run(global, &options).await
}
