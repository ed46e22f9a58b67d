//! How a service says why it failed. Each service has its own error enum
//! (`ChatError`, `KnowledgeError`, `AgentsError`, `InsightsError`,
//! `UsersError`, `SessionError`), made by [`service_error!`]: the failures
//! every service reports (bad input, not found, forbidden, ...), its own
//! named ones, and the failures of the services it calls, kept whole.
//! [`ServiceError`] is the failure of the shared parts below the services
//! (directory, policy, audit log, storage).
//!
//! Every one of them is a [`Failure`]: a kind the caller can act on, a stable
//! code and a message for people. Services know nothing of HTTP; only `api/`
//! turns a failure into a response (`api::error`), and only the in-process
//! agent adapter into a `PlatformError`.

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

/// What every failure tells its caller.
pub trait Failure: std::error::Error + Send + Sync + 'static {
    /// What sort of failure, in the caller's terms.
    fn kind(&self) -> ErrorKind;
    /// Stable machine-readable code, e.g. `not_found`, `label_below_citations`.
    fn code(&self) -> &'static str;
    /// The message for people.
    fn message(&self) -> String {
        self.to_string()
    }
}

/// A failure of a shared part below the services.
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

/// Result of a call to a shared part.
pub type ServiceResult<T> = Result<T, ServiceError>;

impl Failure for ServiceError {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
    fn code(&self) -> &'static str {
        self.code
    }
    fn message(&self) -> String {
        self.message.clone()
    }
}

/// Define a service's error enum and its result type.
///
/// Every enum has the variants all services report: `Invalid`,
/// `Unauthenticated`, `Forbidden`, `NotFound`, `Conflict`, `RateLimited`,
/// `Internal` (logged where it is made; the caller sees only that it
/// happened) and `Shared` (a [`ServiceError`] of a part below). Then come the
/// service's own failures, each a message with its kind and stable code, and
/// last the errors of other services it calls, which keep their own kind and
/// code. Malformed ids, unknown choices and database errors convert with `?`.
macro_rules! service_error {
    (
        $(#[$doc:meta])*
        pub enum $name:ident / $result:ident {
            $( $(#[$vdoc:meta])* $var:ident => $kind:ident, $code:literal; )*
        }
        from { $( $(#[$fdoc:meta])* $src:ident($srcty:ty), )* }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, thiserror::Error)]
        pub enum $name {
            /// The input is malformed or breaks a rule; fix it and retry.
            #[error("{0}")]
            Invalid(String),
            /// Who is asking is not established.
            #[error("{0}")]
            Unauthenticated(String),
            /// The caller may not do this.
            #[error("{0}")]
            Forbidden(String),
            /// The thing does not exist, or the caller may not know it does.
            #[error("{0} not found")]
            NotFound(&'static str),
            /// The request clashes with the current state.
            #[error("{0}")]
            Conflict(String),
            /// A budget is spent; retry later.
            #[error("{0}")]
            RateLimited(String),
            /// A bug or an unexpected storage failure; the detail is in the log.
            #[error("internal error; see the server log")]
            Internal,
            /// A failure of a shared part (directory, policy, audit log, storage).
            #[error(transparent)]
            Shared(#[from] $crate::error::ServiceError),
            $( $(#[$vdoc])* #[error("{0}")] $var(String), )*
            $( $(#[$fdoc])* #[error(transparent)] $src(#[from] $srcty), )*
        }

        /// The result of a call to this service.
        pub type $result<T> = Result<T, $name>;

        #[allow(dead_code)]
        impl $name {
            /// `Invalid` with this message.
            pub fn invalid(message: impl Into<String>) -> Self {
                Self::Invalid(message.into())
            }
            /// `Unauthenticated` with this message.
            pub fn unauthenticated(message: impl Into<String>) -> Self {
                Self::Unauthenticated(message.into())
            }
            /// `Forbidden` with this message.
            pub fn forbidden(message: impl Into<String>) -> Self {
                Self::Forbidden(message.into())
            }
            /// "<what> not found".
            pub fn not_found(what: &'static str) -> Self {
                Self::NotFound(what)
            }
            /// `Conflict` with this message.
            pub fn conflict(message: impl Into<String>) -> Self {
                Self::Conflict(message.into())
            }
            /// `RateLimited` with this message.
            pub fn rate_limited(message: impl Into<String>) -> Self {
                Self::RateLimited(message.into())
            }
            /// `Internal`; the detail goes to the log, not to the caller.
            pub fn internal(detail: impl std::fmt::Display) -> Self {
                tracing::error!(error = %detail, "internal error");
                Self::Internal
            }
        }

        impl $crate::error::Failure for $name {
            fn kind(&self) -> $crate::error::ErrorKind {
                use $crate::error::ErrorKind;
                match self {
                    Self::Invalid(_) => ErrorKind::Invalid,
                    Self::Unauthenticated(_) => ErrorKind::Unauthenticated,
                    Self::Forbidden(_) => ErrorKind::Forbidden,
                    Self::NotFound(_) => ErrorKind::NotFound,
                    Self::Conflict(_) => ErrorKind::Conflict,
                    Self::RateLimited(_) => ErrorKind::RateLimited,
                    Self::Internal => ErrorKind::Internal,
                    Self::Shared(e) => e.kind,
                    $( Self::$var(_) => ErrorKind::$kind, )*
                    $( Self::$src(e) => $crate::error::Failure::kind(e), )*
                }
            }
            fn code(&self) -> &'static str {
                match self {
                    Self::Invalid(_) => "invalid_input",
                    Self::Unauthenticated(_) => "unauthenticated",
                    Self::Forbidden(_) => "forbidden",
                    Self::NotFound(_) => "not_found",
                    Self::Conflict(_) => "conflict",
                    Self::RateLimited(_) => "rate_limited",
                    Self::Internal => "internal",
                    Self::Shared(e) => e.code,
                    $( Self::$var(_) => $code, )*
                    $( Self::$src(e) => $crate::error::Failure::code(e), )*
                }
            }
            fn message(&self) -> String {
                match self {
                    Self::Shared(e) => e.message.clone(),
                    $( Self::$src(e) => $crate::error::Failure::message(e), )*
                    other => other.to_string(),
                }
            }
        }

        impl From<sea_orm::DbErr> for $name {
            fn from(e: sea_orm::DbErr) -> Self {
                Self::internal(format!("database: {e}"))
            }
        }

        impl From<$crate::ids::IdError> for $name {
            fn from(e: $crate::ids::IdError) -> Self {
                Self::Invalid(e.to_string())
            }
        }

        impl From<warroom_types::ChoiceError> for $name {
            fn from(e: warroom_types::ChoiceError) -> Self {
                Self::Invalid(e.to_string())
            }
        }
    };
}
pub(crate) use service_error;
