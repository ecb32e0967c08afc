use base64::Engine as _;
use serde_json::json;
use sha2::Digest as _;

use super::*;

const NOW: &str = "2026-12-03T00:00:00.000Z";

fn name() -> PackageName {
    PackageName::parse("@acme/hello").unwrap()
}

fn body(version: &str, tarball: &[u8], tag: &str) -> Map<String, Value> {
    let integrity = format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(tarball))
    );
    let shasum = hex::encode(sha1::Sha1::digest(tarball));
    let data = base64::engine::general_purpose::STANDARD.encode(tarball);
    let doc = json!({
        "_id": "@acme/hello", "name": "@acme/hello", "dist-tags": {tag: version},
        "versions": {version: {"name": "@acme/hello", "version": version, "description": "hi",
            "dist": {"integrity": integrity, "shasum": shasum,
                     "tarball": "http://whatever/@acme/hello/-/@acme/hello-1.0.0.tgz"}}},
        "_attachments": {"@acme/hello-1.0.0.tgz": {"content_type": "application/octet-stream",
            "data": data, "length": tarball.len()}}
    });
    doc.as_object().unwrap().clone()
}

fn file(version: &str) -> HostedFile {
    HostedFile {
        digest: mirror_core::digest::sha256_of(version.as_bytes()),
        size: 1,
        version: version.into(),
    }
}

fn publish(
    existing: Option<HostedPackage>,
    version: &str,
    tag: &str,
) -> Result<HostedPackage, Refusal> {
    let doc = body(version, version.as_bytes(), tag);
    let parsed = parse_publish(&doc, &name())?;
    apply_publish(existing, &name(), parsed, file(version), NOW)
}

#[test]
fn first_publish_creates_the_packument() {
    let package = publish(None, "1.0.0", "latest").unwrap();
    let doc = render_full(&package, "1-x");
    assert_eq!(doc["_rev"], "1-x");
    assert_eq!(doc["dist-tags"]["latest"], "1.0.0");
    assert_eq!(doc["description"], "hi");
    assert_eq!(doc["time"]["1.0.0"], NOW);
    let tarball = doc["versions"]["1.0.0"]["dist"]["tarball"]
        .as_str()
        .unwrap();
    assert_eq!(
        tarball,
        format!("{BASE_SENTINEL}/@acme/hello/-/hello-1.0.0.tgz")
    );
    assert!(package.files.contains_key("hello-1.0.0.tgz"));
    assert!(render_abbreviated(&package)["versions"]["1.0.0"]["dist"].is_object());
}

#[test]
fn published_versions_are_immutable() {
    let package = publish(None, "1.0.0", "latest").unwrap();
    let again = publish(Some(package.clone()), "1.0.0", "latest");
    assert!(matches!(again, Err(Refusal::Conflict(_))));

    let doc = Map::from_iter([("versions".to_owned(), json!({}))]);
    let emptied = apply_update(package, &doc, NOW).unwrap();
    assert!(is_empty(&emptied));
    assert!(
        matches!(
            publish(Some(emptied), "1.0.0", "latest"),
            Err(Refusal::Conflict(_))
        ),
        "no reuse after unpublish"
    );
}

#[test]
fn tagged_publish_keeps_latest() {
    let package = publish(None, "1.0.0", "latest").unwrap();
    let package = publish(Some(package), "2.0.0-beta.1", "beta").unwrap();
    let tags = tags(&package);
    assert_eq!(
        (tags["latest"].as_str(), tags["beta"].as_str()),
        (Some("1.0.0"), Some("2.0.0-beta.1"))
    );
    let package = set_tag(package, "next", "2.0.0-beta.1", NOW).unwrap();
    let package = remove_tag(package, "beta", NOW).unwrap();
    assert!(remove_tag(package.clone(), "latest", NOW).is_err());
    assert!(set_tag(package, "next", "9.9.9", NOW).is_err());
}

#[test]
fn updates_only_deprecate_or_remove_versions() {
    let package = publish(None, "1.0.0", "latest").unwrap();
    let package = publish(Some(package), "1.1.0", "latest").unwrap();
    let mut incoming = render_full(&package, "2-x").as_object().unwrap().clone();
    incoming["versions"]["1.0.0"]["deprecated"] = json!("use 1.1.0");
    incoming["versions"]["1.0.0"]["dist"]["tarball"] = json!("http://evil/x.tgz");
    let updated = apply_update(package, &incoming, NOW).unwrap();
    assert_eq!(updated.doc["versions"]["1.0.0"]["deprecated"], "use 1.1.0");
    assert_ne!(
        updated.doc["versions"]["1.0.0"]["dist"]["tarball"],
        "http://evil/x.tgz"
    );

    incoming["versions"]
        .as_object_mut()
        .unwrap()
        .remove("1.1.0");
    let updated = apply_update(updated, &incoming, NOW).unwrap();
    assert_eq!(
        tags(&updated)["latest"],
        "1.0.0",
        "latest moves to what remains"
    );
    assert!(!updated.files.contains_key("hello-1.1.0.tgz"));

    incoming["versions"]["3.0.0"] = json!({});
    assert!(apply_update(updated, &incoming, NOW).is_err());
}

type Mutation = Box<dyn Fn(&mut Map<String, Value>)>;

#[test]
fn bad_publish_bodies_are_refused() {
    let good = body("1.0.0", b"tar", "latest");
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "other name",
            Box::new(|d| {
                d.insert("name".into(), json!("@acme/other"));
            }),
        ),
        (
            "bad version",
            Box::new(|d| {
                let v = d["versions"]["1.0.0"].clone();
                d.insert("versions".into(), json!({"1.0": v}));
            }),
        ),
        (
            "wrong length",
            Box::new(|d| {
                d["_attachments"]["@acme/hello-1.0.0.tgz"]["length"] = json!(99);
            }),
        ),
        (
            "wrong digest",
            Box::new(|d| {
                let data = base64::engine::general_purpose::STANDARD.encode(b"tampered");
                d["_attachments"]["@acme/hello-1.0.0.tgz"]["data"] = json!(data);
                d["_attachments"]["@acme/hello-1.0.0.tgz"]
                    .as_object_mut()
                    .unwrap()
                    .remove("length");
            }),
        ),
        (
            "not base64",
            Box::new(|d| {
                d["_attachments"]["@acme/hello-1.0.0.tgz"]["data"] = json!("***");
            }),
        ),
        (
            "no digests",
            Box::new(|d| {
                d["versions"]["1.0.0"]["dist"] = json!({});
            }),
        ),
        (
            "tag elsewhere",
            Box::new(|d| {
                d.insert("dist-tags".into(), json!({"latest": "9.9.9"}));
            }),
        ),
        (
            "two versions",
            Box::new(|d| {
                d["versions"]["2.0.0"] = json!({});
            }),
        ),
    ];
    for (case, mutate) in cases {
        let mut doc = good.clone();
        mutate(&mut doc);
        assert!(
            matches!(parse_publish(&doc, &name()), Err(Refusal::Invalid(_))),
            "{case}"
        );
    }
    assert!(parse_publish(&good, &name()).is_ok());
}

#[test]
fn versions_follow_semver() {
    for ok in [
        "1.0.0",
        "0.0.1",
        "1.2.3-beta.1",
        "1.2.3+build.5",
        "10.20.30-rc-1",
    ] {
        assert!(valid_version(ok), "{ok}");
    }
    for bad in [
        "1.0",
        "01.0.0",
        "1.0.0-",
        "1.0.0-a..b",
        "v1.0.0",
        "1.0.0/../x",
        "",
    ] {
        assert!(!valid_version(bad), "{bad}");
    }
}

/// A valid semver of ~250 characters was accepted, but its tarball name was longer than the
/// router takes, so the tarball could never be downloaded: the `npm_publish` fuzz target's
/// invariant (a publish that succeeded serves its tarball back). The same input is its seed
/// `fuzz/corpus/npm_publish/long-version`.
#[test]
fn refuses_a_version_whose_tarball_name_would_be_unservable() {
    let long = format!("1.0.0-{}", "a".repeat(240));
    let doc = body(&long, b"tarball", "latest");
    let refused = parse_publish(&doc, &name());
    assert!(
        matches!(&refused, Err(Refusal::Invalid(m)) if m.contains("too long")),
        "{refused:?}"
    );

    let fits = format!("1.0.0-{}", "a".repeat(200));
    let doc = body(&fits, b"tarball", "latest");
    let publish = parse_publish(&doc, &name()).unwrap();
    assert!(crate::path::valid_tarball_file(&publish.file));
}
