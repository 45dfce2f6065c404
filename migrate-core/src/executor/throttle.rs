//! A bandwidth limit shared by all workers: each batch books a slot of `bytes / rate` seconds on
//! one timeline and waits for its slot's start, so the bytes moved over any stretch of the run
//! stay at or under the rate (plus at most one batch).

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Bytes-per-second limiter.
#[derive(Debug)]
pub struct Throttle {
    rate: f64,
    next: Mutex<Option<Instant>>,
}

impl Throttle {
    /// A limiter at `bytes_per_sec`.
    pub fn new(bytes_per_sec: u64) -> Self {
        Throttle {
            rate: bytes_per_sec.max(1) as f64,
            next: Mutex::new(None),
        }
    }

    /// Waits until `bytes` may move.
    pub async fn take(&self, bytes: u64) {
        let start = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let start = next.map_or(now, |n| n.max(now));
            *next = Some(start + Duration::from_secs_f64(bytes as f64 / self.rate));
            start
        };
        tokio::time::sleep_until(start).await;
    }
}
