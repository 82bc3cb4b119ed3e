//! Race properties over HTTP against the SQLite store.

mod common;

use common::*;
use tokio::task::JoinSet;

const PHONE: &str = "+14155550123";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_parallel_wrong_codes_evaluate_at_most_five() {
    let app = spawn_app().await;
    app.send(PHONE).await;
    let code = app.inbox_code(PHONE).await;
    let mut tasks = JoinSet::new();
    for i in 0..50 {
        let (client, url) = (app.client.clone(), app.url("/v1/verifications/check"));
        let mut guess = format!("{:06}", 100_000 + i);
        if guess == code {
            guess = format!("{:06}", 999_999 - i);
        }
        tasks.spawn(async move {
            let r = client
                .post(url)
                .header("content-type", "application/json")
                .body(format!(r#"{{"phone":"{PHONE}","code":"{guess}"}}"#))
                .send()
                .await
                .unwrap();
            let body: serde_json::Value = r.json().await.unwrap();
            body["error"]["code"].as_str().unwrap().to_owned()
        });
    }
    let mut invalid = 0;
    let mut locked = 0;
    while let Some(code) = tasks.join_next().await {
        match code.unwrap().as_str() {
            "invalid_code" => invalid += 1,
            "too_many_attempts" => locked += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((invalid, locked), (4, 46));
    assert_eq!(app.check(PHONE, &code).await.error_code(), "too_many_attempts");
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
