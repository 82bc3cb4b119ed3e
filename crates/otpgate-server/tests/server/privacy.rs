//! Data minimisation, retention and erasure, checked on the bytes: after a sign-in and the
//! retention window (a moved clock), the number is left only in `users`; after `DELETE /v1/me`
//! or `otpgate users delete`, no file of the database holds its digits at all.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{TestApp, spawn_app};
use otpgate_core::Clock;
use otpgate_server::retention::Sweeper;
use serde_json::{Value, json};
use sqlx::{Column, Row, SqlitePool, TypeInfo, ValueRef};

const PHONE: &str = "+14155550123";
const DIGITS: &str = "4155550123";

async fn sign_in(app: &TestApp, phone: &str) -> Value {
    assert_eq!(app.send(phone).await.status, 201);
    let code = app.inbox_code(phone).await;
    // One wrong code first, so an attempt is recorded too.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(app.check(phone, wrong).await.status, 422);
    let r = app.check(phone, &code).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

/// Every database file (main, -wal, -shm) as raw bytes, with how often `needle` occurs in each.
fn raw_occurrences(app: &TestApp, needle: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(app.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("otpgate.db") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let n = bytes.windows(needle.len()).filter(|w| *w == needle.as_bytes()).count();
        out.push((name, n));
    }
    out
}

/// Tables whose rows mention `needle` (every column, text and blobs alike).
async fn tables_mentioning(app: &TestApp, needle: &str) -> Vec<String> {
    let pool = SqlitePool::connect(&format!("sqlite://{}", app.db_path().display())).await.unwrap();
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut hits = Vec::new();
    for table in tables {
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM \"{table}\""))).fetch_all(&pool).await.unwrap();
        let found = rows.iter().any(|row| {
            row.columns().iter().any(|col| {
                let raw = row.try_get_raw(col.ordinal()).unwrap();
                if raw.is_null() {
                    return false;
                }
                let bytes: Vec<u8> = match raw.type_info().name() {
                    "INTEGER" => row.get::<i64, _>(col.ordinal()).to_string().into_bytes(),
                    "REAL" => row.get::<f64, _>(col.ordinal()).to_string().into_bytes(),
                    "TEXT" => row.get::<String, _>(col.ordinal()).into_bytes(),
                    _ => row.get::<Vec<u8>, _>(col.ordinal()),
                };
                bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            })
        });
        if found {
            hits.push(table);
        }
    }
    pool.close().await;
    hits
}

async fn sweeper(app: &TestApp) -> Sweeper {
    // A second instance's sweeper on the same database: sweeping is safe from anywhere.
    let stores = otpgate_server::stores::open(&app.config).await.unwrap();
    Sweeper::new(&stores, Arc::new(app.clock.clone()) as Arc<dyn Clock>, app.config.retention.window())
}

#[tokio::test]
async fn after_the_retention_window_only_the_user_holds_the_number() {
    let app = spawn_app().await;
    sign_in(&app, PHONE).await;
    // A second number whose verification is abandoned (never checked).
    assert_eq!(app.send("+14155550124").await.status, 201);
    let sweeper = sweeper(&app).await;

    let early = sweeper.sweep().await.unwrap();
    assert_eq!(early.verifications, 0, "nothing is due yet: {early:?}");
    assert!(counter_rows(&app).await > 0, "the sends and the approval were counted for the tripwire");
    let mut before = tables_mentioning(&app, DIGITS).await;
    before.sort();
    assert_eq!(before, ["users", "verifications"]);

    // Past the window for both: 24 h after the approval, and 24 h after the abandoned code expired.
    app.advance(Duration::from_secs(24 * 3600 + 600));
    let counts = sweeper.sweep().await.unwrap();
    assert_eq!(counts.verifications, 2, "{counts:?}");
    assert!(counts.limits >= 2, "spent limit rows go too: {counts:?}");

    assert_eq!(tables_mentioning(&app, DIGITS).await, ["users"]);
    assert!(tables_mentioning(&app, "4155550124").await.is_empty(), "the abandoned number is gone entirely");
    for (file, n) in raw_occurrences(&app, "4155550124") {
        assert_eq!(n, 0, "{file} still holds the abandoned number");
    }
    for (file, n) in raw_occurrences(&app, DIGITS) {
        if file.ends_with("-wal") {
            assert_eq!(n, 0, "the WAL is scrubbed");
        }
    }
    assert_eq!(counter_rows(&app).await, 0, "tripwire counters past their window are swept too");
    // The account itself still works.
    let me = app.send(PHONE).await;
    assert_eq!(me.status, 201, "{}", me.text);
}

/// Rows of the tripwire's windowed counters.
async fn counter_rows(app: &TestApp) -> i64 {
    let pool = SqlitePool::connect(&format!("sqlite://{}", app.db_path().display())).await.unwrap();
    let n = sqlx::query_scalar("SELECT COUNT(*) FROM counters").fetch_one(&pool).await.unwrap();
    pool.close().await;
    n
}

#[tokio::test]
async fn limit_keys_never_hold_the_number() {
    let app = spawn_app().await;
    assert_eq!(app.send(PHONE).await.status, 201);
    let pool = SqlitePool::connect(&format!("sqlite://{}", app.db_path().display())).await.unwrap();
    let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM rate_limits").fetch_all(&pool).await.unwrap();
    assert!(!keys.is_empty());
    assert!(keys.iter().all(|k| !k.contains(DIGITS)), "{keys:?}");
    pool.close().await;
}

#[tokio::test]
async fn delete_me_leaves_no_trace_of_the_digits() {
    let app = spawn_app().await;
    let signed = sign_in(&app, PHONE).await;
    let access = signed["session"]["access_token"].as_str().unwrap();
    assert!(raw_occurrences(&app, DIGITS).iter().any(|(_, n)| *n > 0), "the number is stored before");

    let r = app.request(app.client.delete(app.url("/v1/me")).bearer_auth(access)).await;
    assert_eq!(r.status, 204, "{}", r.text);

    for (file, n) in raw_occurrences(&app, DIGITS) {
        assert_eq!(n, 0, "{file} still holds the digits after erasure");
    }
    assert!(tables_mentioning(&app, DIGITS).await.is_empty());
}

#[tokio::test]
async fn operator_export_names_everything_and_delete_erases_it() {
    let app = spawn_app().await;
    let signed = sign_in(&app, PHONE).await;
    let refresh = signed["session"]["refresh_token"].as_str().unwrap();
    app.advance(Duration::from_secs(1));
    let r = app.post_json("/v1/sessions/refresh", &json!({ "refresh_token": refresh })).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let export = otpgate_server::privacy::export(&app.config, PHONE).await.unwrap();
    assert_eq!(export["phone"], PHONE);
    assert_eq!(export["user"]["phone"], PHONE);
    assert_eq!(export["user"]["id"], signed["user"]["id"]);
    let tokens = export["user"]["refresh_tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2, "the spent token and its successor");
    assert!(tokens[0]["used_at"].is_string() && tokens[1]["used_at"].is_null());
    let verifications = export["verifications"].as_array().unwrap();
    assert_eq!(verifications.len(), 1);
    assert_eq!(verifications[0]["status"], "approved");
    assert_eq!(verifications[0]["attempts"], 1);
    let limits = export["rate_limits"].as_array().unwrap().len();
    assert!(limits >= 1, "the send limit at least");
    let text = export.to_string();
    assert!(!text.contains("digest") && !text.contains(refresh), "{text}");

    let erased = otpgate_server::privacy::erase(&app.config, "+1 (415) 555-0123").await.unwrap();
    assert_eq!(erased["user_deleted"], signed["user"]["id"]);
    assert_eq!(erased["verifications_deleted"], 1);
    assert_eq!(erased["limits_deleted"], limits);
    assert!(!erased.to_string().contains(DIGITS), "the answer itself is masked");

    let after = otpgate_server::privacy::export(&app.config, PHONE).await.unwrap();
    assert!(after["user"].is_null());
    assert!(after["verifications"].as_array().unwrap().is_empty());
    assert!(after["rate_limits"].as_array().unwrap().is_empty());
    for (file, n) in raw_occurrences(&app, DIGITS) {
        assert_eq!(n, 0, "{file} still holds the digits after erasure");
    }
    // The refresh token is dead with the user.
    let r = app.post_json("/v1/sessions/refresh", &json!({ "refresh_token": tokens_refresh(&r) })).await;
    assert_eq!(r.status, 401);
}

fn tokens_refresh(r: &crate::common::Reply) -> String {
    r.json()["session"]["refresh_token"].as_str().unwrap().to_owned()
}

/// Rows of `refresh_tokens` still holding a sealed successor (the reuse grace's only state).
async fn sealed_successors(app: &TestApp) -> i64 {
    let pool = SqlitePool::connect(&format!("sqlite://{}", app.db_path().display())).await.unwrap();
    let n = sqlx::query_scalar("SELECT COUNT(*) FROM refresh_tokens WHERE sealed_successor IS NOT NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

/// Outside the reuse grace, refresh tokens are stored only as keyed digests: a rotation's sealed
/// successor goes when the family rotates again, or at the first sweep after the grace.
#[tokio::test]
async fn sealed_successors_do_not_outlive_the_reuse_grace() {
    let app = spawn_app().await;
    let refresh = |token: String| {
        let app = &app;
        async move {
            let r = app.post_json("/v1/sessions/refresh", &json!({ "refresh_token": token })).await;
            assert_eq!(r.status, 200, "{}", r.text);
            tokens_refresh(&r)
        }
    };
    let first = sign_in(&app, PHONE).await["session"]["refresh_token"].as_str().unwrap().to_owned();
    let second = refresh(first).await;
    assert_eq!(sealed_successors(&app).await, 1, "kept for the grace");
    app.advance(Duration::from_secs(1));
    refresh(second).await;
    assert_eq!(sealed_successors(&app).await, 1, "the family's older one went with the new rotation");
    let sweeper = sweeper(&app).await;
    sweeper.sweep().await.unwrap();
    assert_eq!(sealed_successors(&app).await, 1, "still within the grace");
    app.advance(Duration::from_secs(10));
    sweeper.sweep().await.unwrap();
    assert_eq!(sealed_successors(&app).await, 0, "swept after the grace");
}
