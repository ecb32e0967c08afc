//! A wheel's core metadata, read out of the uploaded zip.
//!
//! PEP 658 lets installers read a wheel's `METADATA` without downloading the wheel, so the
//! mirror keeps a copy beside it. Reading it also checks the upload is a real wheel: a zip
//! whose `{name}-{version}.dist-info` directory, with `METADATA` and `WHEEL`, describes the
//! project and version the form names. A zip's directory is at its end, so this reads the
//! spooled file, not the stream, and blocks: callers run it on the blocking pool.

use std::io::Read as _;

use zip::ZipArchive;

use super::check::Upload;
use crate::name::ProjectName;
use crate::version::same_version;

/// Largest `METADATA` accepted; real ones are a few kilobytes, long READMEs included.
const MAX_METADATA_BYTES: u64 = 16 << 20;

/// The wheel's `METADATA`, once checked against the upload.
pub(crate) fn core_metadata(file: std::fs::File, upload: &Upload) -> Result<Vec<u8>, String> {
    let filename = &upload.filename;
    let mut archive =
        ZipArchive::new(file).map_err(|err| format!("{filename} is not a valid zip: {err}"))?;
    let dist_info = dist_info_dir(&archive, upload)?;
    if archive
        .index_for_name(&format!("{dist_info}/WHEEL"))
        .is_none()
    {
        return Err(format!("{filename} has no {dist_info}/WHEEL"));
    }
    let entry = format!("{dist_info}/METADATA");
    let metadata = {
        let file = archive
            .by_name(&entry)
            .map_err(|err| format!("{filename}: cannot open {entry}: {err}"))?;
        let mut metadata = Vec::new();
        file.take(MAX_METADATA_BYTES + 1)
            .read_to_end(&mut metadata)
            .map_err(|err| format!("{filename}: cannot read {entry}: {err}"))?;
        metadata
    };
    if metadata.len() as u64 > MAX_METADATA_BYTES {
        return Err(format!("{entry} is larger than {MAX_METADATA_BYTES} bytes"));
    }
    check_metadata(&metadata, upload).map_err(|reason| format!("{entry}: {reason}"))?;
    Ok(metadata)
}

/// The one top-level `*.dist-info` directory naming the upload's project and version.
fn dist_info_dir(archive: &ZipArchive<std::fs::File>, upload: &Upload) -> Result<String, String> {
    let names: Vec<String> = archive
        .file_names()
        .filter_map(Result::ok)
        .map(|name| name.into_owned())
        .collect();
    let mut found: Vec<&str> = names
        .iter()
        .filter_map(|name| name.strip_suffix("/METADATA"))
        .filter(|dir| !dir.contains('/'))
        .filter(|dir| {
            let stem = dir.strip_suffix(".dist-info").unwrap_or_default();
            stem.rsplit_once('-').is_some_and(|(name, version)| {
                ProjectName::parse(name).as_ref() == Some(&upload.project)
                    && same_version(version, &upload.version.normalized())
            })
        })
        .collect();
    found.dedup();
    match found.as_slice() {
        [dir] => Ok((*dir).to_owned()),
        [] => Err(format!(
            "{} has no {}-{}.dist-info/METADATA",
            upload.filename,
            upload.project.as_str().replace('-', "_"),
            upload.version.normalized()
        )),
        _ => Err(format!(
            "{} has more than one .dist-info directory for its project",
            upload.filename
        )),
    }
}

/// `METADATA` must name the same project and version as the form: an installer trusts the
/// metadata file it is served, and pip refuses a wheel whose metadata disagrees with it.
fn check_metadata(metadata: &[u8], upload: &Upload) -> Result<(), String> {
    let text = String::from_utf8_lossy(metadata);
    let header = |wanted: &str| {
        text.lines()
            .take_while(|line| !line.trim().is_empty())
            .filter_map(|line| line.split_once(':'))
            .find(|(key, _)| key.trim().eq_ignore_ascii_case(wanted))
            .map(|(_, value)| value.trim().to_owned())
    };
    let name = header("Name").ok_or("no Name field")?;
    if ProjectName::parse(&name).as_ref() != Some(&upload.project) {
        return Err(format!("names project {name:?}, not {}", upload.project));
    }
    let version = header("Version").ok_or("no Version field")?;
    if !same_version(&version, &upload.version.normalized()) {
        return Err(format!(
            "names version {version:?}, not {}",
            upload.version.normalized()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Seek as _, Write as _};

    use zip::write::SimpleFileOptions;
    use zip::ZipWriter;

    use super::*;
    use crate::hosted::DistKind;
    use crate::version::Version;

    const METADATA: &str = "Metadata-Version: 2.1\nName: Demo.Pkg\nVersion: 1.0.0\n\nName: body\n";

    fn wheel(entries: &[(&str, &str)]) -> std::fs::File {
        let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in entries {
            zip.start_file(*name, SimpleFileOptions::default()).unwrap();
            zip.write_all(data.as_bytes()).unwrap();
        }
        let bytes = zip.finish().unwrap().into_inner();
        file_of(&bytes)
    }

    fn file_of(bytes: &[u8]) -> std::fs::File {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        file.rewind().unwrap();
        file
    }

    fn upload() -> Upload {
        Upload {
            project: ProjectName::parse("demo-pkg").unwrap(),
            version: Version::parse("1.0").unwrap(),
            kind: DistKind::BdistWheel,
            filename: "demo_pkg-1.0-py3-none-any.whl".into(),
            requires_python: None,
        }
    }

    #[test]
    fn reads_metadata_of_the_right_dist_info() {
        let file = wheel(&[
            ("demo_pkg/__init__.py", ""),
            (
                "vendored-2.0.dist-info/METADATA",
                "Name: vendored\nVersion: 2.0\n",
            ),
            ("demo_pkg-1.0.dist-info/METADATA", METADATA),
            ("demo_pkg-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\n"),
            ("demo_pkg/sub.dist-info/METADATA", "nested, ignored"),
        ]);
        assert_eq!(core_metadata(file, &upload()).unwrap(), METADATA.as_bytes());
    }

    #[test]
    fn refuses_what_is_not_a_matching_wheel() {
        let cases = [
            (file_of(b"PK\x03\x04 not really a zip"), "not a valid zip"),
            (
                wheel(&[("demo_pkg/__init__.py", "")]),
                "has no demo_pkg-1.0.dist-info/METADATA",
            ),
            (
                wheel(&[("demo_pkg-1.0.dist-info/METADATA", METADATA)]),
                "has no demo_pkg-1.0.dist-info/WHEEL",
            ),
            (
                wheel(&[
                    (
                        "demo_pkg-1.0.dist-info/METADATA",
                        "Name: other\nVersion: 1.0\n",
                    ),
                    ("demo_pkg-1.0.dist-info/WHEEL", ""),
                ]),
                "names project \"other\"",
            ),
            (
                wheel(&[
                    (
                        "demo_pkg-1.0.dist-info/METADATA",
                        "Name: demo-pkg\nVersion: 2.0\n",
                    ),
                    ("demo_pkg-1.0.dist-info/WHEEL", ""),
                ]),
                "names version \"2.0\"",
            ),
            (
                wheel(&[
                    ("demo_pkg-1.0.dist-info/METADATA", "Version: 1.0\n"),
                    ("demo_pkg-1.0.dist-info/WHEEL", ""),
                ]),
                "no Name field",
            ),
        ];
        for (file, message) in cases {
            let err = core_metadata(file, &upload()).unwrap_err();
            assert!(err.contains(message), "{message}: {err}");
        }
    }
}
