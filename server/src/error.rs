//! How a service says why it failed: a kind the caller can act on, a stable
//! code and a message for people. Services know nothing of HTTP; only `api/`
//! turns a [`ServiceError`] into a response (`api::error`), and the
//! in-process agent adapter into a `PlatformError`.

/// What sort of failure, in the caller's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is malformed or breaks a rule; fix it and retry.
    Invalid,
    /// Who is asking is not established.
    Unauthenticated,
    /// The caller may not do this.
    Forbidden,
    /// The thing does not exist, or the caller may not know it does.
    NotFound,
    /// The request clashes with the current state (a duplicate, a race).
    Conflict,
    /// The input is larger than the configured limit.
    TooLarge,
    /// Well-formed, but its content cannot be processed (e.g. an unreadable document).
    Unprocessable,
    /// A budget is spent; retry later.
    RateLimited,
    /// A dependency is down or not ready; retry later.
    Unavailable,
    /// A bug or an unexpected storage failure; the detail is in the log.
    Internal,
}

/// A service's failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message} ({code})")]
pub struct ServiceError {
    pub kind: ErrorKind,
    /// Stable machine-readable code, e.g. `not_found`, `label_above_clearance`.
    pub code: &'static str,
    pub message: String,
}

impl ServiceError {
    /// An error of a kind, with a stable code and message.
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
        }
    }
    /// Code `invalid_input`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, "invalid_input", message)
    }
    /// Code `unauthenticated`.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, "unauthenticated", message)
    }
    /// Code `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, "forbidden", message)
    }
    /// Code `not_found`: "<what> not found".
    pub fn not_found(what: &str) -> Self {
        Self::new(
            ErrorKind::NotFound,
            "not_found",
            format!("{what} not found"),
        )
    }
    /// Code `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, "conflict", message)
    }
    /// Code `rate_limited`.
    pub fn rate_limited(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::RateLimited, "rate_limited", message)
    }
    /// Code `internal`; the detail goes to the log, not to the caller.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            ErrorKind::Internal,
            "internal",
            "internal error; see the server log",
        )
    }
}

impl From<crate::ids::IdError> for ServiceError {
    fn from(e: crate::ids::IdError) -> Self {
        ServiceError::invalid(e.to_string())
    }
}

impl From<warroom_types::ChoiceError> for ServiceError {
    fn from(e: warroom_types::ChoiceError) -> Self {
        ServiceError::invalid(e.to_string())
    }
}

impl From<sea_orm::DbErr> for ServiceError {
    fn from(e: sea_orm::DbErr) -> Self {
        ServiceError::internal(format!("database: {e}"))
    }
}

/// Result of a service call.
pub type ServiceResult<T> = Result<T, ServiceError>;
