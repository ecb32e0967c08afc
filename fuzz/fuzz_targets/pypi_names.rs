//! mirror-pypi's name and version readers (through its `fuzzing` feature): PEP 503
//! normalization, PEP 508 name validation, file-name validation, PEP 440 versions and the
//! `Accept` negotiation of the simple API.
//!
//! Invariants: normalization is idempotent and a valid name's normal form is valid and
//! normal; a version's normal and canonical forms read back as themselves; "same version"
//! is reflexive and symmetric; an accepted file name is one safe path segment.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use mirror_pypi::fuzzing::{
    is_valid_file_name, negotiate, normalize, project_name, same_version, version,
};

fuzz_target!(|input: (&str, &str)| {
    let (a, b) = input;
    check_name(a);
    check_version(a);
    check_file_name(a);
    assert_eq!(same_version(a, b), same_version(b, a), "{a:?} {b:?}");
    if let Ok(value) = HeaderValue::from_str(a) {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::ACCEPT, value);
        let _ = negotiate(&headers);
    }
});

fn check_name(raw: &str) {
    let normal = normalize(raw);
    assert_eq!(normalize(&normal), normal, "{raw:?}");
    let Some(name) = project_name(raw) else {
        return;
    };
    assert_eq!(name, normal);
    assert_eq!(
        project_name(&name).as_deref(),
        Some(name.as_str()),
        "{raw:?}"
    );
    assert!(!name.contains("--"), "{name:?}");
    assert!(
        name.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
        "{name:?}"
    );
}

fn check_version(raw: &str) {
    let Some((normal, canonical)) = version(raw) else {
        return;
    };
    assert_eq!(
        version(&normal),
        Some((normal.clone(), canonical.clone())),
        "{raw:?}"
    );
    assert_eq!(
        version(&canonical).map(|(_, c)| c),
        Some(canonical.clone()),
        "{raw:?}"
    );
    assert!(same_version(raw, raw), "{raw:?}");
    assert!(same_version(raw, &normal), "{raw:?} vs {normal:?}");
}

fn check_file_name(file: &str) {
    if !is_valid_file_name(file) {
        return;
    }
    assert!(!file.contains(['/', '\\', '%']) && file != "..", "{file:?}");
    assert!(!file.starts_with('.'), "{file:?}");
}
