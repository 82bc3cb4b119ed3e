//! Property tests for code checking and the GCRA limiter: `Code::parse` accepts exactly
//! `^[0-9]{N}$`, digests match only the same code for the same phone, and a limit of `count`
//! per `period` never lets more than `count` through at once, with an exact `retry_after`.

use std::time::Duration;

use otpgate_core::limits::{Rate, gcra};
use otpgate_core::{Code, CodeHasher, LimitDecision, PhoneNumber, Timestamp};
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Candidates near the accepted shape: digits of about the right length, with noise.
fn code_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{0,12}",
        "[0-9]{3,11}[^0-9]?[0-9]{0,3}",
        "[ +\\-]?[0-9]{4,10}[ \\n]?",
        "[0-9\u{ff10}-\u{ff19}\u{0660}-\u{0669}]{4,10}",
        any::<String>(),
    ]
}

/// Rates as configured: count 1..=500 per 1 s .. 1 day.
fn rate() -> impl Strategy<Value = Rate> {
    // Short periods too: there the period does not divide evenly into `count` intervals.
    let secs = prop_oneof![1u64..=10, 1u64..=86_400];
    (1u32..=500, secs).prop_map(|(count, secs)| Rate::new(count, Duration::from_secs(secs)))
}

/// Runs one GCRA step and keeps the stored value as a backend would.
fn take(tat: &mut Option<Timestamp>, now: i64, rate: Rate) -> LimitDecision {
    let d = gcra(*tat, Timestamp(now), rate);
    if let LimitDecision::Allow { new_tat } = d {
        *tat = Some(new_tat);
    }
    d
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn code_parse_accepts_exactly_n_ascii_digits(input in code_like(), len in 4usize..=10) {
        let expected = input.len() == len && input.bytes().all(|b| b.is_ascii_digit());
        let parsed = Code::parse(&input, len);
        prop_assert_eq!(parsed.is_some(), expected, "{:?} len {}", input, len);
        if let Some(code) = parsed {
            prop_assert_eq!(code.expose(), input.as_str());
            prop_assert!(!format!("{code:?}").contains(&input), "Debug is redacted");
        }
    }

    #[test]
    fn generated_codes_parse(len in 4usize..=10) {
        let code = Code::generate(len);
        prop_assert!(Code::parse(code.expose(), len).is_some());
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn digests_match_only_the_same_code_and_phone(
        a in "[0-9]{6}",
        b in "[0-9]{6}",
        last in 100u32..200,
        key in proptest::collection::vec(any::<u8>(), 32..64),
    ) {
        let hasher = CodeHasher::new(&key).unwrap();
        let phone = PhoneNumber::parse(&format!("+1415555{last:04}"), None).unwrap();
        let other = PhoneNumber::parse(&format!("+1415555{:04}", last + 100), None).unwrap();
        let (ca, cb) = (Code::parse(&a, 6).unwrap(), Code::parse(&b, 6).unwrap());
        let da = hasher.digest(&phone, &ca);
        prop_assert!(da.ct_eq(&hasher.digest(&phone, &ca)));
        prop_assert_eq!(da.ct_eq(&hasher.digest(&phone, &cb)), a == b);
        prop_assert!(!da.ct_eq(&hasher.digest(&other, &ca)), "bound to the phone");
    }

    #[test]
    fn a_burst_never_passes_count(rate in rate(), start in 0i64..1_000_000_000, extra in 1u32..20) {
        // From a fresh key, everything at one instant: exactly `count` pass.
        let mut tat = None;
        let allowed = (0..rate.count + extra)
            .filter(|_| matches!(take(&mut tat, start, rate), LimitDecision::Allow { .. }))
            .count();
        prop_assert_eq!(allowed, rate.count as usize, "{:?}", rate);
    }

    #[test]
    fn a_burst_after_any_history_never_passes_count(
        rate in rate(),
        steps in proptest::collection::vec(0i64..5_000_000, 0..40),
        extra in 1u32..20,
    ) {
        // Any history of calls, then a burst at one instant: still at most `count`.
        let mut tat = None;
        let mut now = 0;
        for step in steps {
            now += step;
            take(&mut tat, now, rate);
        }
        let allowed = (0..rate.count + extra)
            .filter(|_| matches!(take(&mut tat, now, rate), LimitDecision::Allow { .. }))
            .count();
        prop_assert!(allowed <= rate.count as usize, "{allowed} > {:?}", rate);
    }

    #[test]
    fn retry_after_is_exact(
        rate in rate(),
        steps in proptest::collection::vec(0i64..5_000_000, 0..40),
    ) {
        // Drive the key into a denial, then: refused 1 ms before retry_after, allowed at it.
        let mut tat = None;
        let mut now = 0;
        for step in steps {
            now += step;
            take(&mut tat, now, rate);
        }
        let retry_after = loop {
            match take(&mut tat, now, rate) {
                LimitDecision::Allow { .. } => continue,
                LimitDecision::Deny { retry_after } => break retry_after,
            }
        };
        let wait = retry_after.as_millis() as i64;
        prop_assert!(wait >= 1);
        prop_assert!(wait <= rate.period.as_millis() as i64, "never longer than the period");
        if wait > 1 {
            let early = gcra(tat, Timestamp(now + wait - 1), rate);
            prop_assert_eq!(early, LimitDecision::Deny { retry_after: Duration::from_millis(1) });
        }
        let on_time = matches!(gcra(tat, Timestamp(now + wait), rate), LimitDecision::Allow { .. });
        prop_assert!(on_time, "allowed once retry_after has passed");
    }
}
