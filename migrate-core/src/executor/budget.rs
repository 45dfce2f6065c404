//! The byte budget shared by all workers: a batch holds a reservation for its size until the
//! sink asks for the next batch, so data in flight never exceeds the budget (backpressure:
//! a worker whose batch does not fit waits).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

const UNIT: u64 = 1024; // permits are KiB so that budgets up to 4 TiB fit a u32

/// A byte budget across workers.
#[derive(Debug)]
pub struct MemoryBudget {
    sem: Arc<Semaphore>,
    total_units: u32,
    in_flight: AtomicU64,
    peak: AtomicU64,
}

/// Bytes reserved for one batch; released on drop.
#[derive(Debug)]
pub struct Reservation {
    _permit: Option<OwnedSemaphorePermit>,
    bytes: u64,
    budget: Arc<MemoryBudget>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget
            .in_flight
            .fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

impl MemoryBudget {
    /// A budget of `bytes` (at least 1 KiB).
    pub fn new(bytes: u64) -> Arc<Self> {
        let units = (bytes / UNIT).clamp(1, u64::from(u32::MAX >> 3)) as u32;
        Arc::new(MemoryBudget {
            sem: Arc::new(Semaphore::new(units as usize)),
            total_units: units,
            in_flight: AtomicU64::new(0),
            peak: AtomicU64::new(0),
        })
    }

    /// The budget in bytes.
    pub fn total(&self) -> u64 {
        u64::from(self.total_units) * UNIT
    }

    /// Waits until `bytes` fit, then reserves them. A batch larger than the whole budget
    /// reserves the whole budget (it runs alone) rather than waiting forever.
    pub async fn reserve(self: &Arc<Self>, bytes: u64) -> Reservation {
        let units = bytes.div_ceil(UNIT).clamp(1, u64::from(self.total_units)) as u32;
        // The semaphore is never closed, so acquiring only fails in theory; then we proceed
        // unthrottled rather than deadlock, and still account the bytes.
        let permit = self.sem.clone().acquire_many_owned(units).await.ok();
        let accounted = u64::from(units) * UNIT;
        let now = self.in_flight.fetch_add(accounted, Ordering::SeqCst) + accounted;
        self.peak.fetch_max(now, Ordering::SeqCst);
        Reservation {
            _permit: permit,
            bytes: accounted,
            budget: self.clone(),
        }
    }

    /// Bytes reserved right now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The most bytes ever reserved at once.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_reservation_that_does_not_fit_waits_for_a_release() {
        let b = MemoryBudget::new(10 * 1024);
        let first = b.reserve(6 * 1024).await;
        assert_eq!(b.in_flight(), 6 * 1024);
        let b2 = b.clone();
        let waiter = tokio::spawn(async move { b2.reserve(6 * 1024).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            !waiter.is_finished(),
            "6 KiB + 6 KiB does not fit 10 KiB: backpressure"
        );
        drop(first);
        let second = waiter.await.unwrap();
        assert_eq!(b.in_flight(), 6 * 1024);
        assert_eq!(b.peak(), 6 * 1024);
        drop(second);
        assert_eq!(b.in_flight(), 0);
        // Larger than the whole budget: takes all of it instead of waiting forever.
        let huge = b.reserve(1 << 30).await;
        assert_eq!(b.in_flight(), b.total());
        drop(huge);
    }
}
