//! The enclave's one OCR shared secret (libocr's `sharedSecret`): 16 bytes every oracle knows,
//! which seed leader selection and the transmission order.

use std::fmt;
use std::path::Path;

use zeroize::Zeroize;

use super::error::KeyError;
use super::files::{self, Missing};
use crate::config::secret::REDACTED;

pub const SHARED_SECRET_FILE: &str = "ocr-shared-secret";
pub const SHARED_SECRET_LEN: usize = 16;

/// The shared secret. `Debug` and `Display` print `***`; the memory is zeroed on drop.
pub struct SharedSecret([u8; SHARED_SECRET_LEN]);

impl SharedSecret {
    /// The secret itself. Callers must not log or format it.
    pub fn expose(&self) -> &[u8; SHARED_SECRET_LEN] {
        &self.0
    }

    pub(super) fn load_or_generate(path: &Path) -> Result<Self, KeyError> {
        // Any 16 bytes are a valid secret.
        files::load_or_generate(path, Missing::Generate, "OCR shared secret", |bytes| {
            Ok(Self(*bytes))
        })
    }
}

impl Drop for SharedSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedSecret({REDACTED})")
    }
}

impl fmt::Display for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}
