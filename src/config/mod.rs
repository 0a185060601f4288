//! The signed configuration: its model, validation, canonical forms and signature schemes.
//!
//! Every service works only from a configuration that went through [`load_verified`]: parsed
//! strictly, its signature checked, then every field validated with all problems collected.

pub mod defaults;
#[cfg(test)]
mod doc_check;
pub mod json;
mod load;
pub mod measurements;
pub mod reader;
pub mod regular_file;
pub mod schema;
pub mod secret;
pub mod signature;
pub mod validate;
pub mod values;

pub use load::{
    load_verified, load_verified_with_key_file, payload_of, read_document, read_key_file,
    validate_document, verify_document, ConfigError, Validated, VerifiedConfig, MAX_CONFIG_BYTES,
};
pub use schema::Config;
