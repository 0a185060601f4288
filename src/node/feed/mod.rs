//! One feed on an oracle: the task that drives its protocol instance ([`task`]), the
//! observations it asks the price aggregator for ([`observe`]), the database writes of what it
//! finalizes ([`writes`]), and what the API shows of it ([`status`], [`health`]).

pub mod health;
pub mod observe;
pub mod status;
pub mod task;
pub mod writes;
