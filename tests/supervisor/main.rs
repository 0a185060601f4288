//! Integration tests of the supervisor: boot, logs and status, PID-1 duties, restarts, shutdown, a full disk: one module per former test file, in one binary so the crate
//! and `tests/common` are linked once for all of them (docs/development/tests.md).

#[path = "../common/mod.rs"]
mod common;

mod boot;
mod full_disk;
mod logs_and_status;
mod pid1;
mod restarts;
mod shutdown;
