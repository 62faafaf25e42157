//! Domain errors as gRPC statuses (the reason → code mapping itself is shared
//! by every door: `wire::code`).
//!
//! Every error carries a `google.rpc.ErrorInfo` (domain `reseal.v1`, the
//! stable reason, the request id); retryable ones also a `google.rpc.RetryInfo`.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::broker::{BrokerError, Reason};

pub use crate::wire::{code, ERROR_DOMAIN};

/// Builds the status for a failed call.
pub fn to_status(err: &BrokerError, request_id: &str) -> Status {
    let mut metadata = HashMap::new();
    if !request_id.is_empty() {
        metadata.insert("request_id".to_owned(), request_id.to_owned());
    }
    let mut details = ErrorDetails::with_error_info(err.reason.as_str(), ERROR_DOMAIN, metadata);
    if let Some(after) = err.retry_after {
        details.set_retry_info(Some(after));
    } else if err.reason.retryable() {
        details.set_retry_info(Some(std::time::Duration::from_secs(1)));
    }
    Status::with_error_details(code(err.reason), err.message.clone(), details)
}

/// A request message over `server.max_request_bytes`, refused before its
/// body is read: RESOURCE_EXHAUSTED, as gRPC itself answers for its message
/// limit, with the same reason as every other size limit.
pub fn request_too_large(declared: usize, max: usize) -> Status {
    let err = BrokerError::new(
        Reason::MaximumDataSizeExceeded,
        format!("the request message is {declared} bytes; this server accepts at most {max} (server.max_request_bytes)"),
    );
    let details = ErrorDetails::with_error_info(err.reason.as_str(), ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(Code::ResourceExhausted, err.message, details)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_maps_and_round_trips() {
        for reason in Reason::ALL {
            let status = to_status(&BrokerError::new(reason, "m"), "rid");
            assert_eq!(status.code(), code(reason));
            let info = status.get_error_details().error_info().cloned().unwrap();
            assert_eq!(info.reason, reason.as_str());
            assert_eq!(info.domain, ERROR_DOMAIN);
            assert_eq!(
                status.get_error_details().retry_info().is_some(),
                reason.retryable()
            );
        }
    }
}
