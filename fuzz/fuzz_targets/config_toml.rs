//! The binary's TOML configuration (`bin/src/config.rs`, compiled here in place since the
//! binary has no library target), then what serving does with it: each ecosystem's
//! service is built from its section, which checks URLs and names, and the access rules'
//! glob patterns are matched.
//!
//! Invariants: no panic on any file; a rule's pattern matches its own text with the `*`s
//! taken out, and `*` matches any name.
#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use mirror_core::auth::{glob_match, Action};
use mirror_core::Upstream;
use mirror_docker::DockerMirror;
use mirror_fuzz::{Scripted, Stores};
use mirror_maven::MavenMirror;
use mirror_npm::NpmMirror;
use mirror_pypi::PypiMirror;

#[allow(dead_code, unreachable_pub)]
#[path = "../../bin/src/config.rs"]
mod config;

fuzz_target!(|text: &str| {
    let Ok(config) = toml::from_str::<config::Config>(text) else {
        return;
    };
    let stores = Stores::new();
    let _ = NpmMirror::with_upstream(stores.cache.clone(), config.npm(), Scripted::empty());
    let empty = || Scripted::empty() as Arc<dyn Upstream>;
    let _ = PypiMirror::with_upstreams(stores.cache.clone(), config.pypi(), empty(), empty());
    let upstreams: BTreeMap<String, Arc<dyn Upstream>> = config
        .docker
        .upstreams
        .keys()
        .map(|name| (name.clone(), empty()))
        .collect();
    let _ = DockerMirror::with_upstreams(stores.cache.clone(), config.docker.clone(), upstreams);
    let upstreams: BTreeMap<String, Arc<dyn Upstream>> = config
        .maven
        .repositories
        .keys()
        .map(|name| (name.clone(), empty()))
        .collect();
    let _ = MavenMirror::with_upstreams(stores.cache.clone(), config.maven.clone(), upstreams);

    for rule in &config.auth.rules {
        let literal = rule.pattern.replace('*', "");
        assert!(glob_match(&rule.pattern, &literal), "{:?}", rule.pattern);
        assert!(glob_match("*", &rule.pattern));
        let _ = config
            .auth
            .check(None, &rule.ecosystem, &literal, Action::Read);
    }
});
