//! A lean HTTP/1.1 client for plain `http://` requests: hyper's connection API and a small pool
//! of idle connections per host.
//!
//! Why not reqwest for these: measured on a fan-out of plain requests (scripts/peers.sh, perf),
//! reqwest's layers (the URL parsed three times, tower retry and redirect layers, the pool's
//! checkout, a client clone per request) were a third of focusqa's CPU per request. reqwest stays
//! for everything this does not cover: https, HTTP/2, proxies, credentials in the URL.
//!
//! What it keeps from hyper-util's client (and curl): connections are reused once their response
//! body was read to the end; a connection the server closed while it sat idle is never used for a
//! new request; a request that a reused connection could not even start is sent again on a new
//! connection; and an idempotent request (GET, HEAD, PUT, DELETE, OPTIONS, TRACE) that a
//! connection kept idle for a while failed before any byte of its answer came is sent once more
//! on a new connection (the server's idle timeout closed it as the request went out). The
//! response says so ([`Response::retried`]).
//!
//! No task polls an idle connection, so its end (the server's FIN) is noticed when it is next
//! taken: its driver is polled before the request is handed over, and a driver that has ended is
//! dropped at once. Dropping it hands a queued request back (hyper returns an unsent request when
//! its connection goes away); kept, it would leave the request waiting for an answer that cannot
//! come until the step's timeout (the 30 s stalls of issue 22, on every connection a real
//! server's keep-alive timeout had closed).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper_util::rt::TokioIo;

use super::error_chain;
use crate::sim::serve::{Dialer, Stream};

/// Idle connections kept per host (as the reqwest client's `pool_max_idle_per_host`).
const MAX_IDLE_PER_HOST: usize = 256;

/// Hosts whose connections are pooled; requests to further hosts open a connection each.
const MAX_HOSTS: usize = 1024;

/// One host's idle connections, with what every request to it carries (its `Host` header).
/// Hosts are only ever added, so a request keeps its host's index.
struct Host {
    host: String,
    port: u16,
    header: http::HeaderValue,
    idle: Vec<Conn>,
}

type Driver = Pin<Box<Connection<TokioIo<Stream>, Full<Bytes>>>>;

/// A connection idle at least this long may have met the server's keep-alive timeout as a
/// request went out: an idempotent request that then fails before its answer is sent again.
/// Hot connections (a fan-out's, idle for microseconds) keep no copy of their requests.
const STALE_AFTER: Duration = Duration::from_secs(1);

/// One connection: the handle requests are sent through, and the state machine that reads and
/// writes the socket. The step that uses the connection drives it too (no task of its own), so
/// an answer reaches the step without a hand-over between threads.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    /// `None` once the connection has ended (see the module's note on why it is dropped at once).
    driver: Option<Driver>,
    /// When it was last left in a pool.
    idle_since: tokio::time::Instant,
}

impl Conn {
    /// Neither closed by the server nor ended: another request may go on it.
    fn usable(&self) -> bool {
        self.driver.is_some() && !self.sender.is_closed()
    }

    /// Awaits `fut` while driving the connection. A driver that ends is dropped, which settles
    /// every request and body still waiting on it (with an error, or the unsent request back).
    async fn drive<F: Future>(driver: &mut Option<Driver>, fut: F) -> F::Output {
        let mut fut = pin!(fut);
        std::future::poll_fn(|cx| {
            if let Some(d) = driver {
                if d.as_mut().poll(cx).is_ready() {
                    *driver = None;
                }
            }
            fut.as_mut().poll(cx)
        })
        .await
    }
}

/// Methods that may be sent twice (RFC 9110 9.2.2), hence again after a stale connection.
pub fn idempotent(m: &http::Method) -> bool {
    matches!(
        *m,
        http::Method::GET
            | http::Method::HEAD
            | http::Method::PUT
            | http::Method::DELETE
            | http::Method::OPTIONS
            | http::Method::TRACE
    )
}

/// A copy of a request to send again (bodies are shared bytes: no copy of their content).
fn copy_request(r: &http::Request<Full<Bytes>>) -> http::Request<Full<Bytes>> {
    let mut c = http::Request::new(r.body().clone());
    *c.method_mut() = r.method().clone();
    *c.uri_mut() = r.uri().clone();
    *c.version_mut() = r.version();
    *c.headers_mut() = r.headers().clone();
    c
}

thread_local! {
    /// The idle connections of a fan-out lane that runs on a thread (and runtime) of its own:
    /// `Some` while [`with_lane_pool`] runs. Its connections are registered with that lane's
    /// runtime, so they never go to the shared pool, and are closed when the lane ends.
    static LANE_IDLE: std::cell::RefCell<Option<Vec<(usize, Conn)>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` with this thread's own pool of idle connections (see `LANE_IDLE`). Requests sent
/// meanwhile from this thread take and leave connections there, with no lock; the pool is
/// emptied when `f` returns or panics, while the runtime that drives them still exists.
pub fn with_lane_pool<R>(f: impl FnOnce() -> R) -> R {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            let idle = LANE_IDLE.with(|p| p.borrow_mut().take());
            drop(idle);
        }
    }
    LANE_IDLE.with(|p| *p.borrow_mut() = Some(Vec::new()));
    let _leave = Leave;
    f()
}

pub struct H1Client {
    hosts: Mutex<Vec<Host>>,
    connect_timeout: Duration,
    /// Origins (host, port) reached in memory, not through sockets: the embedded simulator's.
    memory: Vec<(String, u16, Dialer)>,
}

/// Why a request got no response.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made (refused, unknown host, connect timeout).
    Connect(String),
    /// The connection failed while sending or before the response head arrived.
    Request(String),
}

/// A response whose connection goes back to the pool when its body has been read to the end.
pub struct Response<'a> {
    pub head: http::response::Parts,
    /// Why the request was sent a second time, on a new connection, when it was.
    pub retried: Option<String>,
    body: Incoming,
    /// The connection and its host's index, until the body has been read to its end.
    conn: Option<(usize, Conn)>,
    client: &'a H1Client,
}

impl H1Client {
    pub fn new(connect_timeout: Duration) -> H1Client {
        H1Client {
            hosts: Mutex::new(Vec::new()),
            connect_timeout,
            memory: Vec::new(),
        }
    }

    /// A client whose connections to `url`'s origin are in-memory pipes opened by `dialer`.
    pub fn with_memory_origin(mut self, url: &url::Url, dialer: Dialer) -> H1Client {
        let host = url.host_str().unwrap_or_default().to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        self.memory.push((host, port, dialer));
        self
    }

    /// Whether a URL can go this way (the caller sends the rest through reqwest).
    pub fn handles(url: &url::Url) -> bool {
        url.scheme() == "http" && url.username().is_empty() && url.password().is_none()
    }

    /// Sends a request to `url` (`handles(url)` must hold): the request's URI is made
    /// origin-form and a `Host` header is added here unless the request has one.
    pub async fn send(
        &self,
        url: &url::Url,
        mut req: http::Request<Full<Bytes>>,
    ) -> Result<Response<'_>, SendError> {
        let port = url.port_or_known_default().unwrap_or(80);
        let (host, header) = self.host(url, port)?;
        let origin = &url[url::Position::BeforePath..url::Position::AfterQuery];
        *req.uri_mut() = origin
            .parse()
            .map_err(|e| SendError::Request(format!("`{origin}`: {e}")))?;
        // A `Host` the step or target wrote is sent as written (virtual hosts behind one IP).
        req.headers_mut()
            .entry(http::header::HOST)
            .or_insert(header);
        let mut retried = None;
        loop {
            // A second try goes on a new connection, whatever the pool holds.
            let pooled = if retried.is_none() {
                self.checkout(host)
            } else {
                None
            };
            let (mut c, reused) = match pooled {
                Some(c) => (c, true),
                // Boxed: connecting is rare, and its future would otherwise make every
                // request's future (and each one around it) kilobytes larger to create and move.
                None => (Box::pin(self.connect(url, port)).await?, false),
            };
            if Conn::drive(&mut c.driver, c.sender.ready()).await.is_err() {
                continue; // closed while idle: the next one
            }
            // Kept only where a second try may be needed (see STALE_AFTER).
            let again = (reused && retried.is_none() && idempotent(req.method()))
                .then(|| c.idle_since.elapsed() >= STALE_AFTER)
                .filter(|stale| *stale)
                .map(|_| copy_request(&req));
            let sent = c.sender.try_send_request(req);
            match Conn::drive(&mut c.driver, sent).await {
                Ok(resp) => {
                    let (head, body) = resp.into_parts();
                    return Ok(Response {
                        head,
                        retried,
                        body,
                        conn: Some((host, c)),
                        client: self,
                    });
                }
                Err(mut e) => match (e.take_message(), again) {
                    // Not started on a connection the server had closed: send it on another.
                    (Some(r), _) if reused => req = r,
                    // Sent on a connection that had sat idle, and no answer came: the server
                    // closed it as the request went out. Once more, on a new connection.
                    (_, Some(r)) => {
                        retried = Some(format!(
                            "sent again on a new connection: the kept-alive one had been idle {} ms and failed before any answer ({})",
                            c.idle_since.elapsed().as_millis(),
                            error_chain(e.error())
                        ));
                        req = r;
                    }
                    _ => return Err(SendError::Request(error_chain(e.error()))),
                },
            }
        }
    }

    /// The index of `url`'s host (added on first use) and its `Host` header.
    fn host(&self, url: &url::Url, port: u16) -> Result<(usize, http::HeaderValue), SendError> {
        let name = url.host_str().unwrap_or_default();
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = hosts.iter().position(|h| h.port == port && h.host == name) {
            return Ok((i, hosts[i].header.clone()));
        }
        let value = &url[url::Position::BeforeHost..url::Position::AfterPort];
        let header = http::HeaderValue::from_str(value)
            .map_err(|e| SendError::Request(format!("host `{value}`: {e}")))?;
        if hosts.len() >= MAX_HOSTS {
            // Past the bound a host's connections are not pooled (no index to keep them under).
            return Ok((usize::MAX, header));
        }
        hosts.push(Host {
            host: name.to_string(),
            port,
            header: header.clone(),
            idle: Vec::new(),
        });
        Ok((hosts.len() - 1, header))
    }

    fn checkout(&self, host: usize) -> Option<Conn> {
        let lane = LANE_IDLE.with(|p| {
            let mut p = p.borrow_mut();
            let idle = p.as_mut()?;
            // The connection left last is the warmest.
            while let Some(i) = idle.iter().rposition(|(h, _)| *h == host) {
                let (_, c) = idle.swap_remove(i);
                if c.usable() {
                    return Some(Some(c));
                }
            }
            Some(None)
        });
        if let Some(c) = lane {
            return c;
        }
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        let idle = &mut hosts.get_mut(host)?.idle;
        while let Some(c) = idle.pop() {
            if c.usable() {
                return Some(c);
            }
        }
        None
    }

    fn checkin(&self, host: usize, mut c: Conn) {
        if !c.usable() {
            return;
        }
        c.idle_since = tokio::time::Instant::now();
        let c = LANE_IDLE.with(|p| match p.borrow_mut().as_mut() {
            Some(idle) => {
                // A lane sends to its target's one host (redirects aside): one host's bound
                // serves for the whole lane.
                if idle.len() < MAX_IDLE_PER_HOST {
                    idle.push((host, c));
                }
                None
            }
            None => Some(c),
        });
        let Some(c) = c else { return };
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = hosts.get_mut(host) {
            if h.idle.len() < MAX_IDLE_PER_HOST {
                h.idle.push(c);
            }
        }
    }

    async fn connect(&self, url: &url::Url, port: u16) -> Result<Conn, SendError> {
        let host = url.host_str().unwrap_or_default();
        let memory = self
            .memory
            .iter()
            .find(|(h, p, _)| h.eq_ignore_ascii_case(host) && *p == port);
        let connect = async {
            if let Some((.., dialer)) = memory {
                return Ok(Stream::Right(dialer.dial().await?));
            }
            let stream = match url.host() {
                Some(url::Host::Ipv4(ip)) => {
                    tokio::net::TcpStream::connect(SocketAddr::from((ip, port))).await
                }
                Some(url::Host::Ipv6(ip)) => {
                    tokio::net::TcpStream::connect(SocketAddr::from((ip, port))).await
                }
                _ => {
                    let name = url.host_str().unwrap_or_default();
                    tokio::net::TcpStream::connect((name, port)).await
                }
            }?;
            // Requests are small and answered at once: Nagle's delay would only add latency.
            stream.set_nodelay(true)?;
            Ok::<_, std::io::Error>(Stream::Left(stream))
        };
        let stream = match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(SendError::Connect(e.to_string())),
            Err(_) => {
                return Err(SendError::Connect(format!(
                    "no connection within {:?}",
                    self.connect_timeout
                )))
            }
        };
        let (sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| SendError::Connect(error_chain(&e)))?;
        Ok(Conn {
            sender,
            driver: Some(Box::pin(driver)),
            idle_since: tokio::time::Instant::now(),
        })
    }
}

impl Response<'_> {
    /// The body's length when the server declared it.
    pub fn content_length(&self) -> Option<u64> {
        http_body::Body::size_hint(&self.body).exact()
    }

    /// The next piece of the body, `None` at its end (the connection is then reusable).
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, String> {
        loop {
            // The body's declared length has arrived: its end needs no poll of the connection.
            if http_body::Body::is_end_stream(&self.body) {
                if let Some((host, c)) = self.conn.take() {
                    self.client.checkin(host, c);
                }
                return Ok(None);
            }
            let frame = match &mut self.conn {
                Some((_, c)) => Conn::drive(&mut c.driver, self.body.frame()).await,
                None => self.body.frame().await,
            };
            match frame {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if !data.is_empty() {
                            return Ok(Some(data));
                        }
                    }
                }
                Some(Err(e)) => {
                    self.conn = None;
                    return Err(error_chain(&e));
                }
                None => {
                    if let Some((host, c)) = self.conn.take() {
                        self.client.checkin(host, c);
                    }
                    return Ok(None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_without_credentials_only() {
        let ok = |u: &str| H1Client::handles(&url::Url::parse(u).unwrap());
        assert!(ok("http://127.0.0.1:8080/health"));
        assert!(ok("http://[::1]/x?y=1"));
        assert!(!ok("https://focus.lab/health"));
        assert!(!ok("http://user:pw@focus.lab/health"));
    }

    /// Reads one request's head from a test server's connection (`None`: the client closed it).
    async fn request_head(s: &mut tokio::net::TcpStream) -> Option<String> {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 4096];
        let mut seen = Vec::new();
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return None;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        Some(String::from_utf8_lossy(&seen).into_owned())
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        // Bind then drop: the port is (almost certainly) closed now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = url::Url::parse(&format!("http://127.0.0.1:{port}/x")).unwrap();
        let c = H1Client::new(Duration::from_secs(2));
        let r = c
            .send(&url, http::Request::new(Full::new(Bytes::new())))
            .await;
        assert!(matches!(r, Err(SendError::Connect(_))), "{:?}", r.err());
    }

    /// A server answering `ok` to `per_connection` requests on each connection, then closing
    /// it: announced in the last answer (`connection: close`) or not (as an idle timeout does).
    /// Returns its port and the number of connections it accepted.
    async fn ok_server(
        per_connection: usize,
        announce_close: bool,
    ) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let acc = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                acc.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    for n in 1..=per_connection {
                        let Some(seen) = request_head(&mut s).await else {
                            return;
                        };
                        assert!(seen.contains("host: 127.0.0.1:"), "{seen}");
                        let close = if announce_close && n == per_connection {
                            "connection: close\r\n"
                        } else {
                            ""
                        };
                        let head = format!("HTTP/1.1 200 OK\r\n{close}content-length: 2\r\n\r\nok");
                        let _ = s.write_all(head.as_bytes()).await;
                    }
                    let _ = s.shutdown().await;
                });
            }
        });
        (port, accepted)
    }

    /// Sends a request and reads the whole `ok` answer.
    async fn get_ok(c: &H1Client, url: &url::Url) {
        let mut r = c
            .send(url, http::Request::new(Full::new(Bytes::new())))
            .await
            .expect("a response");
        assert_eq!(r.head.status, 200);
        assert_eq!(r.chunk().await.unwrap().as_deref(), Some(&b"ok"[..]));
        assert_eq!(r.chunk().await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_connection_is_reused_after_its_body_was_read_and_replaced_when_closed() {
        let (port, accepted) = ok_server(2, true).await;
        let url = url::Url::parse(&format!("http://127.0.0.1:{port}/p?q=1")).unwrap();
        let c = H1Client::new(Duration::from_secs(2));
        for _ in 0..5 {
            get_ok(&c, &url).await;
        }
        // 5 requests, 2 per connection: 3 connections, none wasted on a failed send.
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    // Two workers: the test server answers while this one waits for the lane's thread.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lane_keeps_its_connections_to_itself_and_closes_them_when_it_ends() {
        let (port, accepted) = ok_server(100, false).await;
        let url = url::Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let c = std::sync::Arc::new(H1Client::new(Duration::from_secs(2)));
        let idle_shared = |c: &H1Client| {
            c.hosts
                .lock()
                .unwrap()
                .iter()
                .map(|h| h.idle.len())
                .sum::<usize>()
        };
        // A lane: a thread and runtime of its own, as a fan-out's lanes run.
        let (lane_c, lane_url) = (c.clone(), url.clone());
        let lane = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            with_lane_pool(|| {
                rt.block_on(async {
                    for _ in 0..3 {
                        get_ok(&lane_c, &lane_url).await;
                    }
                    // Reused within the lane, and never handed to the shared pool.
                    assert_eq!(idle_shared(&lane_c), 0);
                    LANE_IDLE.with(|p| assert_eq!(p.borrow().as_ref().map(Vec::len), Some(1)));
                })
            });
            LANE_IDLE.with(|p| assert!(p.borrow().is_none(), "emptied when the lane ended"));
        });
        tokio::task::spawn_blocking(move || lane.join().unwrap())
            .await
            .unwrap();
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Outside the lane: the lane's connection is gone, a new one goes to the shared pool.
        get_ok(&c, &url).await;
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(idle_shared(&c), 1);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_while_idle_is_not_used_again() {
        let (port, accepted) = ok_server(1, false).await;
        let url = url::Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let c = H1Client::new(Duration::from_secs(2));
        for _ in 0..3 {
            get_ok(&c, &url).await;
            // Let the server's close arrive before the next request.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}

#[cfg(test)]
mod idle_close_tests {
    use super::*;

    /// The simulator's own accept loop, closing connections idle for 200 ms (its header-read
    /// timeout), as a real server or proxy closes idle keep-alive connections.
    async fn idle_closing_server() -> u16 {
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (_tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let _keep = _tx;
            crate::sim::serve::serve(listener, app, || Duration::from_millis(200), rx).await
        });
        port
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_after_the_server_closed_the_idle_connection_is_answered() {
        let port = idle_closing_server().await;
        let url = url::Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let c = H1Client::new(Duration::from_secs(2));
        for _ in 0..3 {
            let r = tokio::time::timeout(Duration::from_secs(3), async {
                let mut r = c
                    .send(&url, http::Request::new(Full::new(Bytes::new())))
                    .await
                    .expect("a response");
                assert_eq!(r.head.status, 200);
                while r.chunk().await.unwrap().is_some() {}
            })
            .await;
            assert!(r.is_ok(), "answered in time");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

#[cfg(test)]
mod stale_retry_tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Answers the first request of each connection; the second one is read and the connection
    /// closed without an answer, as a server whose idle timeout fires while the request arrives.
    async fn closes_on_the_second_request() -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let acc = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                acc.fetch_add(1, SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                    let _ = s.read(&mut buf).await;
                    drop(s);
                });
            }
        });
        (port, accepted)
    }

    async fn send(c: &H1Client, url: &url::Url, m: http::Method) -> Result<Option<String>, String> {
        let mut r = http::Request::new(Full::new(Bytes::from_static(b"{}")));
        *r.method_mut() = m;
        let mut resp = c.send(url, r).await.map_err(|e| format!("{e:?}"))?;
        assert_eq!(resp.head.status, 200);
        while resp.chunk().await?.is_some() {}
        Ok(resp.retried.take())
    }

    #[tokio::test]
    async fn an_idempotent_request_that_a_stale_connection_dropped_is_sent_again_once() {
        let (port, accepted) = closes_on_the_second_request().await;
        let url = url::Url::parse(&format!("http://127.0.0.1:{port}/job/1")).unwrap();
        let c = H1Client::new(Duration::from_secs(2));
        assert_eq!(send(&c, &url, http::Method::GET).await, Ok(None));
        tokio::time::sleep(STALE_AFTER + Duration::from_millis(100)).await;
        let note = send(&c, &url, http::Method::DELETE).await.unwrap();
        assert!(
            note.as_deref()
                .is_some_and(|n| n.contains("sent again on a new connection")),
            "{note:?}"
        );
        assert_eq!(accepted.load(SeqCst), 2);
    }

    #[tokio::test]
    async fn a_post_that_was_written_is_never_sent_twice() {
        let (port, accepted) = closes_on_the_second_request().await;
        let url = url::Url::parse(&format!("http://127.0.0.1:{port}/configure")).unwrap();
        let c = H1Client::new(Duration::from_secs(2));
        assert_eq!(send(&c, &url, http::Method::POST).await, Ok(None));
        tokio::time::sleep(STALE_AFTER + Duration::from_millis(100)).await;
        let err = send(&c, &url, http::Method::POST).await.unwrap_err();
        assert!(err.contains("Request"), "{err}");
        assert_eq!(accepted.load(SeqCst), 1, "no second connection for a POST");
    }

    #[tokio::test]
    async fn a_hot_connection_keeps_no_copy_and_fails_plainly() {
        let (port, accepted) = closes_on_the_second_request().await;
        let url = url::Url::parse(&format!("http://127.0.0.1:{port}/x")).unwrap();
        let c = H1Client::new(Duration::from_secs(2));
        assert_eq!(send(&c, &url, http::Method::GET).await, Ok(None));
        // Reused at once: the server did not close it for idleness, so its failure is reported.
        assert!(send(&c, &url, http::Method::GET).await.is_err());
        assert_eq!(accepted.load(SeqCst), 1);
    }
}
