//! Nothing here: the benchmark ceiling is `examples/hello.rs` (run by `bench/run.sh`).
