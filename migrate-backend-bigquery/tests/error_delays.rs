//! BigQuery's recorded error bodies, classified by `reason`, drive the executor's documented
//! retry behaviour: quota errors wait 30, 60 and 120 s and then give up; rate limits honour
//! `Retry-After` or back off twice as fast as transient errors; backend errors back off from
//! 1 s doubling; a missing permission stops the run at once; an invalid query fails the table.

use std::time::Duration;

use migrate_backend_bigquery::BqError;
use migrate_core::retry::{RetryConfig, RetryDecision, RetryState};

fn body(code: u16, reason: &str, message: &str) -> String {
    format!(
        r#"{{"error":{{"code":{code},"message":"{message}","errors":[{{"message":"{message}","domain":"global","reason":"{reason}"}}],"status":"X"}}}}"#
    )
}

/// The decisions for the same failure repeated until the policy stops retrying.
fn decisions(status: u16, body: &str, retry_after: Option<&str>) -> Vec<RetryDecision> {
    let policy = RetryConfig {
        jitter: false,
        ..Default::default()
    };
    let mut state = RetryState::default();
    let mut out = Vec::new();
    loop {
        let e = BqError::from_response(status, body, retry_after).into_error("writing chunk 0");
        let d = policy.decide(&e, &mut state);
        out.push(d);
        if !matches!(d, RetryDecision::RetryAfter(_)) || out.len() > 10 {
            return out;
        }
    }
}

fn after(secs: u64) -> RetryDecision {
    RetryDecision::RetryAfter(Duration::from_secs(secs))
}

#[test]
fn quota_errors_wait_the_progressive_delays_then_give_up() {
    let b = body(
        403,
        "quotaExceeded",
        "Quota exceeded: too many table update operations",
    );
    assert_eq!(
        decisions(403, &b, None),
        vec![after(30), after(60), after(120), RetryDecision::GiveUp]
    );
}

#[test]
fn rate_limits_honour_retry_after_or_back_off_faster_than_transient_errors() {
    let b = body(403, "rateLimitExceeded", "Exceeded rate limits");
    assert_eq!(
        decisions(403, &b, Some("17")),
        vec![after(17), after(17), RetryDecision::GiveUp]
    );
    // jobRateLimitExceeded arrives as a 400, and is still a rate limit.
    let b = body(400, "jobRateLimitExceeded", "Job exceeded rate limits");
    assert_eq!(
        decisions(400, &b, None),
        vec![after(2), after(8), RetryDecision::GiveUp]
    );
}

#[test]
fn backend_errors_back_off_from_one_second_doubling() {
    let b = body(503, "backendError", "Error encountered during execution");
    assert_eq!(
        decisions(503, &b, None),
        vec![after(1), after(2), RetryDecision::GiveUp]
    );
    // A transaction aborted by a concurrent update is worth another attempt too.
    let b = body(
        400,
        "invalidQuery",
        "Transaction is aborted due to concurrent update against table t",
    );
    assert_eq!(decisions(400, &b, None)[0], after(1));
}

#[test]
fn a_missing_permission_stops_the_run_and_a_bad_statement_fails_the_table() {
    let b = body(403, "accessDenied", "Access Denied: Table p:d.t");
    assert_eq!(decisions(403, &b, None), vec![RetryDecision::StopRun]);
    assert_eq!(decisions(401, "", None), vec![RetryDecision::StopRun]);
    let b = body(400, "invalidQuery", "Unrecognized name: x");
    assert_eq!(decisions(400, &b, None), vec![RetryDecision::GiveUp]);
}
