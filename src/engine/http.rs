//! `http` and `sim` steps: one request (and the redirects it leads to), measured from the moment
//! it is handed to the client until the whole body has arrived.
//!
//! What the engine does itself rather than leave to reqwest, and why:
//! - **redirects** are followed hop by hop here (the client never follows): the chain is
//!   checkable, cookies set on the way go to the case's jar, sensitive headers and the step's
//!   own cookies are dropped when a redirect leaves the origin, and the step's `timeout` bounds
//!   the whole chain;
//! - **cookies** live in a jar per case ([`CookieJar`], a `cookie_store` in [`super::Ctx`]),
//!   since the HTTP client is shared by every spec of a target;
//! - **content decoding** (gzip, deflate, br, zstd, and lists of them such as `gzip, br`)
//!   happens while the body streams in, so the `Content-Encoding` header and the size on the
//!   wire stay visible, and the body is bounded (`max_body`) after decoding as well as before.

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

use base64::Engine as _;
use bytes::Bytes;
use indexmap::IndexMap;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Value};

use super::{ExecError, Observation};
use crate::results::{RequestExcerpt, ResponseExcerpt, SentFile};
use crate::spec::{ExpectedError, HttpRequest};
use crate::template::Scope;

pub use crate::results::EXCERPT_BYTES;
pub use crate::targets::USER_AGENT;

/// The `Accept-Encoding` sent unless a step or the target sets one (all are decoded).
pub const ACCEPT_ENCODING: &str = "gzip, deflate, br, zstd";

/// What an HTTP step observed beyond status, headers and body text.
#[derive(Debug, Clone, Default)]
pub struct HttpObs {
    /// The final URL (after redirects).
    pub url: String,
    /// The redirects followed: `{status, url, location}` each.
    pub redirects: Vec<Value>,
    /// `HTTP/1.1`, `HTTP/2`, ...
    pub version: &'static str,
    /// Cookies set by the response and the redirects before it (latest wins), by name:
    /// `{name, value, domain, path, secure, http_only, same_site, expires, max_age}`.
    pub cookies: IndexMap<String, Value>,
    /// The body bytes after content decoding (at most `max_body`).
    pub bytes: Bytes,
    /// Decoded body bytes in all, kept or not.
    pub total_bytes: u64,
    /// Body bytes on the wire (before content decoding).
    pub raw_bytes: u64,
    /// The body was over `max_body`: only its start was kept.
    pub over_limit: bool,
    /// The failure that happened when the step expected one (`timeout`, `connect`,
    /// `too_many_redirects`).
    pub error: Option<&'static str>,
    pub error_message: Option<String>,
}

/// A case's cookie jar: cookies set by responses go with the later requests of the same case
/// (RFC 6265 domain, path, expiry and `Secure` rules, by `cookie_store`).
pub struct CookieJar {
    enabled: bool,
    /// Set by the first cookie stored: until then no request locks the store (a fan-out's
    /// iterations share one jar, and most loads never see a cookie).
    used: std::sync::atomic::AtomicBool,
    store: Mutex<cookie_store::CookieStore>,
}

impl CookieJar {
    pub fn new(enabled: bool) -> CookieJar {
        CookieJar {
            enabled,
            used: std::sync::atomic::AtomicBool::new(false),
            store: Mutex::new(cookie_store::CookieStore::new()),
        }
    }

    /// Forgets every cookie (a new case starts).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, cookie_store::CookieStore> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `name=value` pairs the jar holds for a URL.
    fn for_url(&self, url: &url::Url) -> Vec<(String, String)> {
        if !self.enabled || !self.used.load(std::sync::atomic::Ordering::Acquire) {
            return Vec::new();
        }
        self.lock()
            .get_request_values(url)
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn store(&self, set_cookie: &str, url: &url::Url) {
        if self.enabled {
            let mut store = self.lock();
            if store.parse(set_cookie, url).is_ok() {
                self.used.store(true, std::sync::atomic::Ordering::Release);
            }
        }
    }
}

/// Runs an `http` (or `sim`) step. When the step expects an error (`expect: {error: timeout}`)
/// and that error happens, it is an observation, not a failure to carry out the step.
impl super::step::Execute for HttpRequest {
    fn result_name(&self) -> crate::results::StepKindName {
        crate::results::StepKindName::Http
    }

    async fn execute(
        &self,
        step: &crate::spec::Step,
        scope: &mut Scope,
        ctx: &super::Ctx,
        _in_cleanup: bool,
    ) -> Result<Observation, ExecError> {
        let error = step.expect.as_ref().and_then(|e| e.error);
        execute(self, scope, ctx, false, error).await
    }

    fn needs(&self) -> Option<crate::spec::Capability> {
        Some(crate::spec::Capability::Http)
    }

    fn on_lane_threads(&self, ctx: &super::Ctx) -> bool {
        self.path.starts_with('/') && super::fanout::plain_http(ctx, ctx.target.base_url.as_deref())
    }
}

impl super::step::Execute for crate::spec::Sim {
    fn result_name(&self) -> crate::results::StepKindName {
        crate::results::StepKindName::Sim
    }

    async fn execute(
        &self,
        step: &crate::spec::Step,
        scope: &mut Scope,
        ctx: &super::Ctx,
        _in_cleanup: bool,
    ) -> Result<Observation, ExecError> {
        let error = step.expect.as_ref().and_then(|e| e.error);
        execute(&self.0, scope, ctx, true, error).await
    }

    fn unavailable(&self, ctx: &super::Ctx) -> Option<String> {
        ctx.target.sim_url.is_none().then(|| {
            format!(
                "`sim` steps need a simulator; target `{}` is not one",
                ctx.target.name
            )
        })
    }

    fn needs(&self) -> Option<crate::spec::Capability> {
        Some(crate::spec::Capability::Simulator)
    }

    fn on_lane_threads(&self, ctx: &super::Ctx) -> bool {
        self.0.path.starts_with('/')
            && super::fanout::plain_http(ctx, ctx.target.sim_url.as_deref())
    }
}

pub async fn execute(
    req: &HttpRequest,
    scope: &Scope,
    ctx: &super::Ctx,
    sim: bool,
    expected_error: Option<ExpectedError>,
) -> Result<Observation, ExecError> {
    let target = &ctx.target;
    // Built apart: what only building the request needs then takes no room in this future, nor
    // in each future around it (600 bytes less in each, by `-Zprint-type-sizes`).
    let Prepared {
        mut hop,
        mut request_cookies,
        timeout,
        follow,
        max_redirects,
        files,
    } = prepare(req, scope, ctx, sim)?;
    // Excerpts keep what was sent: secrets are redacted from the whole result when the spec
    // finishes (crate::results::secrets). Sensitive headers are learnt here already, so their
    // values also leave fan-out iterations, whose step results are not kept.
    let mut shown: Option<RequestExcerpt> = None;
    let mut redirects: Vec<Value> = Vec::new();
    let mut cookies: IndexMap<String, Value> = IndexMap::new();
    // The clock starts at the first hand-over to the client: templating is not latency.
    let mut t0: Option<Instant> = None;
    let mut resp = loop {
        let headers = hop.headers(&ctx.cookies, &request_cookies)?;
        for (k, v) in &headers {
            if crate::results::secrets::is_secret_header_name(k) {
                target
                    .secrets
                    .add_header(k.as_str(), &String::from_utf8_lossy(v.as_bytes()));
            }
        }
        // The request as first sent (a redirect's own request is in the chain). A fan-out
        // iteration's results feed statistics only, which never read the request.
        if redirects.is_empty() && !ctx.summarized {
            shown = Some(RequestExcerpt {
                method: hop.method.as_str().into(),
                url: hop.url.as_str().to_owned(),
                headers: pairs_of(&headers),
                body: hop.body.as_deref().map(body_excerpt),
                files: files.clone(),
            });
        }
        let start = *t0.get_or_insert_with(Instant::now);
        // One deadline for the whole chain: each redirect gets what is left of the timeout.
        let left = if redirects.is_empty() {
            timeout
        } else {
            (start + timeout).saturating_duration_since(Instant::now())
        };
        let sent = if left.is_zero() {
            Err(Failure {
                kind: Some("timeout"),
                message: String::new(),
            })
        } else {
            send(target, &hop, headers, left).await
        };
        let resp = match sent {
            Ok(r) => r,
            Err(mut f) => {
                if f.kind == Some("timeout") && !redirects.is_empty() {
                    f.message = chain_timeout(timeout, &redirects, &hop.url);
                }
                return failed(f, expected_error, start, shown, &hop.url, redirects);
            }
        };
        for v in resp.headers().get_all(http::header::SET_COOKIE) {
            let text = String::from_utf8_lossy(v.as_bytes()).into_owned();
            ctx.cookies.store(&text, &hop.url);
            if let Some(c) = parse_set_cookie(&text) {
                target.secrets.add_header("set-cookie", &text);
                let name = c["name"].as_str().unwrap_or_default().to_string();
                cookies.insert(name, c);
            }
        }
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get(http::header::LOCATION)
            .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned());
        let redirect = matches!(status, 301 | 302 | 303 | 307 | 308);
        match (follow && redirect, location) {
            (true, Some(loc)) => {
                if redirects.len() as u32 >= max_redirects {
                    let f = Failure {
                        kind: Some(TOO_MANY_REDIRECTS),
                        message: format!(
                            "too many redirects: more than {max_redirects} from {} (the last to {loc}); raise `max_redirects` or set `follow_redirects: false` to check them one by one",
                            redirects.first().and_then(|r| r["url"].as_str()).unwrap_or(hop.url.as_str())
                        ),
                    };
                    return failed(f, expected_error, start, shown, &hop.url, redirects);
                }
                let mut next = hop.url.join(&loc).map_err(|e| {
                    ExecError::infra(format!(
                        "redirect from {} to `{loc}`: not a valid URL: {e}",
                        hop.url
                    ))
                })?;
                // Credentials in a Location are sent as Basic auth too, not in the URL.
                let auth = take_userinfo(&mut next, &target.secrets);
                redirects.push(
                    json!({"status": status, "url": hop.url.as_str(), "location": next.as_str()}),
                );
                // The redirect's own body is not needed: the connection may be reused once read.
                let mut resp = resp;
                let left = (start + timeout).saturating_duration_since(Instant::now());
                let _ = tokio::time::timeout(Duration::from_secs(1).min(left), async {
                    while let Ok(Some(_)) = resp.chunk().await {}
                })
                .await;
                if hop.redirect(status, next) {
                    // The step's own cookies were written for the origin it named.
                    request_cookies.clear();
                }
                if let Some((user, password)) = auth {
                    hop.basic_auth(&target.secrets, &user, &password)?;
                }
            }
            _ => break resp,
        }
    };
    let t0 = t0.unwrap_or_else(Instant::now);
    let status = resp.status().as_u16();
    let retried = resp.retried();
    let version = version_name(resp.version());
    let final_url = hop.url.as_str().to_owned();
    let headers = super::Headers::new(resp.take_headers());
    let encoding = content_encoding(headers.map());
    let content_type = headers
        .map()
        .get(http::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
        .unwrap_or_default();
    let body = match read_body(resp, &encoding, target.max_body, timeout, t0).await {
        Ok(b) => b,
        Err(e) => {
            let mut err = ExecError::infra(format!("reading the response of {final_url}: {e}"));
            err.request = shown.map(Box::new);
            return Err(err);
        }
    };
    let elapsed = t0.elapsed();
    let (text, charset) = decode_text(&body.bytes, &content_type);
    // A fan-out iteration's excerpt is made only if the step fails (see Step::conclude).
    let (body_excerpt, cut) = if ctx.summarized {
        (String::new(), text.len() > EXCERPT_BYTES)
    } else {
        excerpt(&text)
    };
    for (k, v) in headers.map() {
        if crate::results::secrets::is_secret_header_name(k) {
            target
                .secrets
                .add_header(k.as_str(), &String::from_utf8_lossy(v.as_bytes()));
        }
    }
    let mut notes: Vec<String> = retried.into_iter().collect();
    if body.over_limit {
        notes.push(format!(
            "the body was over the target's max_body ({} bytes): its first {} bytes were kept, {} more were counted and discarded{}",
            target.max_body,
            body.bytes.len(),
            body.total - body.bytes.len() as u64,
            if body.stopped {
                " (it had not ended when the request's timeout passed: reading stopped there)"
            } else {
                ""
            }
        ));
    }
    if let Some(cs) = charset {
        notes.push(format!("body decoded from {cs}"));
    }
    if !encoding.is_empty() {
        if let Some(note) = coding_note(&encoding, body.raw, body.total) {
            notes.push(note);
        }
    }
    let response = ResponseExcerpt {
        status,
        headers: if ctx.summarized {
            Vec::new()
        } else {
            headers.pairs().to_vec()
        },
        body: (!body_excerpt.is_empty()).then_some(body_excerpt),
        truncated: cut || body.over_limit,
        elapsed_ms: super::ms(elapsed),
        raw_bytes: Some(body.raw),
        version: Some(Cow::Borrowed(version)),
        url: (!redirects.is_empty()).then(|| final_url.clone()),
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    };
    Ok(Observation {
        status: Some(status),
        headers,
        body: Some(text),
        elapsed,
        request: shown,
        response: Some(response),
        http: Some(Box::new(HttpObs {
            url: final_url,
            redirects,
            version,
            cookies,
            total_bytes: body.total,
            raw_bytes: body.raw,
            over_limit: body.over_limit,
            bytes: body.bytes,
            error: None,
            error_message: None,
        })),
        ..Default::default()
    })
}

/// The error kind of a redirect chain longer than `max_redirects` (`expect: {error: ...}`).
const TOO_MANY_REDIRECTS: &str = "too_many_redirects";

/// A request that got no response: an observation when the step expects an error (the check
/// judges the kind; a wrong kind fails the check, it is not an error), else the step's error.
fn failed(
    f: Failure,
    expected_error: Option<ExpectedError>,
    start: Instant,
    shown: Option<RequestExcerpt>,
    url: &url::Url,
    redirects: Vec<Value>,
) -> Result<Observation, ExecError> {
    // A request the virtual clock refused was never sent: no error of the server to expect.
    if expected_error.is_some() && f.kind.is_some_and(|k| k != "outside") {
        return Ok(Observation {
            elapsed: start.elapsed(),
            request: shown,
            http: Some(Box::new(HttpObs {
                url: url.to_string(),
                redirects,
                error: f.kind,
                error_message: Some(f.message),
                ..Default::default()
            })),
            ..Default::default()
        });
    }
    let mut err = ExecError::infra(f.message);
    err.request = shown.map(Box::new);
    Err(err)
}

/// The message of a redirect chain that did not end within the step's timeout.
fn chain_timeout(timeout: Duration, redirects: &[Value], url: &url::Url) -> String {
    let first = redirects
        .first()
        .and_then(|r| r["url"].as_str())
        .unwrap_or(url.as_str());
    format!(
        "timeout: the redirects from {first} did not end within the request's timeout of {}: {} redirects followed, the last to {url} (the timeout bounds the whole chain: raise the step's `timeout` or lower `max_redirects`)",
        super::step::fmt_dur(timeout),
        redirects.len(),
    )
}

/// Takes the credentials out of a URL (`http://user:pass@host/`), percent-decoded: they are
/// sent as Basic auth, as curl and browsers do, and the URL goes on without them. They are
/// secrets as written and decoded, even when an explicit `Authorization` replaces them.
fn take_userinfo(
    url: &mut url::Url,
    secrets: &crate::results::Secrets,
) -> Option<(String, String)> {
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    secrets.add_url(url.as_str());
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let creds = (decode(url.username()), decode(url.password().unwrap_or("")));
    secrets.add_basic_auth(&creds.0, &creds.1);
    // Cannot fail on a URL that had user-info (it has a host).
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Some(creds)
}

/// A request as its step wrote it, ready for its first hop.
struct Prepared<'t> {
    hop: Hop<'t>,
    request_cookies: Vec<(String, String)>,
    timeout: Duration,
    follow: bool,
    max_redirects: u32,
    /// Files the body was read from.
    files: Vec<SentFile>,
}

/// Renders the step's request: URL, query, headers, credentials, body, timeout and cookies.
fn prepare<'t>(
    req: &HttpRequest,
    scope: &Scope,
    ctx: &'t super::Ctx,
    sim: bool,
) -> Result<Prepared<'t>, ExecError> {
    let target = &*ctx.target;
    let path = scope.render_cow(&req.path)?;
    let base = if sim {
        target.sim_url.as_deref()
    } else {
        target.base_url.as_deref()
    };
    if base.is_none() && !crate::targets::is_absolute(&path) {
        return Err(ExecError::spec(format!(
            "target `{}` has no base_url for `{}`",
            target.name, req.path
        )));
    }
    let remember = matches!(path, Cow::Borrowed(_)); // a plain path, sent again and again
    let mut url = target
        .request_url(base, &path, remember)
        .map_err(ExecError::spec)?;
    if !req.query.is_empty() {
        let mut pairs: Vec<(String, String)> = Vec::new();
        match &req.query {
            crate::spec::Query::Map(m) => {
                for (k, v) in m {
                    let v = scope.render_value(v)?;
                    push_pairs(&mut pairs, k, &v);
                }
            }
            crate::spec::Query::Template(t) => {
                let rendered = scope.render_value(&Value::String(t.clone()))?;
                let Value::Object(m) = rendered else {
                    return Err(ExecError::spec(format!(
                        "query `{t}` rendered to {rendered}, not a map of parameters; give it a map such as `{{page: 1, id: [3, 4]}}`"
                    )));
                };
                for (k, v) in &m {
                    push_pairs(&mut pairs, k, v);
                }
            }
        }
        let mut q = url.query_pairs_mut();
        for (k, v) in &pairs {
            q.append_pair(k, v);
        }
    }
    let url_auth = take_userinfo(&mut url, &target.secrets);
    let method = reqwest::Method::from_bytes(req.method.as_str().as_bytes())
        .map_err(|e| ExecError::spec(format!("method `{}`: {e}", req.method.as_str())))?;

    // Headers: defaults, then the target's, then the step's (a name given replaces the earlier
    // values of that name; a list sends the header once per element). The first two are made
    // once per target; a request copies them only to change them.
    let mut headers = Cow::Borrowed(base_headers(target, sim)?);
    let mut explicit: Vec<String> = Vec::new();
    for (k, vs) in &req.headers {
        let name = header_name(k)?;
        let headers = headers.to_mut();
        headers.remove(&name);
        explicit.push(name.as_str().to_string());
        for v in &vs.0 {
            let v = scope
                .render_str(v)
                .map_err(|e| ExecError::spec(format!("header `{k}`: {}", e.message)))?;
            headers.append(name.clone(), header_value(k, &v)?);
        }
    }
    let has_explicit = |n: &str| explicit.iter().any(|e| e == n);
    // Basic auth: the step's; else an Authorization header the step wrote; else the URL's
    // credentials; else the target's (which replace a target Authorization header).
    let auth = match &req.basic_auth {
        Some(b) => Some((scope.render_str(&b.user)?, scope.render_str(&b.password)?)),
        None if has_explicit("authorization") => None,
        None => url_auth.or_else(|| target.basic_auth.clone()),
    };
    if let Some((user, password)) = &auth {
        set_basic_auth(headers.to_mut(), &target.secrets, user, password)?;
    }

    // Body: exactly one kind; its default Content-Type yields to an explicit one.
    let kinds = req.body_kinds();
    if kinds.len() > 1 {
        return Err(ExecError::spec(format!(
            "a request has at most one body, found {}",
            kinds.join(" + ")
        )));
    }
    let mut files = Vec::new();
    let (body, content_type) = build_body(req, scope, ctx, &mut files)?;
    if let Some(ct) = content_type {
        if !headers.contains_key("content-type") {
            set_header(headers.to_mut(), "content-type", &ct)?;
        }
    }
    let timeout = match &req.timeout {
        Some(t) => super::resolve_dur(t, scope)?,
        None => target.timeout,
    };
    let mut request_cookies: Vec<(String, String)> = Vec::new();
    for (k, v) in &req.cookies {
        request_cookies.push((k.clone(), scope.render_str(v)?));
    }

    Ok(Prepared {
        hop: Hop {
            method,
            url,
            headers,
            body,
        },
        request_cookies,
        timeout,
        follow: req.follow_redirects.unwrap_or(target.follow_redirects),
        max_redirects: req.max_redirects.unwrap_or(target.max_redirects),
        files,
    })
}

/// One request of a redirect chain.
struct Hop<'t> {
    method: reqwest::Method,
    url: url::Url,
    /// The target's own headers until the step or a redirect changes them.
    headers: Cow<'t, HeaderMap>,
    body: Option<Bytes>,
}

/// The headers every request to `target` starts with: focusqa's defaults, then the target's
/// own (not on simulator control requests). Made on first use; an invalid target header is the
/// error of every request that would send it.
fn base_headers(target: &crate::targets::Target, sim: bool) -> Result<&HeaderMap, ExecError> {
    let make = || {
        let mut h = HeaderMap::new();
        h.insert(
            reqwest::header::USER_AGENT,
            HeaderValue::from_static(USER_AGENT),
        );
        h.insert(reqwest::header::ACCEPT, HeaderValue::from_static("*/*"));
        h.insert(
            reqwest::header::ACCEPT_ENCODING,
            HeaderValue::from_static(ACCEPT_ENCODING),
        );
        if !sim {
            for (k, v) in &target.headers {
                set_header(&mut h, k, v).map_err(|e| e.message)?;
            }
        }
        Ok(h)
    };
    target.base_headers[usize::from(sim)]
        .get_or_init(make)
        .as_ref()
        .map_err(|m| ExecError::spec(m.clone()))
}

impl Hop<'_> {
    /// The headers to send: the step's and the target's, with the jar's cookies for this URL
    /// and then the step's own. A step cookie of the same name as a jar cookie is sent beside
    /// it, as curl does: the request goes as written, and the server's answer shows which won.
    fn headers(
        &self,
        jar: &CookieJar,
        request_cookies: &[(String, String)],
    ) -> Result<HeaderMap, ExecError> {
        let mut headers = self.headers.clone().into_owned();
        let mut pairs: Vec<(String, String)> = jar.for_url(&self.url);
        pairs.extend(request_cookies.iter().cloned());
        if !pairs.is_empty() {
            let mut line: Vec<String> = headers
                .get_all("cookie")
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            line.extend(pairs.iter().map(|(n, v)| format!("{n}={v}")));
            headers.insert(
                "cookie",
                HeaderValue::from_bytes(line.join("; ").as_bytes())
                    .map_err(|e| ExecError::spec(format!("cookie header: {e}")))?,
            );
        }
        Ok(headers)
    }

    /// Becomes the request a redirect asks for (RFC 9110 15.4): 303, and 301/302 after a POST,
    /// turn into a GET without body; 307/308 repeat the request. Leaving the origin (scheme,
    /// host or port) drops, for the rest of the chain, every sensitive header (by the names
    /// that make a header secret: `Authorization`, `Cookie`, `X-Api-Key`, `X-Auth-Token`, ...)
    /// and a written `Host`, as browsers and curl do; the jar adds the new origin's cookies.
    /// Returns whether the origin was left (the caller drops the step's cookies then).
    fn redirect(&mut self, status: u16, next: url::Url) -> bool {
        let to_get = status == 303 && self.method != reqwest::Method::HEAD
            || matches!(status, 301 | 302) && self.method == reqwest::Method::POST;
        if to_get {
            self.method = reqwest::Method::GET;
            self.body = None;
            for h in [
                "content-type",
                "content-length",
                "content-encoding",
                "transfer-encoding",
            ] {
                self.headers.to_mut().remove(h);
            }
        }
        let left = self.url.origin() != next.origin();
        if left {
            let dropped: Vec<HeaderName> = self
                .headers
                .keys()
                .filter(|n| {
                    *n == http::header::HOST || crate::results::secrets::is_secret_header_name(n)
                })
                .cloned()
                .collect();
            if !dropped.is_empty() {
                let headers = self.headers.to_mut();
                for n in dropped {
                    headers.remove(n);
                }
            }
        }
        self.url = next;
        left
    }

    /// Sends Basic auth (credentials a redirect's `Location` carried).
    fn basic_auth(
        &mut self,
        secrets: &crate::results::Secrets,
        user: &str,
        password: &str,
    ) -> Result<(), ExecError> {
        set_basic_auth(self.headers.to_mut(), secrets, user, password)
    }
}

/// Sets `Authorization: Basic ...`; the password (and `user:password`) become secrets.
fn set_basic_auth(
    h: &mut HeaderMap,
    secrets: &crate::results::Secrets,
    user: &str,
    password: &str,
) -> Result<(), ExecError> {
    secrets.add_basic_auth(user, password);
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    set_header(h, "authorization", &format!("Basic {token}"))
}

/// Adds query pairs for one key: a list repeats the key, `null` sends `key=`.
fn push_pairs(pairs: &mut Vec<(String, String)>, k: &str, v: &Value) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| push_pairs(pairs, k, i)),
        Value::Null => pairs.push((k.to_string(), String::new())),
        Value::String(s) => pairs.push((k.to_string(), s.clone())),
        other => pairs.push((k.to_string(), other.to_string())),
    }
}

fn header_name(k: &str) -> Result<HeaderName, ExecError> {
    HeaderName::from_bytes(k.trim().as_bytes()).map_err(|_| {
        ExecError::spec(format!(
            "header name `{k}` is not valid: a header name is a token (letters, digits, `-`, no spaces or `:`)"
        ))
    })
}

fn header_value(k: &str, v: &str) -> Result<HeaderValue, ExecError> {
    HeaderValue::from_bytes(v.as_bytes()).map_err(|_| {
        ExecError::spec(format!(
            "header `{k}`: the value {v:?} is not valid (no line breaks or control characters)"
        ))
    })
}

fn set_header(h: &mut HeaderMap, k: &str, v: &str) -> Result<(), ExecError> {
    h.insert(header_name(k)?, header_value(k, v)?);
    Ok(())
}

pub(crate) fn pairs_of(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Reads a file a request sends, by the rules `validate` applies to written-out paths (a
/// templated path is known only now): inside the project or `allow_paths`, a regular file, at
/// most the target's `max_body`. A refusal names the rule and never quotes the file.
fn read_sent_file(
    ctx: &super::Ctx,
    written: &str,
    what: &str,
    from: String,
    files: &mut Vec<SentFile>,
) -> Result<Vec<u8>, ExecError> {
    let path = ctx.spec_dir.join(written);
    let (canon, data) = ctx
        .target
        .access
        .read_body(&path, what)
        .map_err(|e| ExecError::spec(e.with_fix()))?;
    files.push(SentFile {
        from,
        path: crate::spec::access::display_path(&canon),
        bytes: data.len() as u64,
    });
    Ok(data)
}

/// The body bytes and their default Content-Type; the files read are added to `files`.
fn build_body(
    req: &HttpRequest,
    scope: &Scope,
    ctx: &super::Ctx,
    files: &mut Vec<SentFile>,
) -> Result<(Option<Bytes>, Option<String>), ExecError> {
    if let Some(j) = &req.json {
        let j = scope.render_value(j)?;
        let text = serde_json::to_string(&j).map_err(|e| ExecError::spec(e.to_string()))?;
        return Ok((Some(text.into()), Some("application/json".into())));
    }
    if let Some(b) = &req.body {
        return Ok((Some(scope.render_str(b)?.into()), None));
    }
    if let Some(b) = &req.body_base64 {
        let b = scope.render_str(b)?;
        let clean: String = b.split_whitespace().collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(clean.trim_end_matches('='))
            .or_else(|_| {
                base64::engine::general_purpose::STANDARD_NO_PAD.decode(clean.trim_end_matches('='))
            })
            .map_err(|e| ExecError::spec(format!("body_base64: not base64: {e}")))?;
        return Ok((Some(bytes.into()), None));
    }
    if let Some(f) = &req.body_file {
        let f = scope.render_str(f)?;
        let bytes = read_sent_file(ctx, &f, "body_file", "body_file".into(), files)?;
        return Ok((Some(bytes.into()), None));
    }
    if let Some(form) = &req.form {
        let mut pairs = Vec::new();
        for (k, v) in form {
            push_pairs(&mut pairs, k, &scope.render_value(v)?);
        }
        let text = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        return Ok((
            Some(text.into()),
            Some("application/x-www-form-urlencoded".into()),
        ));
    }
    if let Some(parts) = &req.multipart {
        let boundary = format!("focusqa-{}", uuid::Uuid::new_v4().simple());
        let mut out: Vec<u8> = Vec::new();
        for p in parts {
            let name = scope.render_str(&p.name)?;
            out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            let (data, filename, ct) = match (&p.value, &p.file) {
                (Some(v), None) => (scope.render_str(v)?.into_bytes(), None, None),
                (None, Some(f)) => {
                    let f = scope.render_str(f)?;
                    let data = read_sent_file(
                        ctx,
                        &f,
                        &format!("multipart part `{name}`: file"),
                        format!("multipart[{name}]"),
                        files,
                    )?;
                    let filename = match &p.filename {
                        Some(n) => scope.render_str(n)?,
                        None => Path::new(&f)
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or(f.clone()),
                    };
                    (
                        data,
                        Some(filename),
                        Some("application/octet-stream".to_string()),
                    )
                }
                _ => {
                    return Err(ExecError::spec(format!(
                        "multipart part `{name}` needs exactly one of `value` or `file`"
                    )))
                }
            };
            let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
            let mut head = format!("Content-Disposition: form-data; name=\"{}\"", quote(&name));
            if let Some(f) = &filename {
                head.push_str(&format!("; filename=\"{}\"", quote(f)));
            }
            head.push_str("\r\n");
            let ct = match &p.content_type {
                Some(c) => Some(scope.render_str(c)?),
                None => ct,
            };
            if let Some(ct) = ct {
                head.push_str(&format!("Content-Type: {ct}\r\n"));
            }
            head.push_str("\r\n");
            out.extend_from_slice(head.as_bytes());
            out.extend_from_slice(&data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        return Ok((
            Some(out.into()),
            Some(format!("multipart/form-data; boundary={boundary}")),
        ));
    }
    Ok((None, None))
}

/// A request body as shown in reports: its text, or its size when it is not text.
fn body_excerpt(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => excerpt(s).0,
        Err(_) => {
            let lossy = String::from_utf8_lossy(b);
            format!(
                "{} [{} bytes, not UTF-8: invalid bytes shown as \u{FFFD}]",
                excerpt(&lossy).0,
                b.len()
            )
        }
    }
}

/// A response body as read: the kept bytes (decoded), the totals, and whether it was cut.
struct ReadBody {
    bytes: Bytes,
    /// Decoded bytes in all.
    total: u64,
    /// Bytes on the wire.
    raw: u64,
    over_limit: bool,
    /// Reading stopped at the timeout while discarding the part over the limit.
    stopped: bool,
}

/// Keeps the first `limit` bytes written, counts the rest.
struct Bounded {
    kept: Vec<u8>,
    limit: usize,
    total: u64,
    /// Past the limit, decoding stops with [`PAST_DEADLINE`] once this passes: a small
    /// compressed body (layers of gzip) can decode to more than a step's time would allow.
    deadline: Instant,
}

/// The write error of a [`Bounded`] past its limit and deadline.
const PAST_DEADLINE: std::io::ErrorKind = std::io::ErrorKind::TimedOut;

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // By the count, not the kept bytes' length: those are taken out at the end.
        let room =
            usize::try_from((self.limit as u64).saturating_sub(self.total)).unwrap_or(usize::MAX);
        if room == 0 && Instant::now() >= self.deadline {
            return Err(PAST_DEADLINE.into());
        }
        self.kept.extend_from_slice(&buf[..room.min(buf.len())]);
        self.total += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where a decoder writes: the bounded body, or the decoder of the coding applied before.
enum Sink {
    Body(Bounded),
    Next(Box<Decoder>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Body(b) => b.write(buf),
            Sink::Next(d) => d.write(buf).map(|()| buf.len()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Decoder {
    Identity(Sink),
    Gzip(Box<flate2::write::MultiGzDecoder<Sink>>),
    Deflate(Box<flate2::write::ZlibDecoder<Sink>>),
    Brotli(Box<brotli::DecompressorWriter<Sink>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, Sink>>),
}

/// The content codings focusqa decodes (`identity` and `x-gzip` included).
fn known_coding(c: &str) -> bool {
    matches!(
        c,
        "identity" | "gzip" | "x-gzip" | "deflate" | "br" | "zstd"
    )
}

impl Decoder {
    /// A decoder for a `Content-Encoding` value: the codings are listed in the order they were
    /// applied (RFC 9110 8.4), so the last one is undone first and writes into the decoder of
    /// the one before. A list with a coding focusqa does not know keeps the body as received
    /// (see [`unknown_coding`]).
    fn new(encoding: &str, sink: Bounded) -> Result<Decoder, String> {
        let mut sink = Sink::Body(sink);
        let codings = || {
            encoding
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty() && *c != "identity")
        };
        if unknown_coding(encoding).is_some() {
            return Ok(Decoder::Identity(sink));
        }
        let mut codings = codings().peekable();
        while let Some(c) = codings.next() {
            let d = Decoder::one(c, sink)?;
            if codings.peek().is_none() {
                return Ok(d);
            }
            sink = Sink::Next(Box::new(d));
        }
        Ok(Decoder::Identity(sink))
    }

    fn one(coding: &str, sink: Sink) -> Result<Decoder, String> {
        Ok(match coding {
            "gzip" | "x-gzip" => Decoder::Gzip(Box::new(flate2::write::MultiGzDecoder::new(sink))),
            "deflate" => Decoder::Deflate(Box::new(flate2::write::ZlibDecoder::new(sink))),
            "br" => Decoder::Brotli(Box::new(brotli::DecompressorWriter::new(sink, 8192))),
            "zstd" => Decoder::Zstd(Box::new(
                zstd::stream::write::Decoder::new(sink).map_err(|e| e.to_string())?,
            )),
            _ => Decoder::Identity(sink),
        })
    }

    fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        match self {
            Decoder::Identity(s) => s.write_all(chunk),
            Decoder::Gzip(d) => d.write_all(chunk),
            Decoder::Deflate(d) => d.write_all(chunk),
            Decoder::Brotli(d) => d.write_all(chunk),
            Decoder::Zstd(d) => d.write_all(chunk),
        }
    }

    /// The bounded body at the end of the chain.
    fn sink(&self) -> &Bounded {
        let next = match self {
            Decoder::Identity(s) => s,
            Decoder::Gzip(d) => d.get_ref(),
            Decoder::Deflate(d) => d.get_ref(),
            Decoder::Brotli(d) => d.get_ref(),
            Decoder::Zstd(d) => d.get_ref(),
        };
        match next {
            Sink::Body(b) => b,
            Sink::Next(d) => d.sink(),
        }
    }

    fn sink_mut(&mut self) -> &mut Bounded {
        let next = match self {
            Decoder::Identity(s) => s,
            Decoder::Gzip(d) => d.get_mut(),
            Decoder::Deflate(d) => d.get_mut(),
            Decoder::Brotli(d) => d.get_mut(),
            Decoder::Zstd(d) => d.get_mut(),
        };
        match next {
            Sink::Body(b) => b,
            Sink::Next(d) => d.sink_mut(),
        }
    }

    /// Ends this decoder, then the ones it writes into, in turn (in place: when the deadline
    /// stops it, what was kept is still there).
    fn finish(&mut self) -> std::io::Result<()> {
        let next = match self {
            Decoder::Identity(s) => s,
            Decoder::Gzip(d) => {
                d.try_finish()?;
                d.get_mut()
            }
            Decoder::Deflate(d) => {
                d.try_finish()?;
                d.get_mut()
            }
            Decoder::Brotli(d) => {
                d.flush()?;
                d.close().map_err(|e| {
                    std::io::Error::new(e.kind(), format!("the brotli stream ended early ({e})"))
                })?;
                d.get_mut()
            }
            Decoder::Zstd(d) => {
                d.flush()?;
                d.get_mut()
            }
        };
        match next {
            Sink::Body(_) => Ok(()),
            Sink::Next(d) => d.finish(),
        }
    }
}

/// The first coding of a `Content-Encoding` value focusqa cannot decode, if any.
fn unknown_coding(encoding: &str) -> Option<&str> {
    encoding
        .split(',')
        .map(str::trim)
        .find(|c| !c.is_empty() && !known_coding(c))
}

/// Streams the body in, decoding it, keeping at most `limit` decoded bytes. Past the limit the
/// rest is read, counted and discarded until the body ends or the request's timeout passes
/// (an endless stream then ends the step with what was kept, not an error).
async fn read_body(
    mut resp: Resp<'_>,
    encoding: &str,
    limit: u64,
    timeout: Duration,
    t0: Instant,
) -> Result<ReadBody, String> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let hint = resp.content_length().unwrap_or(0).min(limit as u64) as usize;
    let deadline = t0 + timeout;
    let sink = Bounded {
        kept: Vec::with_capacity(hint.min(1 << 20)),
        limit,
        total: 0,
        deadline,
    };
    let mut dec = Decoder::new(encoding, sink)?;
    let mut raw = 0u64;
    let mut stopped = false;
    loop {
        let over = dec.sink().total > limit as u64;
        // A small body usually came in with the head: a timer is set only when the next piece
        // is not there yet (setting and dropping one is a tenth of a fan-out's own CPU).
        let mut piece = std::pin::pin!(resp.chunk());
        let next = match futures::poll!(piece.as_mut()) {
            std::task::Poll::Ready(r) => Ok(r),
            std::task::Poll::Pending => tokio::time::timeout_at(deadline, piece).await,
        };
        match next {
            Ok(Ok(Some(c))) => {
                raw += c.len() as u64;
                match dec.write(&c) {
                    Ok(()) => {}
                    // Past max_body and the timeout: what was kept is the body.
                    Err(e) if e.kind() == PAST_DEADLINE => {
                        stopped = true;
                        break;
                    }
                    Err(e) => return Err(format!("cannot decode the {encoding} body: {e}")),
                }
            }
            Ok(Ok(None)) => break,
            Ok(Err(e)) if over && e.timeout => {
                stopped = true;
                break;
            }
            Err(_) if over => {
                stopped = true;
                break;
            }
            Ok(Err(e)) => return Err(e.message),
            Err(_) => {
                return Err(format!(
                    "timeout: the body did not arrive within {} (raise the step's `timeout` or the target's `timeout`)",
                    super::step::fmt_dur(timeout)
                ))
            }
        }
    }
    if !stopped {
        match dec.finish() {
            Ok(()) => {}
            // Past max_body and the timeout while the decoders gave their last output.
            Err(e) if e.kind() == PAST_DEADLINE => stopped = true,
            Err(e) => return Err(format!("cannot decode the {encoding} body: {e}")),
        }
    }
    // When the stream was cut, what was decoded so far is what there is.
    let sink = dec.sink_mut();
    let (kept, total) = (std::mem::take(&mut sink.kept), sink.total);
    Ok(ReadBody {
        over_limit: total > limit as u64,
        total,
        bytes: Bytes::from(kept),
        raw,
        stopped,
    })
}

/// The `Content-Encoding` of a response, lower-cased, its fields joined into one list (a
/// header given twice is the same as one with both values).
fn content_encoding(h: &HeaderMap) -> String {
    let mut all = h.get_all(http::header::CONTENT_ENCODING).iter();
    let Some(first) = all.next() else {
        return String::new();
    };
    let mut list = String::from_utf8_lossy(first.as_bytes())
        .trim()
        .to_ascii_lowercase();
    for v in all {
        list.push_str(", ");
        list.push_str(
            &String::from_utf8_lossy(v.as_bytes())
                .trim()
                .to_ascii_lowercase(),
        );
    }
    list
}

/// The response excerpt's note on its content codings, `None` for `identity` only.
fn coding_note(encoding: &str, raw: u64, total: u64) -> Option<String> {
    if let Some(c) = unknown_coding(encoding) {
        return Some(format!(
            "Content-Encoding `{c}` is not one focusqa decodes (gzip, deflate, br, zstd): the body is kept as received"
        ));
    }
    let codings: Vec<&str> = encoding
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty() && *c != "identity")
        .collect();
    let how = match codings.as_slice() {
        [] => return None,
        [one] => format!("{one}-encoded"),
        more => format!("encoded with {} (undone last first)", more.join(", then ")),
    };
    Some(format!("{how}: {raw} bytes on the wire, {total} decoded"))
}

/// The body as text, by its declared charset (UTF-8 when none is declared): the text, and the
/// charset's name when it was another one.
fn decode_text(bytes: &[u8], content_type: &str) -> (String, Option<&'static str>) {
    let label = content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"').to_string())
    });
    let enc = label
        .as_deref()
        .and_then(|l| encoding_rs::Encoding::for_label(l.as_bytes()))
        .unwrap_or(encoding_rs::UTF_8);
    let (text, _, _) = enc.decode(bytes);
    let name = (enc != encoding_rs::UTF_8).then(|| enc.name());
    (text.into_owned(), name)
}

/// A `Set-Cookie` header as an object: `{name, value, domain, path, secure, http_only,
/// same_site, expires, max_age}` (absent attributes are null, flags false).
pub fn parse_set_cookie(header: &str) -> Option<Value> {
    let mut parts = header.split(';');
    let (name, value) = parts.next()?.split_once('=')?;
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    let mut c = json!({
        "name": name, "value": value.trim().trim_matches('"'),
        "domain": null, "path": null, "secure": false, "http_only": false,
        "same_site": null, "expires": null, "max_age": null,
    });
    for attr in parts {
        let (k, v) = match attr.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
            None => (attr.trim().to_ascii_lowercase(), None),
        };
        match (k.as_str(), v) {
            ("domain", Some(v)) => c["domain"] = json!(v.trim_start_matches('.')),
            ("path", Some(v)) => c["path"] = json!(v),
            ("secure", _) => c["secure"] = json!(true),
            ("httponly", _) => c["http_only"] = json!(true),
            ("samesite", Some(v)) => c["same_site"] = json!(v),
            ("expires", Some(v)) => c["expires"] = json!(v),
            ("max-age", Some(v)) => {
                c["max_age"] = v.parse::<i64>().map(|n| json!(n)).unwrap_or(json!(v))
            }
            _ => {}
        }
    }
    Some(c)
}

/// The start of a body as reports show it, and whether it was cut.
pub(super) fn excerpt(s: &str) -> (String, bool) {
    if s.len() <= EXCERPT_BYTES {
        return (s.to_string(), false);
    }
    let mut end = EXCERPT_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (s[..end].to_string(), true)
}

/// `HTTP/1.1`, `HTTP/2`, `HTTP/3` (as people write them, not `HTTP/2.0`).
fn version_name(v: reqwest::Version) -> &'static str {
    match v {
        reqwest::Version::HTTP_09 => "HTTP/0.9",
        reqwest::Version::HTTP_10 => "HTTP/1.0",
        reqwest::Version::HTTP_11 => "HTTP/1.1",
        reqwest::Version::HTTP_2 => "HTTP/2",
        reqwest::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/?",
    }
}

/// Why a request got no response: the kind in the words of `expect: {error: ...}` (`timeout`,
/// `connect`; `None` for other failures) and what to tell the user.
struct Failure {
    kind: Option<&'static str>,
    message: String,
}

impl Failure {
    /// Says what went wrong in words a QA engineer can act on.
    fn new(kind: Option<&'static str>, detail: &str, url: &str) -> Failure {
        let message = match kind {
            Some("timeout") => format!("timeout: no answer from {url} in time (raise the step's `timeout` or the target's `timeout`)"),
            Some("outside") => format!("not sent: {detail}"),
            Some(_) if detail.to_lowercase().contains("certificate") => format!("TLS error connecting to {url}: {detail} (for lab servers set `tls.insecure: true` or `tls.ca_file` on the target)"),
            Some(_) => format!("cannot connect to {url}: {detail} (is the server up and the target's base_url right?)"),
            None => format!("request to {url} failed: {detail}"),
        };
        Failure { kind, message }
    }

    fn of_reqwest(e: &reqwest::Error, url: &str) -> Failure {
        use std::error::Error;
        let mut root = String::new();
        let mut src = e.source();
        while let Some(s) = src {
            root = s.to_string();
            src = s.source();
        }
        let detail = if root.is_empty() { e.to_string() } else { root };
        let kind = if e.is_timeout() {
            Some("timeout")
        } else if e.is_connect() {
            Some("connect")
        } else {
            None
        };
        Failure::new(kind, &detail, url)
    }
}

/// Sends one hop: plain `http://` through the target's lean HTTP/1.1 client, the rest (https,
/// HTTP/2, proxies) through reqwest. `timeout` bounds the answer here and the body later.
async fn send<'a>(
    target: &'a crate::targets::Target,
    hop: &Hop<'_>,
    headers: HeaderMap,
    timeout: Duration,
) -> Result<Resp<'a>, Failure> {
    use crate::targets::h1::{H1Client, SendError};
    if let Some(why) = target.refuses(&hop.url) {
        return Err(Failure::new(Some("outside"), &why, hop.url.as_str()));
    }
    match &target.h1 {
        Some(h1) if H1Client::handles(&hop.url) => {
            // Built in the call: a request held in a local would take room in this future.
            let request = |headers| {
                let body = http_body_util::Full::new(hop.body.clone().unwrap_or_default());
                let mut r = http::Request::new(body);
                *r.method_mut() = hop.method.clone();
                *r.headers_mut() = headers;
                r
            };
            match tokio::time::timeout(timeout, h1.send(&hop.url, request(headers))).await {
                Ok(Ok(resp)) => Ok(Resp::Lean(resp)),
                Ok(Err(SendError::Connect(m))) => {
                    Err(Failure::new(Some("connect"), &m, hop.url.as_str()))
                }
                Ok(Err(SendError::Request(m))) => Err(Failure::new(None, &m, hop.url.as_str())),
                Err(_) => Err(Failure::new(Some("timeout"), "", hop.url.as_str())),
            }
        }
        _ => {
            // As the lean client does: an idempotent request whose connection failed before
            // any answer (a kept-alive connection the server had closed) goes once more.
            let t0 = Instant::now();
            let mut retried = None;
            let (mut refusals, mut resent_after_drop) = (0, false);
            loop {
                let mut r = reqwest::Request::new(hop.method.clone(), hop.url.clone());
                *r.headers_mut() = headers.clone();
                if let Some(b) = &hop.body {
                    *r.body_mut() = Some(reqwest::Body::from(b.clone()));
                }
                *r.timeout_mut() = Some(timeout.saturating_sub(t0.elapsed()));
                match target.http.execute(r).await {
                    Ok(resp) => return Ok(Resp::Reqwest(resp, retried)),
                    // Several may be needed: past nginx's `keepalive_requests` every stream in
                    // flight above the GOAWAY's last id is refused at once, and a burst of 200
                    // can meet the next connection's limit too.
                    Err(e) if refusals < MAX_REFUSALS && refused_unprocessed(&e) => {
                        refusals += 1;
                        retried = Some(format!(
                            "sent again{}: the server refused {} unprocessed ({})",
                            if refusals > 1 {
                                format!(" ({refusals} times)")
                            } else {
                                String::new()
                            },
                            if refusals > 1 {
                                "the earlier tries"
                            } else {
                                "the first try"
                            },
                            crate::targets::error_chain(&e)
                        ));
                    }
                    Err(e)
                        if !resent_after_drop
                            && crate::targets::h1::idempotent(&hop.method)
                            && connection_dropped(&e) =>
                    {
                        resent_after_drop = true;
                        retried = Some(format!(
                            "sent again on a new connection: the first try failed before any answer ({})",
                            crate::targets::error_chain(&e)
                        ));
                    }
                    Err(e) => return Err(Failure::of_reqwest(&e, hop.url.as_str())),
                }
            }
        }
    }
}

/// How many times a request the server refused unprocessed is sent again.
const MAX_REFUSALS: u32 = 3;

/// An HTTP/2 stream the server declared unprocessed: reset with REFUSED_STREAM, or above the last
/// stream id of the server's GOAWAY (nginx sends one after `keepalive_requests` or when it
/// reloads, while more requests are on their way). RFC 9113 8.7: such a request may be sent
/// again whatever its method, a POST included: the server did not act on it.
fn refused_unprocessed(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(h) = c.downcast_ref::<h2::Error>() {
            return h.reason() == Some(h2::Reason::REFUSED_STREAM)
                || (h.is_go_away() && h.is_remote());
        }
        // hyper's HTTP/2 connection task ended (the server's GOAWAY closed the connection)
        // while the request still waited in its queue, never handed to h2: not sent. hyper
        // has no predicate for this one, only its text.
        if c.downcast_ref::<hyper::Error>()
            .is_some_and(|h| h.to_string() == "dispatch task is gone")
        {
            return true;
        }
        cur = c.source();
    }
    false
}

/// A request that went out on a connection which then ended without a byte of answer (closed or
/// reset by the server): not a timeout, not a failure to connect.
fn connection_dropped(e: &reqwest::Error) -> bool {
    if e.is_timeout() || e.is_connect() {
        return false;
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(h) = c.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() {
                return true;
            }
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(io.kind(), ConnectionReset | BrokenPipe | ConnectionAborted) {
                return true;
            }
        }
        cur = c.source();
    }
    false
}

/// A response from either client.
enum Resp<'a> {
    /// With why it was sent twice, when it was.
    Reqwest(reqwest::Response, Option<String>),
    Lean(crate::targets::h1::Response<'a>),
}

/// A body that could not be read to its end.
struct BodyError {
    timeout: bool,
    message: String,
}

impl Resp<'_> {
    /// Why the request was sent a second time, when it was.
    fn retried(&mut self) -> Option<String> {
        match self {
            Resp::Reqwest(_, r) => r.take(),
            Resp::Lean(r) => r.retried.take(),
        }
    }

    fn status(&self) -> http::StatusCode {
        match self {
            Resp::Reqwest(r, _) => r.status(),
            Resp::Lean(r) => r.head.status,
        }
    }

    fn headers(&self) -> &HeaderMap {
        match self {
            Resp::Reqwest(r, _) => r.headers(),
            Resp::Lean(r) => &r.head.headers,
        }
    }

    fn version(&self) -> http::Version {
        match self {
            Resp::Reqwest(r, _) => r.version(),
            Resp::Lean(r) => r.head.version,
        }
    }

    /// The headers, taken out (the body is read after).
    fn take_headers(&mut self) -> HeaderMap {
        match self {
            Resp::Reqwest(r, _) => std::mem::take(r.headers_mut()),
            Resp::Lean(r) => std::mem::take(&mut r.head.headers),
        }
    }

    fn content_length(&self) -> Option<u64> {
        match self {
            Resp::Reqwest(r, _) => r.content_length(),
            Resp::Lean(r) => r.content_length(),
        }
    }

    async fn chunk(&mut self) -> Result<Option<Bytes>, BodyError> {
        match self {
            Resp::Reqwest(r, _) => r.chunk().await.map_err(|e| BodyError {
                timeout: e.is_timeout(),
                message: Failure::of_reqwest(&e, "").message,
            }),
            Resp::Lean(r) => r.chunk().await.map_err(|m| BodyError {
                timeout: false,
                message: format!("the body broke off: {m}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error whose cause is `inner`, as reqwest and hyper wrap h2's.
    #[derive(Debug)]
    struct Wrapped(h2::Error);
    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "request failed")
        }
    }
    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn only_a_stream_refused_unprocessed_may_be_sent_again_whatever_its_method() {
        let refused = Wrapped(h2::Reason::REFUSED_STREAM.into());
        assert!(refused_unprocessed(&refused));
        for reason in [
            h2::Reason::INTERNAL_ERROR,
            h2::Reason::CANCEL,
            h2::Reason::NO_ERROR,
        ] {
            // A reset of a stream the server may have acted on: not sent again.
            assert!(!refused_unprocessed(&Wrapped(reason.into())), "{reason:?}");
        }
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(!refused_unprocessed(&io));
    }

    #[test]
    fn http_set_cookie_attributes() {
        let c = parse_set_cookie(
            "sid=abc; Path=/; Domain=.example.com; Secure; HttpOnly; SameSite=Lax; Max-Age=60; Expires=Wed, 21 Oct 2037 07:28:00 GMT",
        )
        .unwrap();
        assert_eq!(c["name"], "sid");
        assert_eq!(c["value"], "abc");
        assert_eq!(c["domain"], "example.com");
        assert_eq!(c["secure"], true);
        assert_eq!(c["http_only"], true);
        assert_eq!(c["same_site"], "Lax");
        assert_eq!(c["max_age"], 60);
        assert_eq!(c["expires"], "Wed, 21 Oct 2037 07:28:00 GMT");
        assert!(parse_set_cookie("garbage").is_none());
    }

    #[test]
    fn http_query_pairs() {
        let mut p = Vec::new();
        push_pairs(&mut p, "a", &Value::Null);
        push_pairs(&mut p, "b", &json!([1, 2]));
        push_pairs(&mut p, "c", &json!("x y"));
        assert_eq!(
            p,
            [("a", ""), ("b", "1"), ("b", "2"), ("c", "x y")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn bounded(limit: usize) -> Bounded {
        Bounded {
            kept: Vec::new(),
            limit,
            total: 0,
            deadline: Instant::now() + Duration::from_secs(60),
        }
    }

    /// Feeds `wire` in small pieces, as a body streams in, and finishes.
    fn decode(encoding: &str, wire: &[u8], limit: usize) -> (Vec<u8>, u64) {
        let mut d = Decoder::new(encoding, bounded(limit)).unwrap();
        for piece in wire.chunks(7) {
            d.write(piece).unwrap();
        }
        d.finish().unwrap();
        let s = d.sink_mut();
        (std::mem::take(&mut s.kept), s.total)
    }

    #[test]
    fn http_codings_are_undone_last_first() {
        let text = b"hello hello hello hello";
        let deflate_then_br = {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            z.write_all(text).unwrap();
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                w.write_all(&z.finish().unwrap()).unwrap();
            }
            out
        };
        assert_eq!(decode("deflate, br", &deflate_then_br, 1 << 20).0, text);
        assert_eq!(decode("gzip, gzip", &gzip(&gzip(text)), 1 << 20).0, text);
        let br = {
            let mut out = Vec::new();
            brotli::CompressorWriter::new(&mut out, 4096, 5, 22)
                .write_all(text)
                .unwrap();
            out
        };
        assert_eq!(decode("br, identity", &br, 1 << 20).0, text);
        // An unknown coding anywhere: kept as received.
        let wire = gzip(text);
        assert_eq!(decode("gzip, x-secret", &wire, 1 << 20).0, wire);
        assert_eq!(unknown_coding("gzip, x-secret"), Some("x-secret"));
        // The bound is on the decoded output of the whole list.
        let big = vec![b'a'; 100_000];
        let (kept, total) = decode("gzip, gzip", &gzip(&gzip(&big)), 1000);
        assert_eq!((kept.len(), total), (1000, 100_000));
    }

    #[test]
    fn http_decoding_past_the_limit_stops_at_the_deadline() {
        let mut sink = bounded(10);
        sink.deadline = Instant::now();
        let mut d = Decoder::new("gzip, gzip", sink).unwrap();
        // A small body of a million bytes: whether its output comes while writing or finishing,
        // decoding stops once past the limit and the deadline, with the kept start intact.
        let wire = gzip(&gzip(&vec![b'a'; 1_000_000]));
        let err = d.write(&wire).and_then(|()| d.finish()).unwrap_err();
        assert_eq!(err.kind(), PAST_DEADLINE);
        assert_eq!(d.sink().kept, b"aaaaaaaaaa");
        assert!(d.sink().total < 1_000_000);
    }

    #[test]
    fn http_coding_notes() {
        assert_eq!(coding_note("identity", 5, 5), None);
        assert_eq!(
            coding_note("gzip", 5, 9).unwrap(),
            "gzip-encoded: 5 bytes on the wire, 9 decoded"
        );
        assert!(coding_note("br, identity", 5, 9)
            .unwrap()
            .starts_with("br-encoded"));
        assert!(coding_note("deflate, br", 5, 9)
            .unwrap()
            .contains("deflate, then br"));
        assert!(coding_note("compress", 5, 5)
            .unwrap()
            .contains("kept as received"));
        let mut h = HeaderMap::new();
        h.append("content-encoding", HeaderValue::from_static("GZIP"));
        h.append("content-encoding", HeaderValue::from_static("br "));
        assert_eq!(content_encoding(&h), "gzip, br");
        assert_eq!(content_encoding(&HeaderMap::new()), "");
    }

    #[test]
    fn http_url_credentials_are_taken_out_decoded_and_secret() {
        let secrets = crate::results::Secrets::new();
        let mut u = url::Url::parse("http://qa%20user:p%40ss-w0rd@h.test:81/x?y=1").unwrap();
        let creds = take_userinfo(&mut u, &secrets).unwrap();
        assert_eq!(creds, ("qa user".to_string(), "p@ss-w0rd".to_string()));
        assert_eq!(u.as_str(), "http://h.test:81/x?y=1");
        assert_eq!(
            secrets.redact_str("p@ss-w0rd p%40ss-w0rd"),
            "[redacted] [redacted]"
        );
        let mut plain = url::Url::parse("http://h.test/").unwrap();
        assert_eq!(take_userinfo(&mut plain, &secrets), None);
    }

    #[test]
    fn http_leaving_the_origin_drops_sensitive_headers() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("x-api-key", "k"),
            ("x-auth-token", "t"),
            ("authorization", "Bearer b"),
            ("cookie", "a=b"),
            ("host", "virtual.test"),
            ("x-keep", "kept"),
        ] {
            h.insert(k, HeaderValue::from_static(v));
        }
        let hop = |url: &str| Hop {
            method: reqwest::Method::GET,
            url: url::Url::parse(url).unwrap(),
            headers: Cow::Owned(h.clone()),
            body: None,
        };
        let mut same = hop("http://a.test:1/x");
        assert!(!same.redirect(302, url::Url::parse("http://a.test:1/y").unwrap()));
        assert_eq!(same.headers.len(), 6);
        for to in [
            "http://a.test:2/y",
            "https://a.test:1/y",
            "http://b.test:1/y",
        ] {
            let mut other = hop("http://a.test:1/x");
            assert!(other.redirect(302, url::Url::parse(to).unwrap()), "{to}");
            let left: Vec<&str> = other.headers.keys().map(|k| k.as_str()).collect();
            assert_eq!(left, ["x-keep"], "{to}");
        }
    }

    #[test]
    fn http_charsets() {
        let (t, cs) = decode_text(b"caf\xe9", "text/plain; charset=ISO-8859-1");
        assert_eq!(t, "café");
        assert_eq!(cs, Some("windows-1252"));
        let (t, cs) = decode_text("café".as_bytes(), "text/plain");
        assert_eq!((t.as_str(), cs), ("café", None));
    }
}
