//! Project and file names, validated before they become storage keys, upstream paths or
//! parts of a served page.
//!
//! PEP 503 makes `Foo.Bar`, `foo_bar` and `FOO--BAR` one project: runs of `-`, `_` and `.`
//! collapse to one `-` and letters are lowercased. The mirror keys everything by that
//! normalized form, so each project is fetched and stored once whichever spelling a
//! client used, and answers other spellings with a redirect.

/// Longest project name accepted; PyPI's longest are well under this.
const MAX_NAME_LEN: usize = 200;
/// Longest file name accepted, a common file system limit.
const MAX_FILE_LEN: usize = 255;

/// A valid project name in its PEP 503 normalized form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ProjectName(String);

impl ProjectName {
    /// Validates a name as PEP 508 allows it (ASCII letters and digits, with `-`, `_`
    /// and `.` inside) and normalizes it.
    pub(crate) fn parse(raw: &str) -> Option<Self> {
        is_valid_name(raw).then(|| ProjectName(normalize(raw)))
    }

    /// The normalized name: lowercase letters, digits and single dashes.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ProjectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// True for names PEP 508 accepts: letters and digits at both ends, `-_.` allowed inside.
pub(crate) fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    name.len() <= MAX_NAME_LEN
        && first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || is_separator(*b))
}

/// PEP 503 normalization: `re.sub(r"[-_.]+", "-", name).lower()`.
pub(crate) fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_separator_run = false;
    for c in name.chars() {
        if c.is_ascii() && is_separator(c as u8) {
            if !in_separator_run {
                out.push('-');
            }
            in_separator_run = true;
        } else {
            out.push(c.to_ascii_lowercase());
            in_separator_run = false;
        }
    }
    out
}

fn is_separator(b: u8) -> bool {
    matches!(b, b'-' | b'_' | b'.')
}

/// True for a plain distribution file name: one path segment of URL-safe characters that
/// no file system or URL parser treats specially (`..`, `/`, `\`, `%`, a leading dot).
pub(crate) fn is_valid_file_name(file: &str) -> bool {
    !file.is_empty()
        && file.len() <= MAX_FILE_LEN
        && !file.starts_with('.')
        && file
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+!~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_as_pep_503_does() {
        for (raw, normalized) in [
            ("requests", "requests"),
            ("Django", "django"),
            ("zope.interface", "zope-interface"),
            ("Foo__Bar", "foo-bar"),
            ("a-_.-b", "a-b"),
            ("typing_extensions", "typing-extensions"),
            ("A1.b2_C3", "a1-b2-c3"),
        ] {
            assert_eq!(
                ProjectName::parse(raw).unwrap().as_str(),
                normalized,
                "{raw}"
            );
        }
    }

    #[test]
    fn refuses_names_pep_508_does_not_allow() {
        for raw in [
            "", "-a", "a-", ".a", "_a", "a/b", "..", "a b", "a%2fb", "ä", "a\0", "a:b",
        ] {
            assert!(ProjectName::parse(raw).is_none(), "{raw:?} must be refused");
        }
        assert!(ProjectName::parse(&"a".repeat(MAX_NAME_LEN + 1)).is_none());
    }

    /// Every name over a small alphabet up to five characters: valid names normalize to a
    /// valid, lowercase, idempotent form with no separator runs, and spellings that differ
    /// only in case and separators meet in one form.
    #[test]
    fn normalization_properties_hold_exhaustively() {
        let alphabet = ['a', 'B', '1', '-', '_', '.'];
        let mut names = vec![String::new()];
        for _ in 0..5 {
            let longer: Vec<String> = names
                .iter()
                .filter(|n| n.len() == names.last().map_or(0, String::len))
                .flat_map(|n| alphabet.iter().map(move |c| format!("{n}{c}")))
                .collect();
            names.extend(longer);
        }
        for name in &names {
            let Some(parsed) = ProjectName::parse(name) else {
                continue;
            };
            let n = parsed.as_str();
            assert!(is_valid_name(n), "{name} -> {n}");
            assert_eq!(normalize(n), n, "idempotent for {name}");
            assert!(!n.contains("--") && !n.chars().any(|c| c.is_ascii_uppercase()));
            let respelled = name.replace('-', "_.").to_ascii_uppercase();
            assert_eq!(ProjectName::parse(&respelled).as_ref(), Some(&parsed));
        }
    }

    #[test]
    fn file_names_are_single_safe_segments() {
        for ok in [
            "requests-2.32.3-py3-none-any.whl",
            "requests-2.32.3.tar.gz",
            "pkg-1.0+local.1-py3-none-any.whl",
            "pkg-1!2.0.zip",
        ] {
            assert!(is_valid_file_name(ok), "{ok}");
        }
        for bad in [
            "", ".", "..", "../x.whl", "a/b.whl", "a\\b.whl", ".hidden", "a%2f.whl", "a b.whl",
            "a\0.whl", "a?b", "a#b",
        ] {
            assert!(!is_valid_file_name(bad), "{bad:?} must be refused");
        }
    }
}
