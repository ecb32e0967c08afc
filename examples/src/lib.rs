//! Examples of embedding the registry mirror crates; see the files beside `Cargo.toml`.
