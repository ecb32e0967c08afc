//! The legacy upload API that twine speaks: reading the multipart form, checking it against
//! itself and the file, and reading a wheel's core metadata. Nothing here stores anything:
//! the service does, once every check has passed.

mod check;
mod form;
mod wheel;

pub(crate) use self::check::{check_upload, project_of, Upload};
pub(crate) use self::form::{read_form, Fields, Spooled};
pub(crate) use self::wheel::core_metadata;
