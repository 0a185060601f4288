//! Parse + validate + verify on arbitrary input: none of it may panic, and whatever verifies must
//! also verify after a round trip through serialisation (key order and whitespace never matter).
#![no_main]

use std::sync::OnceLock;

use enclave::config::signature::{PrivateKey, PublicKey, Scheme};
use enclave::config::{json, validate_document, verify_document};
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static [(PrivateKey, PublicKey); 2] {
    static KEYS: OnceLock<[(PrivateKey, PublicKey); 2]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [Scheme::Native, Scheme::Reference].map(|s| {
            let k = PrivateKey::generate(s).expect("keygen");
            let p = k.public_key();
            (k, p)
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(mut document) = json::parse_strict(text) else { return };
    let _ = validate_document(&document);
    for (private, public) in keys() {
        let _ = verify_document(&document, public);
        // Sign whatever parsed, then check the signature survives re-serialisation.
        let Ok(solution) = json::solution_of_mut(&mut document) else { return };
        solution.shift_remove("signature");
        let payload = serde_json::Value::Object(solution.clone());
        let Ok(signed) = enclave::config::signature::sign(&payload, private) else { continue };
        solution.insert("signature".into(), serde_json::Value::String(signed.signature_b64));
        let reparsed = json::parse_strict(&serde_json::to_string(&document).expect("serialises"))
            .expect("own output parses");
        verify_document(&reparsed, public).expect("a fresh signature verifies after a round trip");
    }
});
