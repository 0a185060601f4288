//! What travels inside the TLS stream: length-delimited frames (u32 big-endian length), each
//! starting with one channel byte, so discovery, keepalives and the application share one
//! connection per peer pair.

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::{LengthDelimitedCodec, LengthDelimitedCodecError};

/// A frame must carry at least the channel byte and a discovery announcement (about 2.7 KiB at
/// most), so smaller limits are refused at start.
pub(crate) const MIN_FRAME_BYTES: usize = 4096;
/// Protocol version in the hello; a peer speaking another one is refused rather than misread.
const VERSION: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channel {
    /// Hello and keepalive, never shown to the application.
    Control = 0,
    Discovery = 1,
    Application = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// First frame of each side on a new connection: proves, to a dialer, that the acceptor
    /// accepted our certificate (in TLS 1.3 the client finishes its handshake before the server
    /// has checked the client certificate).
    Hello,
    /// Sent when a connection has been quiet, so the peer can tell quiet from dead.
    Keepalive,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum FrameError {
    #[error("empty frame")]
    Empty,
    #[error("unknown channel {0}")]
    Channel(u8),
    #[error("bad control message")]
    Control,
    #[error("peer speaks protocol version {0}, we speak {VERSION}")]
    Version(u8),
}

pub(crate) fn codec(max_frame_bytes: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_type::<u32>()
        .max_frame_length(max_frame_bytes)
        .new_codec()
}

/// Whether a read error is the codec refusing a frame over the maximum (as opposed to I/O or
/// TLS trouble).
pub(crate) fn is_oversize(error: &std::io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<LengthDelimitedCodecError>())
}

pub(crate) fn encode(channel: Channel, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(1 + payload.len());
    out.put_u8(channel as u8);
    out.put_slice(payload);
    out.freeze()
}

pub(crate) fn control(message: Control) -> Bytes {
    match message {
        Control::Hello => encode(Channel::Control, &[0, VERSION]),
        Control::Keepalive => encode(Channel::Control, &[1]),
    }
}

/// Splits a received frame into its channel and payload (no copy).
pub(crate) fn decode(mut frame: Bytes) -> Result<(Channel, Bytes), FrameError> {
    if frame.is_empty() {
        return Err(FrameError::Empty);
    }
    let tag = frame.split_to(1)[0];
    let channel = match tag {
        0 => Channel::Control,
        1 => Channel::Discovery,
        2 => Channel::Application,
        other => return Err(FrameError::Channel(other)),
    };
    Ok((channel, frame))
}

pub(crate) fn decode_control(payload: &[u8]) -> Result<Control, FrameError> {
    match payload {
        [0, VERSION] => Ok(Control::Hello),
        [0, other] => Err(FrameError::Version(*other)),
        [1] => Ok(Control::Keepalive),
        _ => Err(FrameError::Control),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::codec::Decoder;

    #[test]
    fn frames_round_trip_with_their_channel() {
        let frame = encode(Channel::Application, b"observe");
        assert_eq!(
            decode(frame),
            Ok((Channel::Application, Bytes::from_static(b"observe")))
        );
        let (channel, payload) = decode(control(Control::Hello)).expect("hello");
        assert_eq!(channel, Channel::Control);
        assert_eq!(decode_control(&payload), Ok(Control::Hello));
        let (_, payload) = decode(control(Control::Keepalive)).expect("keepalive");
        assert_eq!(decode_control(&payload), Ok(Control::Keepalive));
    }

    #[test]
    fn unknown_channels_and_controls_are_errors() {
        assert_eq!(decode(Bytes::new()), Err(FrameError::Empty));
        assert_eq!(
            decode(Bytes::from_static(&[7, 1])),
            Err(FrameError::Channel(7))
        );
        assert_eq!(decode_control(&[0, 9]), Err(FrameError::Version(9)));
        assert_eq!(decode_control(&[]), Err(FrameError::Control));
        assert_eq!(decode_control(&[1, 1]), Err(FrameError::Control));
    }

    #[test]
    fn the_codec_refuses_a_frame_over_the_maximum_from_its_header() {
        let mut codec = codec(MIN_FRAME_BYTES);
        // Only the 4-byte header of a frame one byte too big: refused before the body arrives.
        let mut buf = BytesMut::from(&((MIN_FRAME_BYTES as u32 + 1).to_be_bytes())[..]);
        let error = codec.decode(&mut buf).expect_err("oversize");
        assert!(is_oversize(&error), "{error}");
        assert!(!is_oversize(&std::io::Error::other("reset")));
    }
}
