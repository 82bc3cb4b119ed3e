//! `GET /openapi.json` against the copy committed beside this file (`openapi.json`, pretty-printed),
//! so any change to the HTTP contract shows in review as a diff of that file. After an intended
//! change (adding only: the contract never renames), rewrite it and commit it:
//! `OTPGATE_UPDATE_SNAPSHOTS=1 cargo test -p otpgate-server --test server openapi_snapshot`.

use crate::common::*;

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/server/openapi.json");
const UPDATE: &str = "OTPGATE_UPDATE_SNAPSHOTS";

#[tokio::test]
async fn the_openapi_document_is_the_committed_one() {
    let app = spawn_app().await;
    let served = app.get("/openapi.json").await;
    assert_eq!(served.status, 200);
    let served = serde_json::to_string_pretty(&served.json()).unwrap() + "\n";
    if std::env::var(UPDATE).is_ok_and(|v| v == "1") {
        std::fs::write(SNAPSHOT, &served).unwrap();
        eprintln!("{UPDATE}=1: wrote {SNAPSHOT}");
        return;
    }
    let committed = std::fs::read_to_string(SNAPSHOT)
        .unwrap_or_else(|e| panic!("{SNAPSHOT}: {e}; write it with {UPDATE}=1 and commit it"));
    if let Some(diff) = first_difference(&committed, &served) {
        panic!(
            "/openapi.json differs from the committed {SNAPSHOT}:\n{diff}\n\
             If the contract change is intended, rewrite the file with {UPDATE}=1 and commit it."
        );
    }
}

/// The first line where `committed` and `served` differ, with a little context; `None` if equal.
fn first_difference(committed: &str, served: &str) -> Option<String> {
    if committed == served {
        return None;
    }
    let (old, new): (Vec<&str>, Vec<&str>) = (committed.lines().collect(), served.lines().collect());
    let at = old.iter().zip(&new).position(|(a, b)| a != b).unwrap_or(old.len().min(new.len()));
    let window = |lines: &[&str]| {
        let from = at.saturating_sub(3);
        lines[from.min(lines.len())..(at + 4).min(lines.len())].join("\n")
    };
    Some(format!(
        "at line {} of {} (committed) / {} (served)\n--- committed\n{}\n+++ served\n{}",
        at + 1,
        old.len(),
        new.len(),
        window(&old),
        window(&new)
    ))
}
