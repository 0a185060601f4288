//! One feed on an oracle: the task that drives its protocol instance ([`task`]) with what every
//! feed task shares ([`shared`]) and reaches the database, the price aggregator and the network
//! through ([`ports`]), the observations it asks the price aggregator for ([`observe`]), storing
//! what it finalizes ([`finalize`]) and tracking the writes that fail ([`writes`]), and what the
//! API shows of it ([`status`], [`health`]).

pub mod finalize;
pub mod health;
pub mod observe;
pub mod ports;
pub mod shared;
pub mod status;
pub mod task;
pub mod writes;
