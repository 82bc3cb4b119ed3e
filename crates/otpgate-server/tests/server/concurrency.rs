//! Race properties over HTTP against the SQLite store.

use crate::common::*;
use tokio::task::JoinSet;

const PHONE: &str = "+14155550123";

/// 50 parallel wrong codes against one verification; answers by error code.
async fn fifty_wrong(app: &TestApp) -> (usize, usize, usize, String) {
    app.send(PHONE).await;
    let code = app.inbox_code(PHONE).await;
    let counts = parallel_wrong_codes(&[app], PHONE, &code, 50).await;
    let count = |error: &str| counts.get(error).copied().unwrap_or(0);
    let (invalid, locked, limited) = (count("invalid_code"), count("too_many_attempts"), count("rate_limited"));
    assert_eq!(invalid + locked + limited, 50, "unexpected answers: {counts:?}");
    (invalid, locked, limited, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_parallel_wrong_codes_evaluate_at_most_five() {
    // The store's own guarantee, with the check limits out of the way.
    let app = spawn_with(
        |c| {
            c.limits.phone_check_failures.count = 0;
            c.limits.ip_check.count = 0;
        },
        Default::default(),
    )
    .await;
    let (invalid, locked, limited, code) = fifty_wrong(&app).await;
    assert_eq!((invalid, locked, limited), (4, 46, 0));
    assert_eq!(app.check(PHONE, &code).await.error_code(), "too_many_attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_brute_force_with_default_limits() {
    let app = spawn_app().await;
    let (invalid, locked, limited, code) = fifty_wrong(&app).await;
    // 30 pass the per-IP check limit (30/min); 5 of those are evaluated (4 wrong, the 5th kills
    // the verification), the other 25 compare nothing. Only the 5 compared count against the
    // phone (20/hour), which therefore never refuses here.
    assert_eq!(invalid, 4);
    assert_eq!((locked, limited), (26, 20));
    let right = app.check(PHONE, &code).await;
    assert!(["too_many_attempts", "rate_limited"].contains(&right.error_code().as_str()), "{}", right.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_parallel_right_codes_approve_exactly_once() {
    let app = spawn_app().await;
    app.send(PHONE).await;
    let code = app.inbox_code(PHONE).await;
    let mut tasks = JoinSet::new();
    for _ in 0..20 {
        let (client, url, code) = (app.client.clone(), app.url("/v1/verifications/check"), code.clone());
        tasks.spawn(async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .body(format!(r#"{{"phone":"{PHONE}","code":"{code}"}}"#))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    let mut statuses = Vec::new();
    while let Some(s) = tasks.join_next().await {
        statuses.push(s.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 404), "{statuses:?}");
}
