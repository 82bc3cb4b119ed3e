//! `phone_parse SET ITERATIONS`: parses a fixed set of phone numbers ITERATIONS times, for
//! counting `PhoneNumber::parse`'s instructions with callgrind (wall-clock time on the shared
//! machine is too noisy; instruction counts are not). Every number of the set is parsed once
//! before the loop, so the numbering-plan metadata and the regexes the library compiles lazily
//! are ready; run it with ITERATIONS 0 and N and divide the difference by N × the set's size:
//!
//! ```sh
//! cargo build --release -p otpgate-core --example phone_parse
//! for set in us ca gb de intl800 invalid national; do
//!   for n in 0 1000; do
//!     valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$n target/release/examples/phone_parse $set $n \
//!       2>&1 | sed -n 's/.*Collected : //p' >/tmp/cg.$n.ir
//!   done
//!   echo "$set $(( ($(cat /tmp/cg.1000.ir) - $(cat /tmp/cg.0.ir)) / (1000 * 4) ))"
//! done
//! ```
//!
//! Sets: `us` (NANPA, found on the first region), `ca` (NANPA, found after walking the other
//! NANPA regions), `gb`, `de`, `intl800` (non-geographic +800), `invalid` (parsed but not
//! valid, or no such calling code), `national` (US national form with a default region).

use std::hint::black_box;
use std::process::ExitCode;

use otpgate_core::phone::{PhoneNumber, Region};

fn set(name: &str) -> Option<(&'static [&'static str], Option<&'static str>)> {
    Some(match name {
        "us" => (&["+14155550100", "+12015550123", "+1 (646) 555-0175", "+13105550199"], None),
        "ca" => (&["+16135550123", "+14165550134", "+16045550145", "+15145550156"], None),
        "gb" => (&["+447400123456", "+442079460000", "+447812345678", "+441614960000"], None),
        "de" => (&["+4915123456789", "+493012345678", "+4917612345678", "+498912345678"], None),
        "intl800" => (&["+80012345678", "+80087654321", "+80011223344", "+80055667788"], None),
        "invalid" => (&["+1415555010", "+999123456789", "+4900012345678", "+80012345"], None),
        "national" => (&["(415) 555-0100", "201 555 0123", "646.555.0175", "3105550199"], Some("US")),
        _ => return None,
    })
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(name), Some(Ok(iterations))) = (args.next(), args.next().map(|n| n.parse::<u32>())) else {
        eprintln!("usage: phone_parse us|ca|gb|de|intl800|invalid|national ITERATIONS");
        return ExitCode::from(2);
    };
    let Some((numbers, region)) = set(&name) else {
        eprintln!("unknown set {name}");
        return ExitCode::from(2);
    };
    let region = region.map(|r| Region::from_code(r).expect("a region"));
    // The warm-up pass, printed the same way whatever ITERATIONS is (so the difference of two
    // runs is the loop alone).
    for number in numbers {
        match PhoneNumber::parse(number, region) {
            Ok(p) => println!("{number:>18}  {} {} {:?} {}", p.e164(), p.country_code(), p.region(), p.kind().as_str()),
            Err(e) => println!("{number:>18}  {e:?}"),
        }
    }
    for _ in 0..iterations {
        for number in numbers {
            let _ = black_box(PhoneNumber::parse(black_box(number), region));
        }
    }
    println!("{name}: {} numbers, {iterations} iterations", numbers.len());
    ExitCode::SUCCESS
}
