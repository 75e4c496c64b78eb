//! Errors tagged with where they came from, so the status code and the metric follow
//! from the tag (as Pingora's `ErrorSource`).

use http::StatusCode;

/// A guest failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GuestError {
    /// The component could not be loaded or linked, or lacks the hook.
    #[error("guest `{guest}`: {message}")]
    Load {
        /// The guest.
        guest: String,
        /// What went wrong.
        message: String,
    },
    /// It trapped (a panic, `unreachable`, an out-of-bounds access ...).
    #[error("guest `{guest}` trapped: {message}")]
    Trap {
        /// The guest.
        guest: String,
        /// The trap.
        message: String,
    },
    /// It ran past its CPU deadline and was interrupted.
    #[error("guest `{guest}` exceeded its CPU deadline and was interrupted")]
    Deadline {
        /// The guest.
        guest: String,
    },
    /// It tried to grow its memory past its cap.
    #[error("guest `{guest}` exceeded its memory cap: {message}")]
    Memory {
        /// The guest.
        guest: String,
        /// Details.
        message: String,
    },
    /// It returned something the host cannot apply (a bad header name ...).
    #[error("guest `{guest}` returned an invalid value: {message}")]
    Invalid {
        /// The guest.
        guest: String,
        /// What was wrong.
        message: String,
    },
}

impl GuestError {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            GuestError::Load { .. } => "load",
            GuestError::Trap { .. } => "trap",
            GuestError::Deadline { .. } => "deadline",
            GuestError::Memory { .. } => "memory",
            GuestError::Invalid { .. } => "invalid",
        }
    }
}

/// Why the node answered with an error instead of the origin's response.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// No route matches the request.
    #[error("no route matches {host}{path}")]
    NoRoute {
        /// The request's host.
        host: String,
        /// The request's path.
        path: String,
    },
    /// The origin could not be reached.
    #[error("origin `{origin}` is unreachable: {message}")]
    OriginDown {
        /// The origin.
        origin: String,
        /// Details.
        message: String,
    },
    /// The origin did not answer in time.
    #[error("origin `{origin}` timed out ({what})")]
    OriginTimeout {
        /// The origin.
        origin: String,
        /// Which timeout.
        what: &'static str,
    },
    /// The request was shed by the limiter.
    #[error("shed: {reason}")]
    Shed {
        /// Why.
        reason: &'static str,
    },
    /// A guest failed and its fail mode is `closed`.
    #[error("{0}")]
    GuestClosed(GuestError),
    /// A response body to transform was larger than the route allows.
    #[error("response body exceeds the route's transform_max_bytes ({limit} bytes)")]
    BodyTooLarge {
        /// The cap.
        limit: usize,
    },
    /// The client's request was malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The client's request body stalled or was malformed while it was forwarded.
    #[error("{}", match .0 {
        crate::body::UploadFailure::Stalled => "the client's request body stalled",
        crate::body::UploadFailure::Malformed => "the client's request body was malformed",
    })]
    ClientBody(crate::body::UploadFailure),
}

impl EdgeError {
    /// The status code this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            EdgeError::NoRoute { .. } => StatusCode::NOT_FOUND,
            EdgeError::OriginDown { .. } | EdgeError::BodyTooLarge { .. } => {
                StatusCode::BAD_GATEWAY
            }
            EdgeError::OriginTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            EdgeError::Shed { .. } | EdgeError::GuestClosed(_) => StatusCode::SERVICE_UNAVAILABLE,
            EdgeError::BadRequest(_) => StatusCode::BAD_REQUEST,
            EdgeError::ClientBody(crate::body::UploadFailure::Stalled) => {
                StatusCode::REQUEST_TIMEOUT
            }
            EdgeError::ClientBody(crate::body::UploadFailure::Malformed) => StatusCode::BAD_REQUEST,
        }
    }

    /// Where the error came from, for metrics.
    pub fn source_label(&self) -> &'static str {
        match self {
            EdgeError::NoRoute { .. } | EdgeError::BadRequest(_) | EdgeError::ClientBody(_) => {
                "client"
            }
            EdgeError::OriginDown { .. }
            | EdgeError::OriginTimeout { .. }
            | EdgeError::BodyTooLarge { .. } => "origin",
            EdgeError::Shed { .. } => "limiter",
            EdgeError::GuestClosed(_) => "guest",
        }
    }
}
