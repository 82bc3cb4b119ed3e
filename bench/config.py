"""Writes the benchmarks' otpgate configuration (bench/run.sh, bench/soak.sh, bench/redis-memory.sh).

    python3 bench/config.py OUT.toml NUMBERS [extra TOML lines...]

Every rate limit and the tripwire are off: the benchmarks measure the work of a request, not
refusals. NUMBERS test numbers (fixed code 123456) follow bench/flow.lua's and rate.rs's
numbering: number n (1-based) is +1 415 (200 + n / 10000 % 800) (n % 10000). Extra arguments
are appended as lines (a [codes] or [store] section, say).
"""
import sys

LIMITS = ["phone_send", "phone_send_hourly", "phone_send_daily", "ip_send", "ip_send_hourly", "prefix_send",
          "country_send", "global_send_hourly", "global_send_daily", "phone_check_failures", "ip_check"]

path, numbers, extra = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
with open(path, "w") as f:
    f.write('[log]\nlevel = "warn"\nformat = "json"\n[tripwire]\nenabled = false\n[limits]\n')
    for limit in LIMITS:
        f.write(f"{limit} = {{ count = 0, period_secs = 60 }}\n")
    for line in extra:
        f.write(line + "\n")
    if numbers:
        f.write("[test_numbers]\n")
        for n in range(1, numbers + 1):
            f.write(f'"+1415{200 + (n // 10000) % 800:03d}{n % 10000:04d}" = "123456"\n')
