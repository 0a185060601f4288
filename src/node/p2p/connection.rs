//! One established TLS connection to a peer: the hello exchange that makes it usable, then a
//! reader (frames to discovery or the consumer) and a writer (the peer's queue, discovery
//! frames first, keepalives when quiet) until either side ends it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use super::frame::{self, Channel, Control, FrameError};
use super::network::{Outbox, Shared};
use super::stats::{add, bump};
use super::Inbound;
use crate::keys::peer_id::PeerId;

/// A quiet connection sends a keepalive this often.
const KEEPALIVE: Duration = Duration::from_secs(5);
/// Nothing received for this long (several keepalives missed): the peer is gone.
const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a closing connection may take to flush and send its TLS close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Frames written before one flush when the queue has a backlog.
const WRITE_BATCH: usize = 64;

pub(crate) type Reader<S> = FramedRead<ReadHalf<S>, LengthDelimitedCodec>;
pub(crate) type Writer<S> = FramedWrite<WriteHalf<S>, LengthDelimitedCodec>;

#[derive(Debug, thiserror::Error)]
pub(crate) enum HelloError {
    #[error("connection closed before the hello")]
    Closed,
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("first frame is not a hello: {0}")]
    Protocol(#[from] FrameError),
}

/// Sends our hello and waits for the peer's. The caller bounds the time.
pub(crate) async fn hello<S>(
    stream: S,
    max_frame_bytes: usize,
) -> Result<(Reader<S>, Writer<S>), HelloError>
where
    S: AsyncRead + AsyncWrite,
{
    let (r, w) = tokio::io::split(stream);
    let mut reader = FramedRead::new(r, frame::codec(max_frame_bytes));
    let mut writer = FramedWrite::new(w, frame::codec(max_frame_bytes));
    writer.send(frame::control(Control::Hello)).await?;
    let first = reader.next().await.ok_or(HelloError::Closed)??;
    match frame::decode(first.freeze())? {
        (Channel::Control, payload) if frame::decode_control(&payload)? == Control::Hello => {
            Ok((reader, writer))
        }
        _ => Err(HelloError::Protocol(FrameError::Control)),
    }
}

/// Why a connection ended.
#[derive(Debug)]
enum End {
    ClosedByPeer,
    Idle,
    Oversize,
    Protocol(FrameError),
    Io(std::io::Error),
    /// Left the table: replaced by another connection, or the node is closing.
    Closed,
    Stopped,
}

/// Runs an established connection until it ends (at once if it is a duplicate that loses).
pub(crate) async fn serve<S>(
    shared: Arc<Shared>,
    peer: PeerId,
    canonical: bool,
    mut reader: Reader<S>,
    mut writer: Writer<S>,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite,
{
    let Some(mut registration) = shared.register(peer, canonical) else {
        let _ = timeout(CLOSE_TIMEOUT, SinkExt::<Bytes>::close(&mut writer)).await;
        return;
    };
    tracing::info!(peer = %peer.short(), dialed = canonical, "peer connected");
    let end = tokio::select! {
        end = read(&shared, peer, &mut reader) => end,
        end = write(&shared, &mut writer, &mut registration.app, &registration.outbox) => end,
        _ = stop.wait_for(|stopped| *stopped) => End::Stopped,
    };
    shared.unregister(peer, registration.id);
    bump(&shared.stats.disconnects);
    match &end {
        End::Oversize => {
            tracing::warn!(peer = %peer.short(), max = shared.max_frame_bytes, "peer sent a frame over the limit; disconnected")
        }
        End::Protocol(e) => {
            tracing::warn!(peer = %peer.short(), error = %e, "peer broke the framing protocol; disconnected")
        }
        End::Io(e) => tracing::info!(peer = %peer.short(), error = %e, "peer connection failed"),
        End::Idle => tracing::info!(peer = %peer.short(), "peer silent too long; disconnected"),
        End::ClosedByPeer | End::Closed | End::Stopped => {
            tracing::info!(peer = %peer.short(), reason = ?end, "peer disconnected")
        }
    }
    // Best effort: flushes what is queued and sends the TLS close, so the peer sees an orderly end.
    let _ = timeout(CLOSE_TIMEOUT, SinkExt::<Bytes>::close(&mut writer)).await;
}

async fn read<S: AsyncRead>(shared: &Shared, peer: PeerId, reader: &mut Reader<S>) -> End {
    let stats = &shared.stats;
    loop {
        let frame = match timeout(IDLE_TIMEOUT, reader.next()).await {
            Err(_) => return End::Idle,
            Ok(None) => return End::ClosedByPeer,
            Ok(Some(Err(e))) if frame::is_oversize(&e) => {
                bump(&stats.oversize_frames);
                return End::Oversize;
            }
            Ok(Some(Err(e))) => return End::Io(e),
            Ok(Some(Ok(frame))) => frame.freeze(),
        };
        bump(&stats.frames_in);
        add(&stats.bytes_in, frame.len());
        let (channel, payload) = match frame::decode(frame) {
            Ok(decoded) => decoded,
            Err(e) => {
                bump(&stats.protocol_errors);
                return End::Protocol(e);
            }
        };
        match channel {
            Channel::Control => match frame::decode_control(&payload) {
                Ok(Control::Keepalive) => {}
                Ok(Control::Hello) | Err(_) => {
                    bump(&stats.protocol_errors);
                    return End::Protocol(FrameError::Control);
                }
            },
            Channel::Discovery => shared.on_discovery(peer, &payload),
            Channel::Application if shared.delivers_from(peer) => {
                // Awaiting here is the backpressure: a slow consumer stops this connection's
                // reads, TCP pushes back, and the sender's bounded queue drops.
                let inbound = Inbound {
                    from: peer,
                    payload,
                };
                if shared.inbound.send(inbound).await.is_err() {
                    bump(&stats.dropped_in);
                }
            }
            Channel::Application => bump(&stats.dropped_in),
        }
    }
}

async fn write<S: AsyncWrite>(
    shared: &Shared,
    writer: &mut Writer<S>,
    app: &mut mpsc::Receiver<Bytes>,
    outbox: &Outbox,
) -> End {
    let stats = &shared.stats;
    let mut last_sent = Instant::now();
    loop {
        // Discovery first: it is small, and a peer cannot find the others without it.
        let mut batch = outbox.take();
        if batch.is_empty() {
            tokio::select! {
                biased;
                _ = outbox.notify.notified() => continue,
                next = app.recv() => match next {
                    Some(frame) => {
                        batch.push(frame);
                        while batch.len() < WRITE_BATCH {
                            match app.try_recv() {
                                Ok(frame) => batch.push(frame),
                                Err(_) => break,
                            }
                        }
                    }
                    None => return End::Closed,
                },
                _ = sleep_until(last_sent + KEEPALIVE) => batch.push(frame::control(Control::Keepalive)),
            }
        }
        for frame in batch {
            let len = frame.len();
            if let Err(e) = writer.feed(frame).await {
                return End::Io(e);
            }
            bump(&stats.frames_out);
            add(&stats.bytes_out, len);
        }
        if let Err(e) = SinkExt::<Bytes>::flush(writer).await {
            return End::Io(e);
        }
        last_sent = Instant::now();
    }
}
