//! Empty: the root suites are the tests under `tests/` (see Cargo.toml).
