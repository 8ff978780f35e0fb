//! The link between two regions: a TCP proxy that holds every byte for a fixed delay in each
//! direction (a wide-area link on loopback) and can be cut (live connections dropped, new ones
//! refused) and healed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::BenchError;

/// Chunks in flight per direction; the reader waits when the link holds this many.
const IN_FLIGHT_CHUNKS: usize = 4096;
/// Largest chunk read at once.
const CHUNK: usize = 64 * 1024;

/// A delaying, cuttable TCP proxy to one region.
pub(super) struct LinkProxy {
    /// Where the reading region connects.
    pub(super) addr: SocketAddr,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl LinkProxy {
    /// A proxy on a free loopback port forwarding to `target`, each byte delivered `delay` after
    /// it was read (in both directions: `delay` is the link's one-way latency).
    pub(super) async fn start(target: SocketAddr, delay: Duration) -> Result<Self, BenchError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(BenchError::io("binding the link proxy"))?;
        let addr = listener
            .local_addr()
            .map_err(BenchError::io("reading the link proxy's address"))?;
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let (cut, conns) = (Arc::clone(&cut), Arc::clone(&conns));
            async move {
                loop {
                    let Ok((inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    if cut.load(Ordering::SeqCst) {
                        // Refused: the region sees the connection drop, as on a dead link.
                        drop(inbound);
                        continue;
                    }
                    let task = tokio::spawn(relay(inbound, target, delay));
                    let mut live = conns.lock().unwrap_or_else(PoisonError::into_inner);
                    live.retain(|t| !t.is_finished());
                    live.push(task);
                }
            }
        });
        Ok(LinkProxy {
            addr,
            cut,
            conns,
            accept,
        })
    }

    /// Cuts the link: live connections drop, new ones are refused.
    pub(super) fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let mut live = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        for t in live.drain(..) {
            t.abort();
        }
    }

    /// Heals the link.
    pub(super) fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.accept.abort();
        let mut live = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        for t in live.drain(..) {
            t.abort();
        }
    }
}

/// Relays one connection to `target`, both directions delayed.
async fn relay(inbound: TcpStream, target: SocketAddr, delay: Duration) {
    let Ok(outbound) = TcpStream::connect(target).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    tokio::join!(
        pipe(in_read, out_write, delay),
        pipe(out_read, in_write, delay)
    );
}

/// Copies `from` to `to`, each chunk written `delay` after it was read. Reading and writing are
/// separate tasks joined by a queue, so the delay is latency, not a cap on throughput.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Bytes)>(IN_FLIGHT_CHUNKS);
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let chunk = Bytes::copy_from_slice(&buf[..n]);
                    if tx.send((Instant::now() + delay, chunk)).await.is_err() {
                        break;
                    }
                }
            }
        }
        // Dropping the sender lets the writer deliver what is queued, then close.
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on loopback.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn delays_each_direction_and_cuts_and_heals() {
        let proxy = LinkProxy::start(echo().await, Duration::from_millis(40))
            .await
            .unwrap();
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        let sent = Instant::now();
        s.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        s.read_exact(&mut got).await.unwrap();
        let rtt = sent.elapsed();
        assert_eq!(&got, b"ping");
        // 40 ms each way through the proxy.
        assert!(rtt >= Duration::from_millis(80), "round trip took {rtt:?}");
        proxy.cut();
        let mut buf = [0u8; 1];
        let dropped = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
        assert!(matches!(dropped, Ok(Ok(0)) | Ok(Err(_))), "{dropped:?}");
        let mut refused = TcpStream::connect(proxy.addr).await.unwrap();
        let read = tokio::time::timeout(Duration::from_secs(2), refused.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
        proxy.heal();
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(b"back").await.unwrap();
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"back");
    }
}
