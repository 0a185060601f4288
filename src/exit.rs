//! Process exit codes shared by every command and by the supervisor (sysexits.h values).

/// Success.
pub const OK: u8 = 0;
/// Any other failure.
pub const FAILURE: u8 = 1;
/// Bad command-line usage (clap's own code).
pub const USAGE: u8 = 2;
/// A verification's input file cannot be read or is malformed, so nothing was judged (EX_DATAERR).
pub const INPUT_INVALID: u8 = 65;
/// The configuration's signature is missing or invalid, or the verifying key is unusable (EX_NOPERM).
pub const SIGNATURE_INVALID: u8 = 77;
/// The configuration cannot be read or is invalid, or (`enclave node`) its RPC endpoint serves
/// another chain than `chainlinkChainId` (EX_CONFIG).
pub const CONFIG_INVALID: u8 = 78;
