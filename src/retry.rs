//! Retrying engine operations that failed for a passing reason (a 5xx, a dropped
//! connection), with exponential backoff, reporting each retry.

use std::time::Duration;

use crate::deliver;
use crate::engine::EngineError;
use crate::report::{Reporter, Step};

pub const RETRIES: u32 = 4;

pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(150 * 2u64.pow(attempt.min(6)))
}

/// Retries an engine operation on transient failures (5xx, dropped connections).
pub async fn retry<T, E, F, Fut>(r: &dyn Reporter, name: &str, mut op: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: Transient,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if e.transient() && attempt < RETRIES => {
                attempt += 1;
                r.step(name, Step::Retry);
                tokio::time::sleep(backoff(attempt)).await;
            }
            other => return other,
        }
    }
}

/// Errors that may clear on a retry.
pub trait Transient {
    fn transient(&self) -> bool;
}

impl Transient for EngineError {
    fn transient(&self) -> bool {
        self.is_transient()
    }
}

impl Transient for deliver::DeliverError {
    fn transient(&self) -> bool {
        use crate::archive::ReadBackError;
        match self {
            Self::Engine(e)
            | Self::ReadBack {
                error: ReadBackError::Engine(e),
                ..
            } => e.is_transient(),
            Self::ReadBack {
                error: ReadBackError::TimedOut(_),
                ..
            } => true,
            _ => false,
        }
    }
}
