//! The protobuf codec of the generated service: prost's, except that a body
//! that is not a valid message is INVALID_ARGUMENT with reason
//! `MALFORMED_REQUEST` (a client's bug), not INTERNAL (which pages an SRE).
//! The message names what broke (wire type, truncation, the field path),
//! never a value from the body.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;

use crate::broker::{BrokerError, Reason};

/// prost encoding; decoding errors as typed statuses.
#[derive(Debug, Clone)]
pub struct ReasonCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for ReasonCodec<T, U> {
    fn default() -> Self {
        ReasonCodec { _pd: PhantomData }
    }
}

impl<T, U> Codec for ReasonCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = tonic_prost::ProstEncoder<T>;
    type Decoder = ReasonDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ReasonDecoder { _pd: PhantomData }
    }
}

/// Decodes `U`, refusing a broken body with `MALFORMED_REQUEST`.
#[derive(Debug, Clone)]
pub struct ReasonDecoder<U> {
    _pd: PhantomData<U>,
}

impl<U: prost::Message + Default> Decoder for ReasonDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|e| malformed(&e))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// The status of a body that is not a valid protobuf message.
pub fn malformed(e: &prost::DecodeError) -> Status {
    super::status::to_status(
        &BrokerError::new(
            Reason::MalformedRequest,
            format!("the request body is not a valid protobuf message: {e}"),
        ),
        "",
    )
}
