//! What to do after a failed attempt, decided by the error's kind:
//!
//! | kind | decision |
//! | --- | --- |
//! | transient, timeout | exponential backoff with jitter: `initial_delay × multiplier^(n-1)`, capped at `max_delay` |
//! | rate-limited | the service's retry-after when it gave one; else the backoff doubled (adaptive) |
//! | quota | progressive delays `quota_delays` (30 s, 60 s, 120 s), one retry per entry |
//! | permission, auth, config, unsupported, system, fatal | stop the whole run at once |
//! | schema, validation, constraint, not-found, cancelled | give up on this chunk (its table fails), continue with others |
//!
//! The delays are computed here and slept by the executor, so tests with tokio's paused clock
//! see them exactly. A chunk that gives up on a retriable kind is reported as no longer
//! retriable, with its attempts and elapsed time ([`Error::exhausted`]). (Retry crates such as
//! `backon` model one backoff curve; this policy picks a different schedule per error kind and
//! honours Retry-After, which is simpler to state directly than to bend a generic builder into.)

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};

/// Retry settings. Defaults: 3 attempts, backoff from 1 s doubling up to 30 s, with jitter, and
/// quota waits of 30, 60 and 120 s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryConfig {
    /// Attempts per chunk for transient, timeout and rate-limit errors, the first included.
    pub max_attempts: u32,
    /// Delay before the first retry.
    #[serde(with = "crate::config_serde::duration")]
    pub initial_delay: Duration,
    /// Cap on the exponential delay.
    #[serde(with = "crate::config_serde::duration")]
    pub max_delay: Duration,
    /// Growth factor between retries.
    pub multiplier: f64,
    /// Randomise each backoff delay within [delay / 2, delay] so workers do not retry in step.
    pub jitter: bool,
    /// Delays before successive retries after quota errors; their number is the quota retry
    /// budget.
    #[serde(with = "crate::config_serde::durations")]
    pub quota_delays: Vec<Duration>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 3,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: true,
            quota_delays: vec![
                Duration::from_secs(30),
                Duration::from_secs(60),
                Duration::from_secs(120),
            ],
        }
    }
}

/// The verdict on one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Sleep this long, then try the chunk again.
    RetryAfter(Duration),
    /// Mark the chunk (and its table) failed; other tables go on.
    GiveUp,
    /// Stop the whole run now.
    StopRun,
}

/// Per-chunk retry bookkeeping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryState {
    /// Failed attempts so far that counted against `max_attempts`.
    pub failures: u32,
    /// Quota retries taken so far.
    pub quota_retries: u32,
    /// Rate-limit retries without a Retry-After, for the adaptive delay.
    pub rate_limited: u32,
}

impl RetryConfig {
    /// Decides what follows `error`, updating `state`.
    pub fn decide(&self, error: &Error, state: &mut RetryState) -> RetryDecision {
        let kind = error.kind();
        if kind.stops_run() {
            return RetryDecision::StopRun;
        }
        match kind {
            ErrorKind::Quota => {
                let i = state.quota_retries as usize;
                state.quota_retries += 1;
                match self.quota_delays.get(i) {
                    Some(d) => RetryDecision::RetryAfter(*d),
                    None => RetryDecision::GiveUp,
                }
            }
            ErrorKind::Transient | ErrorKind::Timeout | ErrorKind::RateLimited { .. } => {
                state.failures += 1;
                if state.failures >= self.max_attempts.max(1) {
                    return RetryDecision::GiveUp;
                }
                if let Some(after) = error.retry_after() {
                    return RetryDecision::RetryAfter(after);
                }
                let mut delay = self.backoff(state.failures);
                if matches!(kind, ErrorKind::RateLimited { .. }) {
                    state.rate_limited += 1;
                    delay = delay.saturating_mul(2u32.saturating_pow(state.rate_limited));
                    delay = delay.min(self.max_delay.saturating_mul(2));
                }
                RetryDecision::RetryAfter(self.jittered(delay))
            }
            _ => RetryDecision::GiveUp,
        }
    }

    /// The un-jittered backoff before retry number `n` (1-based).
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = self.multiplier.max(1.0).powi(n.saturating_sub(1) as i32);
        let secs = (self.initial_delay.as_secs_f64() * factor).min(self.max_delay.as_secs_f64());
        Duration::from_secs_f64(secs.max(0.0))
    }

    fn jittered(&self, d: Duration) -> Duration {
        if !self.jitter || d.is_zero() {
            return d;
        }
        d.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

/// An HTTP `Retry-After` value — seconds, or an HTTP date (then: the time left until it,
/// zero once past) — as the delay a service asked for; `None` when it is neither.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let left = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(left.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_jitter() -> RetryConfig {
        RetryConfig {
            jitter: false,
            ..RetryConfig::default()
        }
    }

    fn run(cfg: &RetryConfig, e: &Error) -> Vec<RetryDecision> {
        let mut st = RetryState::default();
        let mut out = Vec::new();
        loop {
            let d = cfg.decide(e, &mut st);
            out.push(d);
            if !matches!(d, RetryDecision::RetryAfter(_)) || out.len() > 10 {
                return out;
            }
        }
    }

    const fn s(n: u64) -> RetryDecision {
        RetryDecision::RetryAfter(Duration::from_secs(n))
    }

    #[test]
    fn transient_backs_off_exponentially_within_max_attempts() {
        let e = Error::transient("reset");
        assert_eq!(run(&no_jitter(), &e), [s(1), s(2), RetryDecision::GiveUp]);
        let long = RetryConfig {
            max_attempts: 8,
            ..no_jitter()
        };
        assert_eq!(
            run(&long, &e),
            [
                s(1),
                s(2),
                s(4),
                s(8),
                s(16),
                s(30),
                s(30),
                RetryDecision::GiveUp
            ]
        );
    }

    #[test]
    fn jitter_stays_within_half_to_full_delay() {
        let cfg = RetryConfig {
            max_attempts: 100,
            ..RetryConfig::default()
        };
        let mut st = RetryState::default();
        for n in 1..50 {
            let RetryDecision::RetryAfter(d) = cfg.decide(&Error::transient("x"), &mut st) else {
                panic!()
            };
            let full = cfg.backoff(n);
            assert!(d >= full / 2 && d <= full, "{d:?} vs {full:?}");
        }
    }

    #[test]
    fn quota_uses_progressive_delays() {
        let e = Error::new(ErrorKind::Quota, "quota exceeded");
        assert_eq!(
            run(&no_jitter(), &e),
            [s(30), s(60), s(120), RetryDecision::GiveUp]
        );
    }

    #[test]
    fn rate_limit_honours_retry_after_else_adapts() {
        let e = Error::new(
            ErrorKind::RateLimited {
                retry_after: Some(Duration::from_secs(7)),
            },
            "429",
        );
        assert_eq!(run(&no_jitter(), &e), [s(7), s(7), RetryDecision::GiveUp]);
        let e = Error::new(ErrorKind::RateLimited { retry_after: None }, "429");
        assert_eq!(run(&no_jitter(), &e), [s(2), s(8), RetryDecision::GiveUp]);
    }

    #[test]
    fn permission_auth_fatal_stop_the_run_and_schema_gives_up() {
        for k in [
            ErrorKind::Permission,
            ErrorKind::Auth,
            ErrorKind::Fatal,
            ErrorKind::Config,
            ErrorKind::System,
        ] {
            assert_eq!(
                run(&no_jitter(), &Error::new(k, "x")),
                [RetryDecision::StopRun],
                "{k}"
            );
        }
        for k in [
            ErrorKind::Schema,
            ErrorKind::Validation,
            ErrorKind::Constraint,
            ErrorKind::NotFound,
        ] {
            assert_eq!(
                run(&no_jitter(), &Error::new(k, "x")),
                [RetryDecision::GiveUp],
                "{k}"
            );
        }
    }
}
