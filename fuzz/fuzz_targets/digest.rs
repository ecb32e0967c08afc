//! mirror-core's digest forms: `algo:hex` (OCI, stored records), SRI (npm `integrity`) and
//! bare hex (npm `shasum`, Maven-style `.sha1` files).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirror_core::{Algorithm, Digest};

fuzz_target!(|text: &str| {
    if let Ok(digest) = text.parse::<Digest>() {
        let shown = digest.to_string();
        assert_eq!(shown.parse::<Digest>().ok().as_ref(), Some(&digest));
        assert_eq!(
            Digest::from_sri(&digest.to_sri()).ok().as_ref(),
            Some(&digest)
        );
        assert_eq!(
            Digest::from_hex(digest.algorithm(), &digest.hex())
                .ok()
                .as_ref(),
            Some(&digest)
        );
    }
    if let Ok(digest) = Digest::from_sri(text) {
        assert_eq!(
            Digest::from_sri(&digest.to_sri()).ok().as_ref(),
            Some(&digest)
        );
        assert!(text.contains(digest.algorithm().name()));
    }
    for algorithm in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
        if let Ok(digest) = Digest::from_hex(algorithm, text) {
            assert_eq!(digest.hex(), text.trim().to_ascii_lowercase());
        }
    }
});
