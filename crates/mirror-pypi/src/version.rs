//! PEP 440 versions, read so that the spellings of one version compare equal.
//!
//! An upload names its version up to three times: the form's `version`, the file name and
//! the wheel's `METADATA`. Tools spell them differently (`1.0-RC1`, `1.0rc1`, `1.0_rc1` in
//! a wheel name, `1.0` beside `1.0.0`), so they are compared in PEP 440's normal form, the
//! one `packaging.version.Version` prints, and with trailing `.0`s of the release dropped,
//! as PyPI does when it matches a file to its release. Numbers stay text (leading zeros
//! stripped), so no version is too long to compare.

/// Longest version accepted; real ones are far shorter.
const MAX_VERSION_LEN: usize = 128;

/// A valid PEP 440 version, in parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version {
    epoch: String,
    release: Vec<String>,
    /// `a`, `b` or `rc`, and its number.
    pre: Option<(&'static str, String)>,
    post: Option<String>,
    dev: Option<String>,
    local: Vec<String>,
}

impl Version {
    /// Reads any spelling PEP 440 allows; `None` when it is not a version.
    pub(crate) fn parse(raw: &str) -> Option<Self> {
        let text = raw.trim().to_ascii_lowercase();
        if text.is_empty() || text.len() > MAX_VERSION_LEN || !text.is_ascii() {
            return None;
        }
        let mut cursor = Cursor {
            text: text.as_bytes(),
            at: 0,
        };
        cursor.eat("v");
        let version = cursor.version()?;
        cursor.at_end().then_some(version)
    }

    /// The normal form: `1!2.0rc1.post0.dev3+ubuntu.1`.
    pub(crate) fn normalized(&self) -> String {
        self.render(&self.release)
    }

    /// The normal form with trailing zeros of the release dropped: `1.0.0` and `1` meet.
    pub(crate) fn canonical(&self) -> String {
        let significant = self
            .release
            .iter()
            .rposition(|n| n != "0")
            .map_or(1, |last| last + 1);
        self.render(&self.release[..significant])
    }

    fn render(&self, release: &[String]) -> String {
        let mut out = String::new();
        if self.epoch != "0" {
            out.push_str(&format!("{}!", self.epoch));
        }
        out.push_str(&release.join("."));
        if let Some((label, number)) = &self.pre {
            out.push_str(&format!("{label}{number}"));
        }
        if let Some(number) = &self.post {
            out.push_str(&format!(".post{number}"));
        }
        if let Some(number) = &self.dev {
            out.push_str(&format!(".dev{number}"));
        }
        if !self.local.is_empty() {
            out.push_str(&format!("+{}", self.local.join(".")));
        }
        out
    }
}

/// True when two spellings name one version.
pub(crate) fn same_version(a: &str, b: &str) -> bool {
    match (Version::parse(a), Version::parse(b)) {
        (Some(a), Some(b)) => a.canonical() == b.canonical(),
        _ => false,
    }
}

/// Pre-release spellings, longest first so that `alpha` is not read as `a` + `lpha`.
const PRE_LABELS: [(&str, &str); 8] = [
    ("alpha", "a"),
    ("beta", "b"),
    ("preview", "rc"),
    ("pre", "rc"),
    ("rc", "rc"),
    ("a", "a"),
    ("b", "b"),
    ("c", "rc"),
];
const POST_LABELS: [&str; 3] = ["post", "rev", "r"];

/// Walks a lowercase version string, as PEP 440's grammar reads it.
struct Cursor<'a> {
    text: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn version(&mut self) -> Option<Version> {
        let first = self.number()?;
        let (epoch, first_release) = if self.eat("!") {
            (first, self.number()?)
        } else {
            ("0".to_owned(), first)
        };
        let mut release = vec![first_release];
        while self.peek() == Some(b'.') && self.peek_at(1).is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
            release.push(self.number()?);
        }
        Some(Version {
            epoch,
            release,
            pre: self.pre(),
            post: self.post(),
            dev: self.labelled(&["dev"]).map(|(_, n)| n),
            local: self.local()?,
        })
    }

    fn pre(&mut self) -> Option<(&'static str, String)> {
        let labels: Vec<&str> = PRE_LABELS.iter().map(|(spelling, _)| *spelling).collect();
        let (spelling, number) = self.labelled(&labels)?;
        let canonical = PRE_LABELS
            .iter()
            .find(|(s, _)| *s == spelling)
            .map(|(_, c)| *c)?;
        Some((canonical, number))
    }

    /// `-N`, or a post label with an optional number.
    fn post(&mut self) -> Option<String> {
        let start = self.at;
        if self.eat("-") {
            if let Some(number) = self.number() {
                return Some(number);
            }
            self.at = start;
        }
        self.labelled(&POST_LABELS).map(|(_, n)| n)
    }

    /// `[sep] label [sep] [number]`, the number defaulting to 0; nothing is consumed when
    /// no label follows.
    fn labelled(&mut self, labels: &[&'static str]) -> Option<(&'static str, String)> {
        let start = self.at;
        self.separator();
        let Some(label) = labels.iter().copied().find(|l| self.eat(l)) else {
            self.at = start;
            return None;
        };
        let before_separator = self.at;
        self.separator();
        let number = self.number().unwrap_or_else(|| {
            self.at = before_separator;
            "0".to_owned()
        });
        Some((label, number))
    }

    /// `+segment[.segment...]`, segments of letters and digits joined by `-`, `_` or `.`.
    fn local(&mut self) -> Option<Vec<String>> {
        if !self.eat("+") {
            return Some(Vec::new());
        }
        let rest = std::str::from_utf8(&self.text[self.at..]).ok()?;
        self.at = self.text.len();
        rest.split(['-', '_', '.'])
            .map(|segment| {
                let ok = !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_alphanumeric());
                ok.then(|| {
                    if segment.bytes().all(|b| b.is_ascii_digit()) {
                        strip_zeros(segment)
                    } else {
                        segment.to_owned()
                    }
                })
            })
            .collect()
    }

    fn number(&mut self) -> Option<String> {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        let digits = std::str::from_utf8(&self.text[start..self.at]).ok()?;
        (!digits.is_empty()).then(|| strip_zeros(digits))
    }

    fn separator(&mut self) {
        if matches!(self.peek(), Some(b'-' | b'_' | b'.')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, literal: &str) -> bool {
        let found = self.text[self.at..].starts_with(literal.as_bytes());
        if found {
            self.at += literal.len();
        }
        found
    }

    fn peek(&self) -> Option<u8> {
        self.peek_at(0)
    }

    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.text.get(self.at + offset).copied()
    }

    fn at_end(&self) -> bool {
        self.at == self.text.len()
    }
}

fn strip_zeros(digits: &str) -> String {
    match digits.trim_start_matches('0') {
        "" => "0".to_owned(),
        rest => rest.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(raw: &str) -> Option<String> {
        Version::parse(raw).map(|v| v.normalized())
    }

    #[test]
    fn normalizes_as_packaging_does() {
        for (raw, normalized) in [
            ("1.0", "1.0"),
            ("v1.0", "1.0"),
            (" 1.0 ", "1.0"),
            ("01.002", "1.2"),
            ("1!2.0", "1!2.0"),
            ("0!2.0", "2.0"),
            ("1.0a1", "1.0a1"),
            ("1.0-ALPHA.1", "1.0a1"),
            ("1.0beta", "1.0b0"),
            ("1.0c2", "1.0rc2"),
            ("1.0-pre_3", "1.0rc3"),
            ("1.0preview", "1.0rc0"),
            ("1.0-1", "1.0.post1"),
            ("1.0.post", "1.0.post0"),
            ("1.0-rev2", "1.0.post2"),
            ("1.0r", "1.0.post0"),
            ("1.0.dev", "1.0.dev0"),
            ("1.0-dev_4", "1.0.dev4"),
            ("1.0rc1.post2.dev3", "1.0rc1.post2.dev3"),
            ("1.0a.dev", "1.0a0.dev0"),
            ("1.0+Ubuntu-01_x", "1.0+ubuntu.1.x"),
            ("1.0_rc1", "1.0rc1"),
            ("2024.01.31", "2024.1.31"),
        ] {
            assert_eq!(normal(raw).as_deref(), Some(normalized), "{raw}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_version() {
        for raw in [
            "",
            "v",
            "1.",
            ".1",
            "1..0",
            "1.0-",
            "1.0+",
            "1.0+a..b",
            "a1",
            "1.0 beta",
            "1.0/..",
            "1!",
            "!1",
            "1.0.dev.post",
            "1,0",
            "1.0ü",
            "1.0\n2",
        ] {
            assert_eq!(normal(raw), None, "{raw:?} must be refused");
        }
        assert_eq!(normal(&"1".repeat(MAX_VERSION_LEN + 1)), None);
    }

    #[test]
    fn compares_spellings_of_one_version() {
        assert!(same_version("1.0.0", "1"));
        assert!(same_version("1.0-RC1", "1.0rc1"));
        assert!(same_version("1.0_post1", "1.0.post1"));
        assert!(same_version("1.0.0+a.0", "1+a.0"));
        assert!(!same_version("1.0", "1.0.1"));
        assert!(!same_version("1.0a1", "1.0"));
        assert!(!same_version("1.0+a", "1.0"));
        assert!(!same_version("junk", "junk"));
    }

    /// Every version over a small alphabet up to six characters: the normal form of a valid
    /// one is valid, is its own normal form, and has the same canonical form.
    #[test]
    fn normal_forms_are_stable() {
        let alphabet = ["1", "0", ".", "-", "a", "post", "dev", "+", "!", "r"];
        let mut layer = vec![String::new()];
        for _ in 0..5 {
            layer = layer
                .iter()
                .flat_map(|v| alphabet.iter().map(move |c| format!("{v}{c}")))
                .collect();
            for raw in &layer {
                let Some(version) = Version::parse(raw) else {
                    continue;
                };
                let normalized = version.normalized();
                let again = Version::parse(&normalized)
                    .unwrap_or_else(|| panic!("{raw} -> {normalized} does not parse"));
                assert_eq!(again.normalized(), normalized, "{raw}");
                assert_eq!(again.canonical(), version.canonical(), "{raw}");
            }
        }
    }
}
