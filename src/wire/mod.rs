//! The API's wire forms that more than one door speaks: the reason → canonical
//! status code mapping (gRPC statuses, HTTP statuses and Lambda answers all
//! start from it), and the proto3 JSON mapping of `reseal.v1` (the HTTP/JSON
//! door, the Lambda door's direct invocations, `reseal call --url`). Below
//! the doors, so they share it without naming each other.

pub mod json;

use tonic::Code;

use crate::broker::Reason;

/// The `google.rpc.ErrorInfo` domain of every error.
pub const ERROR_DOMAIN: &str = "reseal.v1";

/// The canonical (gRPC) status code of each reason.
pub fn code(reason: Reason) -> Code {
    match reason {
        Reason::NoDataSupplied
        | Reason::MalformedRequest
        | Reason::MaximumDataSizeExceeded
        | Reason::TooManyEncryptedDataKeys
        | Reason::MalformedCiphertext
        | Reason::AuthenticationFailed
        | Reason::SuiteNotAllowed
        | Reason::EncryptionContextMismatch
        | Reason::NoTargets
        | Reason::TooManyConsumers
        | Reason::BatchTooLarge => Code::InvalidArgument,
        Reason::SourceKeyNotConfigured | Reason::KeyExpired | Reason::KeyDisabled => {
            Code::FailedPrecondition
        }
        Reason::SourceKeyNotFound | Reason::UnknownConsumer | Reason::UnknownRoute => {
            Code::NotFound
        }
        Reason::Unauthenticated => Code::Unauthenticated,
        Reason::PermissionDenied => Code::PermissionDenied,
        Reason::UpstreamUnavailable | Reason::NotReady => Code::Unavailable,
        Reason::Overloaded | Reason::TooManyFailures => Code::ResourceExhausted,
        Reason::Internal => Code::Internal,
    }
}
