//! Long-lived frame streams between neighbours.
//!
//! Each side opens one outbound stream per neighbour (protocol [`FRAME_PROTOCOL`])
//! and writes length-delimited frames (`u32` big-endian length, then the frame).
//! A zero length introduces a beat instead (see [`super::beats`]): one goes
//! before a batch of frames at most every [`BEAT_SPACING`], and one alone every
//! keepalive interval while the writer is idle. Inbound streams are read by one
//! task each, which stamps the neighbour's [`Liveness`] with every frame and
//! beat and hands every frame to the [`FrameHandler`] (the router's data plane).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use libp2p::{PeerId, Stream, StreamProtocol};
use tokio::sync::mpsc;

use super::beats::{Beat, BEAT_BODY, BEAT_SPACING};
use super::neighbours::{now_ms, Liveness};
use crate::router::frame::RejectReason;

/// Protocol of routed frame streams (version 2: zero lengths introduce beats;
/// in version 1 they were bare keepalives).
pub const FRAME_PROTOCOL: StreamProtocol = StreamProtocol::new("/x0tta6bl4/frames/2");
/// Pause before reopening a failed outbound stream.
const REOPEN_DELAY: Duration = Duration::from_millis(50);
/// Failed opens in a row before the writer gives up on a neighbour.
const MAX_REOPENS: u32 = 20;
/// Buffer of each frame stream's reader and writer. Every neighbour has two, so
/// this is paid 2 × neighbours times (64 KiB cost a node with 20 peers 2.5 MiB);
/// a frame larger than the buffer passes by it, so it only sets how many frames
/// go to the stream in one write.
const STREAM_BUFFER: usize = 16 * 1024;

/// Receives every frame read from a neighbour.
pub trait FrameHandler: Send + Sync + 'static {
    /// Handles one frame from neighbour `from`.
    fn handle_frame(&self, from: PeerId, frame: Bytes) -> BoxFuture<'_, ()>;
    /// Counts a frame rejected before it could be parsed (e.g. oversized).
    fn reject(&self, from: PeerId, reason: RejectReason);
}

/// Writes frames queued for `peer` to an outbound stream, reopening it when it
/// breaks; its beats carry what `liveness` measured of the peer's beats.
/// Ends when the queue is closed (the neighbour disconnected).
pub async fn write_frames(
    peer: PeerId,
    mut control: libp2p_stream::Control,
    mut queue: mpsc::Receiver<Bytes>,
    keepalive: Duration,
    liveness: Arc<Liveness>,
) {
    let mut failures = 0;
    loop {
        let stream = match control.open_stream(peer, FRAME_PROTOCOL).await {
            Ok(stream) => stream,
            Err(error) => {
                failures += 1;
                tracing::debug!(%peer, %error, failures, "cannot open frame stream");
                if failures >= MAX_REOPENS || queue.is_closed() {
                    return;
                }
                tokio::time::sleep(REOPEN_DELAY).await;
                continue;
            }
        };
        failures = 0;
        match pump(stream, &mut queue, keepalive, &liveness).await {
            Ok(()) => return,
            Err(error) => {
                tracing::debug!(%peer, %error, "frame stream broke, reopening");
                tokio::time::sleep(REOPEN_DELAY).await;
            }
        }
    }
}

/// Copies frames from the queue to the stream, flushing whenever the queue runs
/// dry; puts a beat before a batch when the last one is [`BEAT_SPACING`] old,
/// and sends one alone when the queue stays empty for `keepalive`.
async fn pump(
    stream: Stream,
    queue: &mut mpsc::Receiver<Bytes>,
    keepalive: Duration,
    liveness: &Liveness,
) -> std::io::Result<()> {
    let mut writer = BufWriter::with_capacity(STREAM_BUFFER, stream);
    // The first beat tells the reader at once that the stream is up.
    write_beat(&mut writer, keepalive, liveness).await?;
    let mut last_beat = Instant::now();
    writer.flush().await?;
    loop {
        let frame = match tokio::time::timeout(keepalive, queue.recv()).await {
            Ok(Some(frame)) => Some(frame),
            Ok(None) => break,
            Err(_) => None,
        };
        if frame.is_none() || last_beat.elapsed() >= BEAT_SPACING {
            write_beat(&mut writer, keepalive, liveness).await?;
            last_beat = Instant::now();
        }
        if let Some(frame) = frame {
            write_one(&mut writer, &frame).await?;
            while let Ok(frame) = queue.try_recv() {
                write_one(&mut writer, &frame).await?;
            }
        }
        writer.flush().await?;
    }
    writer.close().await
}

async fn write_one(writer: &mut BufWriter<Stream>, frame: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(frame.len()).map_err(|_| std::io::Error::other("frame too large"))?;
    writer.write_all(&len.to_be_bytes()).await?;
    writer.write_all(frame).await
}

async fn write_beat(writer: &mut BufWriter<Stream>, cadence: Duration, liveness: &Liveness) -> std::io::Result<()> {
    let beat = Beat {
        sent_ms: now_ms() as u32,
        cadence_ms: u16::try_from(cadence.as_millis()).unwrap_or(u16::MAX),
        reverse_stalled: liveness.stalled_in(),
    };
    writer.write_all(&0u32.to_be_bytes()).await?;
    writer.write_all(&beat.encode()).await
}

/// Reads frames from an inbound stream of `peer` until it closes or misbehaves.
pub async fn read_frames(
    peer: PeerId,
    stream: Stream,
    handler: Arc<dyn FrameHandler>,
    heard: Arc<Liveness>,
    max_frame: usize,
) {
    let mut reader = BufReader::with_capacity(STREAM_BUFFER, stream);
    let mut len_buf = [0u8; 4];
    loop {
        if reader.read_exact(&mut len_buf).await.is_err() {
            return;
        }
        let len = u32::from_be_bytes(len_buf) as usize;
        if len == 0 {
            let mut body = [0u8; BEAT_BODY];
            if reader.read_exact(&mut body).await.is_err() {
                return;
            }
            heard.beat(&Beat::decode(body));
            continue;
        }
        heard.heard();
        if len > max_frame {
            // Skip it without buffering: the stream stays in sync and the frames
            // behind it still arrive. Skipping costs the sender bandwidth, not us memory.
            handler.reject(peer, RejectReason::Oversized);
            tracing::warn!(%peer, len, max_frame, "oversized frame skipped");
            let skipped = futures::io::copy((&mut reader).take(len as u64), &mut futures::io::sink()).await;
            if skipped.map_or(true, |n| n != len as u64) {
                return;
            }
            continue;
        }
        // Grows as the body arrives: a length prefix alone reserves nothing.
        let mut frame = Vec::new();
        match (&mut reader).take(len as u64).read_to_end(&mut frame).await {
            Ok(n) if n == len => {}
            _ => return,
        }
        handler.handle_frame(peer, Bytes::from(frame)).await;
    }
}
