//! Checking an upload form against itself before anything is stored.
//!
//! The form says what the file is four ways (`name`, `version`, `filetype` and the file
//! name) and what it hashes to; all must agree with one another and with the bytes, with
//! names compared after PEP 503 normalization and versions after PEP 440's, since tools
//! spell them differently (`Foo.Bar` 1.0-rc1 as `foo_bar-1.0rc1-py3-none-any.whl`).

use super::form::{Fields, Spooled};
use crate::hosted::DistKind;
use crate::name::{is_valid_file_name, is_valid_name, ProjectName};
use crate::version::{same_version, Version};

/// Longest `requires_python` kept.
const MAX_REQUIRES_PYTHON: usize = 1024;

/// An upload whose form and file agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upload {
    pub(crate) project: ProjectName,
    pub(crate) version: Version,
    pub(crate) kind: DistKind,
    pub(crate) filename: String,
    pub(crate) requires_python: Option<String>,
}

/// The project the form names.
pub(crate) fn project_of(fields: &Fields) -> Result<ProjectName, String> {
    let name = required(fields, "name")?;
    ProjectName::parse(name.trim())
        .ok_or_else(|| format!("invalid project name {name:?} (PEP 508: letters, digits, -_.)"))
}

/// Checks every field against the others and against the file.
pub(crate) fn check_upload(fields: &Fields, content: &Spooled) -> Result<Upload, String> {
    check_action(fields)?;
    let project = project_of(fields)?;
    let raw_version = required(fields, "version")?;
    let version = Version::parse(raw_version)
        .ok_or_else(|| format!("invalid version {raw_version:?} (not PEP 440)"))?;
    let kind = match required(fields, "filetype")? {
        "bdist_wheel" => DistKind::BdistWheel,
        "sdist" => DistKind::Sdist,
        other => {
            return Err(format!(
                "unsupported filetype {other:?}: only bdist_wheel and sdist are accepted"
            ))
        }
    };
    let filename = content.filename.as_str();
    check_file_name(filename, kind, &project, raw_version)?;
    if content.size == 0 {
        return Err(format!("{filename} is empty"));
    }
    check_digests(fields, content)?;
    Ok(Upload {
        project,
        version,
        kind,
        filename: filename.to_owned(),
        requires_python: requires_python(fields)?,
    })
}

fn required<'a>(fields: &'a Fields, name: &str) -> Result<&'a str, String> {
    fields
        .get(name)
        .map(String::as_str)
        .filter(|value| !value.trim().is_empty())
        .ok_or_else(|| format!("missing {name}"))
}

fn check_action(fields: &Fields) -> Result<(), String> {
    match required(fields, ":action")? {
        "file_upload" => {}
        other => return Err(format!("unsupported :action {other:?}; use file_upload")),
    }
    match fields.get("protocol_version").map(String::as_str) {
        None | Some("1") => Ok(()),
        Some(other) => Err(format!("unsupported protocol_version {other:?}")),
    }
}

/// The file name must be one plain name of the kind `filetype` says, for this project and
/// version.
fn check_file_name(
    filename: &str,
    kind: DistKind,
    project: &ProjectName,
    version: &str,
) -> Result<(), String> {
    if !is_valid_file_name(filename) {
        return Err(format!(
            "invalid file name {filename:?}: a plain file name is expected"
        ));
    }
    let matches = match kind {
        DistKind::BdistWheel => {
            let stem = filename
                .strip_suffix(".whl")
                .ok_or_else(|| format!("{filename} is not a wheel (.whl)"))?;
            wheel_matches(stem, project, version)?
        }
        DistKind::Sdist => {
            let stem = filename
                .strip_suffix(".tar.gz")
                .or_else(|| filename.strip_suffix(".zip"))
                .ok_or_else(|| format!("{filename} is not an sdist (.tar.gz or .zip)"))?;
            sdist_matches(stem, project, version)
        }
    };
    if matches {
        Ok(())
    } else {
        Err(format!(
            "the file name {filename} does not match project {project} version {version}"
        ))
    }
}

/// PEP 427: `{name}-{version}(-{build})?-{python}-{abi}-{platform}`; the build tag starts
/// with a digit. Whether the name and version part match; an error when it is no wheel name.
fn wheel_matches(stem: &str, project: &ProjectName, version: &str) -> Result<bool, String> {
    let parts: Vec<&str> = stem.split('-').collect();
    let well_formed = matches!(parts.len(), 5 | 6)
        && parts.iter().all(|p| !p.is_empty())
        && (parts.len() == 5 || parts[2].starts_with(|c: char| c.is_ascii_digit()));
    if !well_formed {
        return Err(format!(
            "{stem}.whl is not a wheel file name (name-version[-build]-python-abi-platform.whl)"
        ));
    }
    Ok(names_project(parts[0], project) && same_version(parts[1], version))
}

/// `{name}-{version}`, where older tools kept the name's dashes (`foo-bar-1.0`) and PEP 625
/// writes underscores (`foo_bar-1.0`): any split at a dash that matches will do.
fn sdist_matches(stem: &str, project: &ProjectName, version: &str) -> bool {
    stem.match_indices('-').any(|(at, _)| {
        names_project(&stem[..at], project) && same_version(&stem[at + 1..], version)
    })
}

fn names_project(name: &str, project: &ProjectName) -> bool {
    is_valid_name(name) && ProjectName::parse(name).as_ref() == Some(project)
}

/// `sha256_digest` is required and must match; `md5_digest` and `blake2_256_digest` must
/// match when given.
fn check_digests(fields: &Fields, content: &Spooled) -> Result<(), String> {
    let declared = required(fields, "sha256_digest")?;
    check_digest("sha256_digest", declared, &content.sha256)?;
    for (field, computed) in [
        ("md5_digest", &content.md5),
        ("blake2_256_digest", &content.blake2_256),
    ] {
        if let Some(declared) = fields.get(field).filter(|v| !v.trim().is_empty()) {
            check_digest(field, declared, computed)?;
        }
    }
    Ok(())
}

fn check_digest(field: &str, declared: &str, computed: &str) -> Result<(), String> {
    if declared.trim().eq_ignore_ascii_case(computed) {
        Ok(())
    } else {
        Err(format!(
            "{field} does not match the uploaded file (whose digest is {computed}): \
             the file was damaged on the way or the form is wrong"
        ))
    }
}

fn requires_python(fields: &Fields) -> Result<Option<String>, String> {
    let Some(value) = fields.get("requires_python").map(|v| v.trim()) else {
        return Ok(None);
    };
    if value.len() > MAX_REQUIRES_PYTHON || value.chars().any(char::is_control) {
        return Err("invalid requires_python".to_owned());
    }
    Ok((!value.is_empty()).then(|| value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&'static str, &str)]) -> Fields {
        pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
    }

    fn content(filename: &str, bytes: &[u8]) -> Spooled {
        Spooled {
            filename: filename.to_owned(),
            file: tempfile::tempfile().unwrap(),
            size: bytes.len() as u64,
            sha256: mirror_core::digest::sha256_of(bytes).hex(),
            md5: "5d41402abc4b2a76b9719d911017c592".to_owned(),
            blake2_256: "b2".repeat(32),
        }
    }

    fn form(name: &str, version: &str, filetype: &str) -> Fields {
        fields(&[
            (":action", "file_upload"),
            ("protocol_version", "1"),
            ("name", name),
            ("version", version),
            ("filetype", filetype),
            (
                "sha256_digest",
                &mirror_core::digest::sha256_of(b"hello").hex(),
            ),
            ("requires_python", " >=3.8 "),
        ])
    }

    #[test]
    fn accepts_the_spellings_tools_write() {
        for (name, version, filetype, filename) in [
            ("demo", "1.0", "bdist_wheel", "demo-1.0-py3-none-any.whl"),
            (
                "Foo.Bar",
                "1.0-RC1",
                "bdist_wheel",
                "foo_bar-1.0rc1-1-py3-none-any.whl",
            ),
            (
                "foo-bar",
                "2.0.0",
                "bdist_wheel",
                "Foo_Bar-2.0-cp312-cp312-manylinux_2_17_x86_64.whl",
            ),
            ("foo-bar", "1.0", "sdist", "foo_bar-1.0.tar.gz"),
            ("foo-bar", "1.0", "sdist", "foo-bar-1.0.tar.gz"),
            ("foo-bar", "1.0.post1", "sdist", "foo-bar-1.0-1.zip"),
            ("a", "1!2.0+local.7", "sdist", "a-1!2.0+local.7.tar.gz"),
        ] {
            let upload = check_upload(&form(name, version, filetype), &content(filename, b"hello"))
                .unwrap_or_else(|err| panic!("{filename}: {err}"));
            assert_eq!(upload.filename, filename);
            assert_eq!(upload.project.as_str(), normalize_for_test(name));
            assert_eq!(upload.requires_python.as_deref(), Some(">=3.8"));
        }
    }

    fn normalize_for_test(name: &str) -> String {
        crate::name::normalize(name)
    }

    fn refused(fields: &Fields, filename: &str, bytes: &[u8]) -> String {
        check_upload(fields, &content(filename, bytes)).unwrap_err()
    }

    #[test]
    fn refuses_names_and_versions_that_do_not_match() {
        let wheel = form("demo", "1.0", "bdist_wheel");
        let sdist = form("demo", "1.0", "sdist");
        for (fields, filename) in [
            (&wheel, "other-1.0-py3-none-any.whl"),
            (&wheel, "demo-1.1-py3-none-any.whl"),
            (&wheel, "demo_extra-1.0-py3-none-any.whl"),
            (&sdist, "other-1.0.tar.gz"),
            (&sdist, "demo-1.0.1.tar.gz"),
            (&sdist, "demo.tar.gz"),
        ] {
            assert!(
                refused(fields, filename, b"hello").contains("does not match"),
                "{filename}"
            );
        }
        for (fields, filename, message) in [
            (&wheel, "demo-1.0.tar.gz", "not a wheel"),
            (&sdist, "demo-1.0-py3-none-any.whl", "not an sdist"),
            (&sdist, "demo-1.0.tar.bz2", "not an sdist"),
            (&wheel, "demo-1.0-py3-any.whl", "not a wheel file name"),
            (
                &wheel,
                "demo-1.0-x-py3-none-any.whl",
                "not a wheel file name",
            ),
            (&wheel, "demo-1.0--none-any.whl", "not a wheel file name"),
        ] {
            let err = refused(fields, filename, b"hello");
            assert!(err.contains(message), "{filename}: {err}");
        }
    }

    #[test]
    fn refuses_file_names_that_are_paths() {
        let sdist = form("demo", "1.0", "sdist");
        for filename in [
            "../demo-1.0.tar.gz",
            "x/demo-1.0.tar.gz",
            "..\\demo-1.0.tar.gz",
            "/etc/demo-1.0.tar.gz",
            ".demo-1.0.tar.gz",
            "demo-1.0.tar.gz\0",
            "",
        ] {
            let err = refused(&sdist, filename, b"hello");
            assert!(err.contains("invalid file name"), "{filename:?}: {err}");
        }
    }

    #[test]
    fn refuses_bad_fields() {
        let good = form("demo", "1.0", "sdist");
        let with = |key: &'static str, value: &str| {
            let mut fields = good.clone();
            fields.insert(key, value.to_owned());
            fields
        };
        let without = |key: &str| {
            let mut fields = good.clone();
            fields.remove(key);
            fields
        };
        for (fields, message) in [
            (with(":action", "submit"), "unsupported :action"),
            (without(":action"), "missing :action"),
            (with("protocol_version", "2"), "protocol_version"),
            (with("name", "-bad-"), "invalid project name"),
            (without("name"), "missing name"),
            (with("version", "1.0 final"), "invalid version"),
            (with("filetype", "bdist_egg"), "unsupported filetype"),
            (without("sha256_digest"), "missing sha256_digest"),
            (
                with("sha256_digest", &"0".repeat(64)),
                "sha256_digest does not match",
            ),
            (
                with("md5_digest", &"0".repeat(32)),
                "md5_digest does not match",
            ),
            (
                with("blake2_256_digest", &"0".repeat(64)),
                "blake2_256_digest does not match",
            ),
            (
                with("requires_python", ">=3\n<script>"),
                "invalid requires_python",
            ),
        ] {
            let err = refused(&fields, "demo-1.0.tar.gz", b"hello");
            assert!(err.contains(message), "{message}: {err}");
        }
        assert!(refused(&good, "demo-1.0.tar.gz", b"").contains("is empty"));
        let upper = with(
            "sha256_digest",
            &mirror_core::digest::sha256_of(b"hello")
                .hex()
                .to_uppercase(),
        );
        let md5 = with("md5_digest", "5d41402abc4b2a76b9719d911017c592");
        for fields in [upper, md5] {
            assert!(check_upload(&fields, &content("demo-1.0.tar.gz", b"hello")).is_ok());
        }
    }
}
