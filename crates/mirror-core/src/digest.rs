//! Digests in the forms registries write them, and a hasher that checks several at once.
//!
//! Blobs are addressed by sha256, but ecosystems declare other algorithms (npm's
//! `integrity` is usually sha512, its `shasum` sha1), so one pass over a body computes
//! sha256 plus whatever the caller expects to verify.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use sha1::Sha1;
use sha2::{Digest as _, Sha256, Sha512};

use crate::error::{Error, Result};

/// A hash algorithm that registries use to name or check content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Algorithm {
    /// SHA-1, npm's legacy `shasum` and Maven's `.sha1`.
    Sha1,
    /// SHA-256, the content address of every stored blob.
    Sha256,
    /// SHA-512, npm's `integrity`.
    Sha512,
}

impl Algorithm {
    /// The lowercase name used in `algo:hex` and SRI strings.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn output_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha1" => Some(Algorithm::Sha1),
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

/// A digest: an algorithm and its raw output.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    bytes: Box<[u8]>,
}

impl Digest {
    /// Wraps raw digest bytes, checking their length against the algorithm.
    pub fn from_bytes(algorithm: Algorithm, bytes: &[u8]) -> Result<Self> {
        if bytes.len() != algorithm.output_len() {
            return Err(Error::Invalid(format!(
                "{} digest of wrong length",
                algorithm.name()
            )));
        }
        Ok(Digest {
            algorithm,
            bytes: bytes.into(),
        })
    }

    /// Parses lowercase or uppercase hex for the given algorithm (`shasum`, `.sha1` files).
    pub fn from_hex(algorithm: Algorithm, text: &str) -> Result<Self> {
        let bytes = hex::decode(text.trim())
            .map_err(|_| Error::Invalid(format!("{} digest is not hex", algorithm.name())))?;
        Self::from_bytes(algorithm, &bytes)
    }

    /// Parses a Subresource Integrity string such as npm's `sha512-<base64>`.
    ///
    /// When the string lists several hashes, the strongest supported one wins, as the SRI
    /// specification asks.
    pub fn from_sri(text: &str) -> Result<Self> {
        text.split_ascii_whitespace()
            .filter_map(|item| {
                let (name, rest) = item.split_once('-')?;
                let algorithm = Algorithm::from_name(name)?;
                let b64 = rest.split('?').next().unwrap_or(rest);
                let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
                Digest::from_bytes(algorithm, &bytes).ok()
            })
            .max_by_key(|digest| digest.algorithm)
            .ok_or_else(|| Error::Invalid("no supported hash in integrity string".into()))
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Lowercase hex of the digest, without the algorithm.
    pub fn hex(&self) -> String {
        hex::encode(&self.bytes)
    }

    /// The SRI form, `sha512-<base64>`.
    pub fn to_sri(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.bytes);
        format!("{}-{b64}", self.algorithm.name())
    }
}

/// `algo:hex`, the OCI form, also used as the canonical text form here.
impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Parses the `algo:hex` form.
impl FromStr for Digest {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let (name, hex) = text
            .split_once(':')
            .ok_or_else(|| Error::Invalid("digest lacks algorithm".into()))?;
        let algorithm = Algorithm::from_name(name)
            .ok_or_else(|| Error::Invalid(format!("unsupported digest algorithm {name:?}")))?;
        if hex.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(Error::Invalid("digest hex must be lowercase".into()));
        }
        Digest::from_hex(algorithm, hex)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Computes sha256 (always) and any other algorithms asked for, in one pass.
#[derive(Debug, Clone, Default)]
pub struct MultiHasher {
    sha256: Sha256,
    sha1: Option<Sha1>,
    sha512: Option<Sha512>,
    len: u64,
}

impl MultiHasher {
    /// A hasher that also computes each algorithm of `extra`.
    pub fn new(extra: impl IntoIterator<Item = Algorithm>) -> Self {
        let mut hasher = MultiHasher::default();
        for algorithm in extra {
            match algorithm {
                Algorithm::Sha1 => hasher.sha1 = Some(Sha1::new()),
                Algorithm::Sha512 => hasher.sha512 = Some(Sha512::new()),
                Algorithm::Sha256 => {}
            }
        }
        hasher
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        if let Some(h) = &mut self.sha1 {
            h.update(bytes);
        }
        if let Some(h) = &mut self.sha512 {
            h.update(bytes);
        }
        self.len += bytes.len() as u64;
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing was fed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digests computed: sha256 first, then the extras.
    pub fn finish(self) -> Digests {
        let sha256 = digest_of(Algorithm::Sha256, &self.sha256.finalize());
        let mut others = Vec::new();
        if let Some(h) = self.sha1 {
            others.push(digest_of(Algorithm::Sha1, &h.finalize()));
        }
        if let Some(h) = self.sha512 {
            others.push(digest_of(Algorithm::Sha512, &h.finalize()));
        }
        Digests {
            sha256,
            others,
            len: self.len,
        }
    }
}

fn digest_of(algorithm: Algorithm, bytes: &[u8]) -> Digest {
    Digest {
        algorithm,
        bytes: bytes.into(),
    }
}

/// The output of a [`MultiHasher`].
#[derive(Debug, Clone)]
pub struct Digests {
    /// The content address.
    pub sha256: Digest,
    others: Vec<Digest>,
    /// Bytes hashed.
    pub len: u64,
}

impl Digests {
    /// The computed digest of an algorithm, if it was asked for.
    pub fn get(&self, algorithm: Algorithm) -> Option<&Digest> {
        if algorithm == Algorithm::Sha256 {
            return Some(&self.sha256);
        }
        self.others.iter().find(|d| d.algorithm == algorithm)
    }

    /// Checks every expected digest, failing on the first that differs.
    pub fn verify(&self, expected: &[Digest]) -> Result<()> {
        for want in expected {
            let Some(got) = self.get(want.algorithm) else {
                return Err(Error::Invalid(format!(
                    "{} was not computed",
                    want.algorithm.name()
                )));
            };
            if got != want {
                return Err(Error::DigestMismatch {
                    expected: want.clone(),
                    actual: got.clone(),
                });
            }
        }
        Ok(())
    }
}

/// sha256 and each of `extra` over a byte slice, for small in-memory bodies.
pub fn digests_of(bytes: &[u8], extra: impl IntoIterator<Item = Algorithm>) -> Digests {
    let mut hasher = MultiHasher::new(extra);
    hasher.update(bytes);
    hasher.finish()
}

/// sha256 of a byte slice, for small in-memory documents.
pub fn sha256_of(bytes: &[u8]) -> Digest {
    digest_of(Algorithm::Sha256, &Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_oci_form() {
        let text = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let digest: Digest = text.parse().unwrap();
        assert_eq!(digest.to_string(), text);
        assert_eq!(digest, sha256_of(b"hello"));
    }

    #[test]
    fn rejects_bad_digests() {
        assert!("md5:abcd".parse::<Digest>().is_err());
        assert!("sha256:abcd".parse::<Digest>().is_err());
        assert!("sha256".parse::<Digest>().is_err());
        let upper = "sha256:2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824";
        assert!(upper.parse::<Digest>().is_err());
    }

    #[test]
    fn sri_picks_strongest_supported() {
        let mut hasher = MultiHasher::new([Algorithm::Sha1, Algorithm::Sha512]);
        hasher.update(b"hello");
        let digests = hasher.finish();
        let sha512 = digests.get(Algorithm::Sha512).unwrap().clone();
        let sha1 = digests.get(Algorithm::Sha1).unwrap().clone();
        let sri = format!("{} {} md5-AAAA", sha1.to_sri(), sha512.to_sri());
        assert_eq!(Digest::from_sri(&sri).unwrap(), sha512);
        assert!(digests.verify(&[sha512, sha1]).is_ok());
    }

    #[test]
    fn verify_reports_mismatch() {
        let mut hasher = MultiHasher::new([Algorithm::Sha1]);
        hasher.update(b"hello");
        let wrong = Digest::from_hex(Algorithm::Sha1, &"00".repeat(20)).unwrap();
        let err = hasher.finish().verify(&[wrong]).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }));
    }
}
