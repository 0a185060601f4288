//! What every listening socket shares so that nobody on the network can take the room real
//! clients need: the admission policy for limited connection slots, log lines that summarise
//! what anyone can cause instead of one line per event, and the HTTP server all services use.

pub mod admission;
pub mod http_server;
pub mod log_summary;
