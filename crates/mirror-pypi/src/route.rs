//! Which endpoint a request path names.
//!
//! The layout under the mount point:
//!
//! - `/simple/`: the root listing of every project;
//! - `/simple/<project>/`: one project's page, at its normalized name;
//! - `/files/<project>/<file>`: a distribution file;
//! - `/files/<project>/<file>.metadata`: its core metadata (PEP 658).
//!
//! The mount point itself takes the legacy upload API (`POST /`, where twine sends it, or
//! `POST /legacy/`, PyPI's own spelling); a `GET` there redirects readers to `/simple/`.
//!
//! Each segment is percent-decoded on its own, so an encoded `/` can never make a file
//! name span two segments, and every name is validated before anything else sees it.

use percent_encoding::percent_decode_str;

use crate::error::PypiError;
use crate::name::{is_valid_file_name, ProjectName};

/// The suffix PEP 658 appends to a file's URL to name its core metadata.
pub(crate) const METADATA_SUFFIX: &str = ".metadata";

/// A parsed request path, relative to the mount point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/simple/`.
    RootIndex,
    /// `/simple/<project>/` at the normalized name.
    Project(ProjectName),
    /// `/files/<project>/<file>`.
    File(ProjectName, String),
    /// `/files/<project>/<file>.metadata`; holds the distribution file's name.
    Metadata(ProjectName, String),
    /// A spelling of one of the above that clients should repeat at this canonical path.
    Redirect(String),
}

/// True for the paths an upload is posted to: the mount point and `/legacy/`.
pub(crate) fn is_upload_path(path: &str) -> bool {
    matches!(path, "" | "/" | "/legacy" | "/legacy/")
}

/// Parses a request path.
pub(crate) fn route(path: &str) -> Result<Route, PypiError> {
    let raw: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let segments = raw
        .iter()
        .map(|s| percent_decode_str(s).decode_utf8())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| PypiError::UnknownPath)?;
    let segments: Vec<&str> = segments.iter().map(AsRef::as_ref).collect();
    match segments.as_slice() {
        [""] => Ok(Route::Redirect("/simple/".to_owned())),
        ["simple"] => Ok(Route::Redirect("/simple/".to_owned())),
        ["simple", ""] => Ok(Route::RootIndex),
        ["simple", name] => project_route(name, false),
        ["simple", name, ""] => project_route(name, true),
        ["files", name, file] => file_route(name, file),
        _ if segments.contains(&"..") => Err(PypiError::InvalidFileName),
        _ => Err(PypiError::UnknownPath),
    }
}

fn project_route(raw: &str, trailing_slash: bool) -> Result<Route, PypiError> {
    let name = ProjectName::parse(raw).ok_or(PypiError::InvalidProjectName)?;
    if trailing_slash && raw == name.as_str() {
        Ok(Route::Project(name))
    } else {
        Ok(Route::Redirect(format!("/simple/{name}/")))
    }
}

fn file_route(raw_name: &str, file: &str) -> Result<Route, PypiError> {
    let name = ProjectName::parse(raw_name).ok_or(PypiError::InvalidProjectName)?;
    if !is_valid_file_name(file) {
        return Err(PypiError::InvalidFileName);
    }
    if raw_name != name.as_str() {
        return Ok(Route::Redirect(format!("/files/{name}/{file}")));
    }
    match file.strip_suffix(METADATA_SUFFIX) {
        Some(dist) if is_valid_file_name(dist) => Ok(Route::Metadata(name, dist.to_owned())),
        Some(_) => Err(PypiError::InvalidFileName),
        None => Ok(Route::File(name, file.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> ProjectName {
        ProjectName::parse(n).unwrap()
    }

    fn redirect(path: &str) -> Route {
        Route::Redirect(path.to_owned())
    }

    #[test]
    fn routes_the_simple_api() {
        assert_eq!(route("/simple/").unwrap(), Route::RootIndex);
        assert_eq!(route("/simple").unwrap(), redirect("/simple/"));
        assert_eq!(route("/").unwrap(), redirect("/simple/"));
        assert_eq!(
            route("/simple/requests/").unwrap(),
            Route::Project(name("requests"))
        );
        assert_eq!(
            route("/files/requests/requests-2.32.3-py3-none-any.whl").unwrap(),
            Route::File(name("requests"), "requests-2.32.3-py3-none-any.whl".into())
        );
        assert_eq!(
            route("/files/requests/requests-2.32.3-py3-none-any.whl.metadata").unwrap(),
            Route::Metadata(name("requests"), "requests-2.32.3-py3-none-any.whl".into())
        );
    }

    #[test]
    fn redirects_other_spellings_to_the_normalized_name() {
        for path in [
            "/simple/Zope.Interface/",
            "/simple/zope_interface/",
            "/simple/zope-interface",
            "/simple/ZOPE--interface",
            "/simple/zope%2Einterface/",
        ] {
            assert_eq!(
                route(path).unwrap(),
                redirect("/simple/zope-interface/"),
                "{path}"
            );
        }
        assert_eq!(
            route("/files/Zope.Interface/z-1.0.tar.gz").unwrap(),
            redirect("/files/zope-interface/z-1.0.tar.gz")
        );
    }

    #[test]
    fn refuses_traversal_and_bad_names() {
        let refused = |path: &str, status: u16| {
            let err = route(path).unwrap_err();
            assert_eq!(err.status().as_u16(), status, "{path}: {err}");
        };
        refused("/simple/../", 400);
        refused("/simple/..%2f..%2fetc%2fpasswd/", 400);
        refused("/simple/-bad-/", 400);
        refused("/simple/a%00b/", 400);
        refused("/files/p/..%2f..%2fetc%2fpasswd", 400);
        refused("/files/p/..", 400);
        refused("/files/p/.metadata", 400);
        refused("/files/p/x%2f.whl", 400);
        refused("/files/p/../x.whl", 400);
        refused("/files/../p/x.whl", 400);
        refused("/files/p/%ff.whl", 404);
        refused("/simple/a/b/", 404);
        refused("/other", 404);
    }

    #[test]
    fn uploads_go_to_the_mount_point_or_legacy() {
        for path in ["", "/", "/legacy", "/legacy/"] {
            assert!(is_upload_path(path), "{path}");
        }
        for path in ["/simple/", "/legacy/x", "//", "/files/p/x.whl"] {
            assert!(!is_upload_path(path), "{path}");
        }
    }
}
