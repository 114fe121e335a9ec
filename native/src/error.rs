//! The one error type of the native core, converted to Python once.

use pyo3::exceptions::PyException;
use pyo3::PyErr;

pyo3::create_exception!(_native, NativeError, PyException, "An error in coral's native core.");

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op}: {source}")]
    Os { op: &'static str, source: std::io::Error },
    #[error("map fd {fd} is not a BPF ring buffer (map type {map_type})")]
    NotRingBuffer { fd: i32, map_type: u32 },
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub fn last_os(op: &'static str) -> Self {
        Error::Os { op, source: std::io::Error::last_os_error() }
    }
}

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        NativeError::new_err(err.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;
