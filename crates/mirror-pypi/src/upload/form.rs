//! Reading the legacy upload form: `multipart/form-data`, streamed.
//!
//! The file can be hundreds of megabytes, so it never sits in memory: it goes to an
//! anonymous spool file (gone with its handle, even after a crash) while sha256, md5 and
//! blake2b-256 are computed on the way, and is only copied into the blob store once every
//! check has passed. Of the text fields, only the few the mirror uses are kept, each
//! bounded; the rest (descriptions, classifiers, ...) are skipped without being buffered.
//!
//! multer stops reading at the closing boundary, so the body is lent to it and taken back
//! afterwards to check that it really ended there: an upload cut off after its last field
//! (a client that gave up, a connection that broke) is refused like any other cut-off
//! upload, rather than published while its client believes it failed.

use std::collections::BTreeMap;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest as _};
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use md5::Md5;
use sha2::Sha256;
use tokio::io::AsyncWriteExt as _;

use crate::error::PypiError;

/// The form fields the mirror reads; any other is skipped unread.
const KEPT_FIELDS: [&str; 11] = [
    ":action",
    "protocol_version",
    "name",
    "version",
    "filetype",
    "pyversion",
    "metadata_version",
    "sha256_digest",
    "md5_digest",
    "blake2_256_digest",
    "requires_python",
];
/// Longest value accepted for a kept field.
const MAX_FIELD_BYTES: usize = 16 * 1024;
/// The field holding the distribution file.
const CONTENT: &str = "content";

/// The kept text fields, by name.
pub(crate) type Fields = BTreeMap<&'static str, String>;

/// A read upload form.
#[derive(Debug)]
pub(crate) struct Form {
    pub(crate) fields: Fields,
    pub(crate) content: Option<Spooled>,
}

/// The uploaded file, spooled, with its digests.
#[derive(Debug)]
pub(crate) struct Spooled {
    /// The file name exactly as the client sent it, not yet checked.
    pub(crate) filename: String,
    pub(crate) file: std::fs::File,
    pub(crate) size: u64,
    /// Lowercase hex of each digest.
    pub(crate) sha256: String,
    pub(crate) md5: String,
    pub(crate) blake2_256: String,
}

/// Reads a form from a body stream with the given boundary, refusing a body over `limit`
/// bytes. `before_content` sees the fields read so far just before the file starts, so an
/// upload that cannot be accepted (a name the user may not write) is refused without
/// spooling its bytes.
pub(crate) async fn read_form<S, E>(
    stream: S,
    boundary: &str,
    limit: u64,
    spool_dir: Option<&Path>,
    before_content: &mut (dyn FnMut(&Fields) -> Result<(), PypiError> + Send),
) -> Result<Form, PypiError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit));
    let body = Arc::new(Mutex::new(Box::pin(stream)));
    let lent = Lent(Arc::clone(&body));
    let mut multipart = multer::Multipart::with_constraints(lent, boundary, constraints);
    let form = read_fields(&mut multipart, spool_dir, before_content).await?;
    drop(multipart);

    let body = Arc::try_unwrap(body)
        .map_err(|_| invalid("the request body is still in use"))?
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    expect_end(body).await?;
    Ok(form)
}

/// Bytes tolerated after the closing boundary (an epilogue, which clients do not send).
const MAX_EPILOGUE: usize = 64 * 1024;

/// Reads what is left of the body after the closing boundary, failing if the body was cut
/// off or goes on too long.
async fn expect_end<S, E>(mut body: Pin<Box<S>>) -> Result<(), PypiError>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    let mut epilogue = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|_| invalid("the request body could not be read"))?;
        epilogue += chunk.len();
        if epilogue > MAX_EPILOGUE {
            return Err(invalid("unexpected data after the end of the form"));
        }
    }
    Ok(())
}

/// A body stream lent to multer; the lender takes it back once multer is dropped.
struct Lent<S>(Arc<Mutex<Pin<Box<S>>>>);

impl<S: Stream> Stream for Lent<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut body = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        body.as_mut().poll_next(cx)
    }
}

async fn read_fields(
    multipart: &mut multer::Multipart<'_>,
    spool_dir: Option<&Path>,
    before_content: &mut (dyn FnMut(&Fields) -> Result<(), PypiError> + Send),
) -> Result<Form, PypiError> {
    let mut form = Form {
        fields: Fields::new(),
        content: None,
    };
    while let Some(field) = multipart.next_field().await.map_err(form_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == CONTENT {
            if form.content.is_some() {
                return Err(invalid("the form carries more than one content field"));
            }
            before_content(&form.fields)?;
            form.content = Some(spool(field, spool_dir).await?);
        } else if let Some(kept) = KEPT_FIELDS.iter().find(|k| **k == name) {
            let value = text(field, kept).await?;
            if form.fields.insert(kept, value).is_some() {
                return Err(invalid(format!("the form gives {kept} more than once")));
            }
        } else {
            skip(field).await?;
        }
    }
    Ok(form)
}

async fn text(mut field: multer::Field<'_>, name: &str) -> Result<String, PypiError> {
    let mut value = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(form_error)? {
        if value.len() + chunk.len() > MAX_FIELD_BYTES {
            return Err(invalid(format!(
                "{name} is longer than {MAX_FIELD_BYTES} bytes"
            )));
        }
        value.extend_from_slice(&chunk);
    }
    String::from_utf8(value).map_err(|_| invalid(format!("{name} is not UTF-8 text")))
}

async fn skip(mut field: multer::Field<'_>) -> Result<(), PypiError> {
    while field.chunk().await.map_err(form_error)?.is_some() {}
    Ok(())
}

async fn spool(
    mut field: multer::Field<'_>,
    spool_dir: Option<&Path>,
) -> Result<Spooled, PypiError> {
    let filename = field
        .file_name()
        .ok_or_else(|| invalid("the content field has no file name"))?
        .to_owned();
    let file = match spool_dir {
        Some(dir) => tempfile::tempfile_in(dir),
        None => tempfile::tempfile(),
    }
    .map_err(mirror_core::Error::storage)?;
    let mut writer = tokio::fs::File::from_std(file);
    let mut hasher = Hasher::default();
    while let Some(chunk) = field.chunk().await.map_err(form_error)? {
        hasher.update(&chunk);
        writer
            .write_all(&chunk)
            .await
            .map_err(mirror_core::Error::storage)?;
    }
    writer.flush().await.map_err(mirror_core::Error::storage)?;
    let file = writer.into_std().await;
    Ok(hasher.finish(filename, file))
}

/// The digests an upload form may declare, computed in one pass.
#[derive(Default)]
struct Hasher {
    sha256: Sha256,
    md5: Md5,
    blake2_256: Blake2b<U32>,
    size: u64,
}

impl Hasher {
    fn update(&mut self, chunk: &[u8]) {
        self.sha256.update(chunk);
        self.md5.update(chunk);
        self.blake2_256.update(chunk);
        self.size += chunk.len() as u64;
    }

    fn finish(self, filename: String, file: std::fs::File) -> Spooled {
        Spooled {
            filename,
            file,
            size: self.size,
            sha256: hex::encode(self.sha256.finalize()),
            md5: hex::encode(self.md5.finalize()),
            blake2_256: hex::encode(self.blake2_256.finalize()),
        }
    }
}

fn invalid(message: impl Into<String>) -> PypiError {
    PypiError::InvalidUpload(message.into())
}

/// A body over the limit is a 413; anything else wrong with it (cut short, no boundary, a
/// malformed part) a 400.
fn form_error(err: multer::Error) -> PypiError {
    match err {
        multer::Error::StreamSizeExceeded { limit }
        | multer::Error::FieldSizeExceeded { limit, .. } => PypiError::PayloadTooLarge(limit),
        multer::Error::StreamReadFailed(_) => invalid("the request body could not be read"),
        multer::Error::IncompleteStream | multer::Error::IncompleteFieldData { .. } => {
            invalid("the multipart body is truncated")
        }
        other => invalid(format!("malformed multipart body: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Seek as _};

    use futures_util::stream;

    use super::*;

    const BOUNDARY: &str = "XyZ";

    fn part(name: &str, filename: Option<&str>, value: &[u8]) -> Vec<u8> {
        let filename = filename.map_or_else(String::new, |f| format!("; filename=\"{f}\""));
        let mut out = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"{filename}\r\n\r\n"
        )
        .into_bytes();
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
        out
    }

    fn body(parts: &[Vec<u8>]) -> Vec<u8> {
        let mut out = parts.concat();
        out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        out
    }

    async fn read(body: Vec<u8>, limit: u64) -> Result<Form, PypiError> {
        // Small chunks, so that boundaries and fields straddle them.
        let chunks: Vec<Result<Bytes, std::io::Error>> = body
            .chunks(7)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        read_form(stream::iter(chunks), BOUNDARY, limit, None, &mut |_| Ok(())).await
    }

    #[tokio::test]
    async fn keeps_known_fields_and_spools_the_file_with_its_digests() {
        let form = body(&[
            part("name", None, b"demo"),
            part("description", None, &[b'x'; 100_000]),
            part("classifiers", None, b"A"),
            part("classifiers", None, b"B"),
            part("content", Some("demo-1.0.tar.gz"), b"hello"),
        ]);
        let mut form = read(form, 1 << 20).await.unwrap();

        assert_eq!(form.fields.get("name").map(String::as_str), Some("demo"));
        assert_eq!(form.fields.len(), 1, "unknown fields are skipped");
        let content = form.content.as_mut().unwrap();
        assert_eq!(content.filename, "demo-1.0.tar.gz");
        assert_eq!(content.size, 5);
        assert_eq!(
            content.sha256,
            mirror_core::digest::sha256_of(b"hello").hex()
        );
        assert_eq!(content.md5, "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(
            content.blake2_256,
            "324dcf027dd4a30a932c441f365a25e86b173defa4b8e58948253471b81b72cf"
        );
        let mut spooled = String::new();
        content.file.rewind().unwrap();
        content.file.read_to_string(&mut spooled).unwrap();
        assert_eq!(spooled, "hello");
    }

    #[tokio::test]
    async fn refuses_a_body_cut_off_after_its_closing_boundary() {
        let form = body(&[
            part("name", None, b"demo"),
            part("content", Some("f"), b"x"),
        ]);
        // The whole form arrived; the connection broke before the announced length did,
        // which the server learns only a moment later.
        let broken = stream::once(async {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "cut",
            ))
        });
        let chunks = stream::iter([Ok(Bytes::from(form))]).chain(broken);
        let read = read_form(chunks, BOUNDARY, 1 << 20, None, &mut |_| Ok(())).await;
        assert!(matches!(read, Err(PypiError::InvalidUpload(_))), "{read:?}");
    }

    #[tokio::test]
    async fn refuses_bad_forms() {
        let cases: [(Vec<u8>, u16, &str); 6] = [
            (
                body(&[part("name", None, b"a"), part("name", None, b"b")]),
                400,
                "more than once",
            ),
            (body(&[part("content", None, b"x")]), 400, "no file name"),
            (
                body(&[part("version", None, &[b'1'; MAX_FIELD_BYTES + 1])]),
                400,
                "longer than",
            ),
            (body(&[part("name", None, b"\xff")]), 400, "not UTF-8"),
            (
                part("content", Some("a.whl"), b"cut short"),
                400,
                "truncated",
            ),
            (
                body(&[part("content", Some("a.whl"), &[0; 100_000])]),
                413,
                "exceeds",
            ),
        ];
        for (form, status, message) in cases {
            let err = read(form, 64 * 1024).await.unwrap_err();
            assert_eq!(err.status().as_u16(), status, "{err}");
            assert!(err.to_string().contains(message), "{err}");
        }
    }

    #[tokio::test]
    async fn the_gate_runs_before_the_file_is_read() {
        let form = body(&[
            part("name", None, b"secret"),
            part("content", Some("a.whl"), b"x"),
        ]);
        let chunks = vec![Ok::<_, std::io::Error>(Bytes::from(form))];
        let mut seen = None;
        let refused = read_form(
            stream::iter(chunks),
            BOUNDARY,
            1 << 20,
            None,
            &mut |fields| {
                seen = fields.get("name").cloned();
                Err(PypiError::Forbidden("no".into()))
            },
        )
        .await;
        assert!(matches!(refused, Err(PypiError::Forbidden(_))));
        assert_eq!(seen.as_deref(), Some("secret"));
    }
}
