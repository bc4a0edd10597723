//! The simulator's HTTP serving: an accept loop with hyper's HTTP/1 header-read timeout (a
//! client that never finishes its request head is dropped; this also bounds idle keep-alive
//! connections) and [`read_body`], a middleware that reads every request body under a total
//! deadline and a size limit, so a client trickling a half-sent body is answered 408 and
//! disconnected instead of holding a connection forever.
//!
//! `axum::serve` has no such knobs, hence this loop (same shape: one task per connection,
//! graceful shutdown waits for the connections in flight).

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use futures::StreamExt;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::time::Duration;
use tokio::io::DuplexStream;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_util::either::Either;

/// Largest request body either API reads (as axum's default limit).
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// A connection to a simulator: a TCP socket, or an in-memory pipe from a runner in the same
/// process (see [`Dialer`]).
pub type Stream = Either<TcpStream, DuplexStream>;

/// Bytes an in-memory connection buffers each way before a writer waits for the reader.
const PIPE_BUFFER: usize = 64 * 1024;

/// Where a simulator takes its connections from.
pub enum Listener {
    Tcp(TcpListener),
    /// In-memory pipes handed over by [`Dialer`]s: no socket, so no real I/O is in flight while
    /// a virtual clock jumps (the embedded target, issue 25).
    Memory(mpsc::Receiver<DuplexStream>),
}

/// Opens in-memory connections to a simulator served from a [`Listener::Memory`].
#[derive(Clone, Debug)]
pub struct Dialer(mpsc::Sender<DuplexStream>);

impl Dialer {
    /// A listener and the dialer that connects to it.
    pub fn pair() -> (Listener, Dialer) {
        let (tx, rx) = mpsc::channel(1024);
        (Listener::Memory(rx), Dialer(tx))
    }

    /// A new connection (the simulator serves it as it would an accepted socket).
    pub async fn dial(&self) -> std::io::Result<DuplexStream> {
        let (client, server) = tokio::io::duplex(PIPE_BUFFER);
        self.0.send(server).await.map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "the embedded simulator has stopped",
            )
        })?;
        Ok(client)
    }
}

impl Listener {
    /// The next connection; `None` when no more can come (every dialer is gone).
    async fn accept(&mut self) -> Option<std::io::Result<Stream>> {
        match self {
            Listener::Tcp(l) => Some(l.accept().await.map(|(s, _)| {
                // Requests are small and answered at once: Nagle's delay would only add latency.
                let _ = s.set_nodelay(true);
                Either::Left(s)
            })),
            Listener::Memory(rx) => rx.recv().await.map(|s| Ok(Either::Right(s))),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` turns true, then waits for open connections to
/// finish (idle ones close at once; watches end on the same signal). `header_read_timeout` is
/// asked at each accept (a fault may shorten it for the connections accepted while it is set).
pub async fn serve(
    listener: impl Into<Listener>,
    app: Router,
    header_read_timeout: impl Fn() -> Duration + Send + 'static,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut listener = listener.into();
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|v| *v) => break,
        };
        let stream = match accepted {
            Some(Ok(stream)) => stream,
            None => {
                // No dialer left: no connection can come; wait for the shutdown signal.
                let _ = shutdown.wait_for(|v| *v).await;
                break;
            }
            Some(Err(e)) => {
                // Per-connection errors (reset before accept) are not fatal; others
                // (EMFILE, ...) are retried after a pause, as axum::serve does.
                if !is_connection_error(&e) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                continue;
            }
        };
        let service = TowerToHyperService::new(app.clone());
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout())
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

impl From<TcpListener> for Listener {
    fn from(l: TcpListener) -> Self {
        Listener::Tcp(l)
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// How [`read_body`] reads bodies and renders its errors (in each API's own error format).
#[derive(Clone)]
pub struct BodyRead {
    pub timeout: Duration,
    pub limit: usize,
    /// (status, message) -> the API's error response.
    pub error: fn(u16, &str) -> Response,
}

/// Middleware: buffers the request body within `timeout` (total, not per chunk) and `limit`
/// bytes, then hands the buffered request on. 408 (connection closed) when the body does not
/// arrive in time, 413 when it is too large, 400 when it breaks off.
pub async fn read_body(State(cfg): State<BodyRead>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let too_large = || {
        close((cfg.error)(
            413,
            &format!("request body is larger than {} bytes", cfg.limit),
        ))
    };
    if declared.is_some_and(|n| n > cfg.limit as u64) {
        return too_large();
    }
    let read = async {
        let mut stream = body.into_data_stream();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Some(e.to_string()))?;
            if buf.len().saturating_add(chunk.len()) > cfg.limit {
                return Err(None);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok::<_, Option<String>>(buf)
    };
    match tokio::time::timeout(cfg.timeout, read).await {
        Err(_) => close((cfg.error)(
            408,
            &format!(
                "request body not received within {} ms",
                cfg.timeout.as_millis()
            ),
        )),
        Ok(Err(None)) => too_large(),
        Ok(Err(Some(e))) => close((cfg.error)(
            400,
            &format!("request body could not be read: {e}"),
        )),
        Ok(Ok(buf)) => {
            next.run(Request::from_parts(parts, Body::from(Bytes::from(buf))))
                .await
        }
    }
}

/// The response with `Connection: close` (the rest of the request is never read).
fn close(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}
