//! The one retry mechanism: an operation that failed for a passing reason (a 5xx, a dropped
//! connection, a read that timed out) is tried again with exponential backoff.

use std::future::Future;
use std::time::Duration;

use super::EngineError;

/// How many times an operation is tried again after its first failure.
pub const RETRIES: u32 = 4;

/// The pause before retry number `attempt` (1-based): 300 ms, doubling, at most ~10 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(150 * 2u64.pow(attempt.min(6)))
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

/// Runs `op`, trying again on transient failures up to [`RETRIES`] times; `on_retry` hears
/// of each retry (its attempt number) before the pause.
pub async fn retry<T, E, F, Fut>(mut on_retry: impl FnMut(u32), mut op: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Transient,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if e.transient() && attempt < RETRIES => {
                attempt += 1;
                on_retry(attempt);
                tokio::time::sleep(backoff(attempt)).await;
            }
            other => return other,
        }
    }
}
