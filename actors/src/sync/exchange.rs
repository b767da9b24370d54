//! Anti-entropy over a libp2p stream (`/x0tta6bl4/sync/1`).
//!
//! The node that opens the stream sends its version vector (`Digest`); the other
//! answers with its own vector and what the first lacks (`Answer`: deltas, or
//! the whole state); the first applies that and sends back what the other lacks
//! (`Push`). Messages are postcard, each after its length (u32, big-endian).

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use serde::{Deserialize, Serialize};

use super::node::SyncNode;
use super::replica::{Answer, Clock};

/// The protocol of anti-entropy streams.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/x0tta6bl4/sync/1");

/// Largest message (a whole state of `max_keys` keys fits).
const MAX_MESSAGE_BYTES: usize = 32 << 20;

/// Deltas in one answer; more come in the next exchange.
pub const MAX_DELTAS_PER_ANSWER: usize = 2_048;

/// One message of an exchange.
#[derive(Debug, Serialize, Deserialize)]
pub enum Message {
    /// The opener's version vector.
    Digest(Clock),
    /// The other's version vector and what the opener lacks.
    Answer {
        /// The answering node's version vector.
        clock: Clock,
        /// Deltas or the whole state.
        answer: Answer,
    },
    /// What the answering node lacks.
    Push(Answer),
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The stream failed.
    #[error("stream: {0}")]
    Io(#[from] std::io::Error),
    /// A message did not decode or came out of turn.
    #[error("protocol: {0}")]
    Protocol(String),
}

/// Writes one message.
pub async fn write_message<S: AsyncWrite + Unpin>(stream: &mut S, message: &Message) -> Result<(), ExchangeError> {
    let bytes = postcard::to_allocvec(message).map_err(|e| ExchangeError::Protocol(e.to_string()))?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(ExchangeError::Protocol(format!("message of {} bytes", bytes.len())));
    }
    stream.write_all(&(bytes.len() as u32).to_be_bytes()).await?;
    stream.write_all(&bytes).await?;
    stream.flush().await?;
    Ok(())
}

/// Reads one message.
pub async fn read_message<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Message, ExchangeError> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_MESSAGE_BYTES {
        return Err(ExchangeError::Protocol(format!("message of {len} bytes announced")));
    }
    let mut bytes = vec![0u8; len];
    stream.read_exact(&mut bytes).await?;
    postcard::from_bytes(&bytes).map_err(|e| ExchangeError::Protocol(e.to_string()))
}

/// What one exchange moved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Exchanged {
    /// Deltas received and applied.
    pub received: usize,
    /// Deltas sent.
    pub sent: usize,
    /// Whole states received.
    pub full_received: usize,
    /// Whether the other side has more for us.
    pub more: bool,
}

/// The opening side of an exchange with `peer`.
pub async fn initiate<S: AsyncRead + AsyncWrite + Unpin>(
    node: &SyncNode,
    peer: &str,
    stream: &mut S,
) -> Result<Exchanged, ExchangeError> {
    write_message(stream, &Message::Digest(node.clock())).await?;
    let Message::Answer { clock, answer } = read_message(stream).await? else {
        return Err(ExchangeError::Protocol("expected an answer".into()));
    };
    node.heard(peer, clock.clone());
    let mut done = Exchanged {
        more: matches!(answer, Answer::Deltas { more: true, .. }),
        full_received: usize::from(matches!(answer, Answer::Full(_))),
        ..Exchanged::default()
    };
    done.received = node.take(peer, answer);
    let push = node.answer(&clock);
    done.sent = sent(&push);
    write_message(stream, &Message::Push(push)).await?;
    stream.close().await?;
    Ok(done)
}

/// The answering side of an exchange opened by `peer`.
pub async fn respond<S: AsyncRead + AsyncWrite + Unpin>(
    node: &SyncNode,
    peer: &str,
    stream: &mut S,
) -> Result<Exchanged, ExchangeError> {
    let Message::Digest(clock) = read_message(stream).await? else {
        return Err(ExchangeError::Protocol("expected a digest".into()));
    };
    node.heard(peer, clock.clone());
    let answer = node.answer(&clock);
    let mut done = Exchanged {
        sent: sent(&answer),
        ..Exchanged::default()
    };
    write_message(
        stream,
        &Message::Answer {
            clock: node.clock(),
            answer,
        },
    )
    .await?;
    let Message::Push(push) = read_message(stream).await? else {
        return Err(ExchangeError::Protocol("expected a push".into()));
    };
    done.full_received = usize::from(matches!(push, Answer::Full(_)));
    done.received = node.take(peer, push);
    Ok(done)
}

/// Deltas an answer carries (a whole state counts as one).
fn sent(answer: &Answer) -> usize {
    match answer {
        Answer::Deltas { deltas, .. } => deltas.len(),
        Answer::Full(_) => 1,
    }
}
