//! Which npm registry endpoint a request path names.
//!
//! npm asks for scoped packages as `/@scope%2fname`, other clients as `/@scope/name`; both
//! name the same package. Names are validated before they become storage keys or upstream
//! paths, so nothing a client sends can step outside the package namespace.

use percent_encoding::percent_decode_str;

/// A parsed request path, relative to the mount point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/`: registry information.
    Root,
    /// `/-/ping`.
    Ping,
    /// `/<name>`: the packument.
    Packument(PackageName),
    /// `/<name>/<version or tag>`: one version's manifest.
    Version(PackageName, String),
    /// `/<name>/-/<file>.tgz`.
    Tarball(PackageName, String),
    /// `/<name>/-rev/<rev>`: a packument revision, for updates and whole-package unpublish.
    Revision(PackageName, String),
    /// `/<name>/-/<file>/-rev/<rev>`: a tarball, for deleting after a version unpublish.
    TarballRevision(PackageName, String, String),
    /// `/-/whoami`.
    Whoami,
    /// `/-/user/org.couchdb.user:<name>`: the legacy login.
    Login(String),
    /// `/-/user/token/<token>`: logout.
    Logout(String),
    /// `/-/package/<name>/dist-tags`.
    DistTags(PackageName),
    /// `/-/package/<name>/dist-tags/<tag>`.
    DistTag(PackageName, String),
    /// Another `/-/...` endpoint this mirror does not serve.
    UnsupportedSpecial,
}

/// A validated npm package name, scoped or not.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PackageName(String);

impl PackageName {
    /// Validates a name such as `react` or `@types/node`.
    ///
    /// Old packages may contain capitals, so those are accepted; everything else follows
    /// npm's rules: URL-safe characters, no leading `.` or `_`, at most 214 characters.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        if name.is_empty() || name.len() > 214 {
            return None;
        }
        let valid = match name.strip_prefix('@') {
            Some(scoped) => {
                let (scope, bare) = scoped.split_once('/')?;
                valid_part(scope) && valid_part(bare)
            }
            None => valid_part(name),
        };
        valid.then(|| PackageName(name.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The name without its scope, as tarball file names use it.
    pub(crate) fn bare(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The form registries expect in a path: `@scope%2fname` for scoped names.
    pub(crate) fn upstream_path(&self) -> String {
        self.0.replacen('/', "%2f", 1)
    }
}

fn valid_part(part: &str) -> bool {
    !part.is_empty()
        && !part.starts_with(['.', '_'])
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~!'()*".contains(&b))
}

/// A tarball file name: a plain file name ending in `.tgz`.
pub(crate) fn valid_tarball_file(file: &str) -> bool {
    file.len() <= 255
        && file.ends_with(".tgz")
        && !file.starts_with('.')
        && file
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._+".contains(&b))
}

/// Parses a request path; `None` for paths that cannot name anything (a 400).
pub(crate) fn route(path: &str) -> Option<Route> {
    let decoded = percent_decode_str(path).decode_utf8().ok()?;
    let trimmed = decoded.trim_start_matches('/');
    if trimmed.is_empty() {
        return Some(Route::Root);
    }
    let segments: Vec<&str> = trimmed.trim_end_matches('/').split('/').collect();
    if segments[0] == "-" {
        return special(&segments[1..]);
    }
    let (name, rest) = split_name(&segments)?;
    match rest {
        [] => Some(Route::Packument(name)),
        ["-", file] if valid_tarball_file(file) => Some(Route::Tarball(name, (*file).to_owned())),
        ["-rev", rev] if valid_part(rev) => Some(Route::Revision(name, (*rev).to_owned())),
        ["-", file, "-rev", rev] if valid_tarball_file(file) && valid_part(rev) => Some(
            Route::TarballRevision(name, (*file).to_owned(), (*rev).to_owned()),
        ),
        [version] if valid_part(version) => Some(Route::Version(name, (*version).to_owned())),
        _ => None,
    }
}

/// Splits `[@scope, name, rest..]` or `[name, rest..]` into a package name and the rest.
fn split_name<'a, 'b>(segments: &'a [&'b str]) -> Option<(PackageName, &'a [&'b str])> {
    let scoped = segments.first()?.starts_with('@');
    let len = if scoped { 2 } else { 1 };
    let name = PackageName::parse(&segments.get(..len)?.join("/"))?;
    Some((name, &segments[len..]))
}

/// The `/-/...` endpoints.
fn special(segments: &[&str]) -> Option<Route> {
    match segments {
        ["ping"] => Some(Route::Ping),
        ["whoami"] => Some(Route::Whoami),
        ["user", "token", token] => Some(Route::Logout((*token).to_owned())),
        ["user", user] => {
            let name = user.strip_prefix("org.couchdb.user:")?;
            (!name.is_empty()).then(|| Route::Login(name.to_owned()))
        }
        ["package", rest @ ..] => {
            let (name, rest) = split_name(rest)?;
            match rest {
                ["dist-tags"] => Some(Route::DistTags(name)),
                ["dist-tags", tag] if valid_part(tag) => {
                    Some(Route::DistTag(name, (*tag).to_owned()))
                }
                _ => None,
            }
        }
        _ => Some(Route::UnsupportedSpecial),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> PackageName {
        PackageName::parse(n).unwrap()
    }

    #[test]
    fn routes_plain_and_scoped_names() {
        assert_eq!(route("/"), Some(Route::Root));
        assert_eq!(route("/-/ping"), Some(Route::Ping));
        assert_eq!(route("/react"), Some(Route::Packument(name("react"))));
        assert_eq!(
            route("/@types%2fnode"),
            Some(Route::Packument(name("@types/node")))
        );
        assert_eq!(
            route("/@types%2Fnode"),
            Some(Route::Packument(name("@types/node")))
        );
        assert_eq!(
            route("/@types/node"),
            Some(Route::Packument(name("@types/node")))
        );
        assert_eq!(
            route("/react/18.2.0"),
            Some(Route::Version(name("react"), "18.2.0".into()))
        );
        assert_eq!(
            route("/react/latest"),
            Some(Route::Version(name("react"), "latest".into()))
        );
        assert_eq!(
            route("/@a/b/-/b-1.0.0.tgz"),
            Some(Route::Tarball(name("@a/b"), "b-1.0.0.tgz".into()))
        );
        assert_eq!(
            route("/@a%2fb/-/b-1.0.0.tgz"),
            Some(Route::Tarball(name("@a/b"), "b-1.0.0.tgz".into()))
        );
        assert_eq!(
            route("/JSONStream"),
            Some(Route::Packument(name("JSONStream")))
        );
    }

    #[test]
    fn routes_write_endpoints() {
        assert_eq!(route("/-/whoami"), Some(Route::Whoami));
        assert_eq!(
            route("/-/user/org.couchdb.user:alice"),
            Some(Route::Login("alice".into()))
        );
        assert_eq!(
            route("/-/user/token/rmt_x"),
            Some(Route::Logout("rmt_x".into()))
        );
        assert_eq!(
            route("/-/package/@a%2fb/dist-tags"),
            Some(Route::DistTags(name("@a/b")))
        );
        assert_eq!(
            route("/-/package/x/dist-tags/beta"),
            Some(Route::DistTag(name("x"), "beta".into()))
        );
        assert_eq!(
            route("/@a%2fb/-rev/3-abc"),
            Some(Route::Revision(name("@a/b"), "3-abc".into()))
        );
        assert_eq!(
            route("/@a/b/-/b-1.0.0.tgz/-rev/3-abc"),
            Some(Route::TarballRevision(
                name("@a/b"),
                "b-1.0.0.tgz".into(),
                "3-abc".into()
            ))
        );
        assert_eq!(route("/-/v1/search"), Some(Route::UnsupportedSpecial));
        assert_eq!(route("/-/package/../dist-tags"), None);
    }

    #[test]
    fn refuses_traversal_and_bad_names() {
        for path in [
            "/..",
            "/../etc/passwd",
            "/%2e%2e",
            "/a/-/../../x.tgz",
            "/a/-/x.tar",
            "/@scope",
            "/_private",
            "/.hidden",
            "/a%00b",
            "/a b",
            "/@a/b/c/d",
            "/a/-/%2e.tgz",
        ] {
            assert_eq!(route(path), None, "{path} must be refused");
        }
        assert!(PackageName::parse(&"a".repeat(215)).is_none());
    }

    #[test]
    fn upstream_path_encodes_the_scope_separator() {
        assert_eq!(name("@a/b").upstream_path(), "@a%2fb");
        assert_eq!(name("@a/b").bare(), "b");
        assert_eq!(name("react").upstream_path(), "react");
    }
}
