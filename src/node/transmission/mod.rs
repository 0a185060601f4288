//! Transmission of finalized reports (OCR1 A.1.5): which oracle sends when, whether a report is
//! still worth sending, and the task that sends it.

pub mod decide;
pub mod schedule;
pub mod transmitter;
