//! Secrets, and their redaction from the results model.
//!
//! A run collects secret values in one [`Secrets`] set: the run makes it and hands it to what
//! finds secrets (its target, its templates' scopes, the engine), never a process-wide list:
//!
//! - every value a template of the run read from `env.*` (reported by the run's scopes through
//!   [`Secrets::env_sink`]), except values too generic to hide (see [`env_value_is_secret`]);
//! - the values of target headers that are templates or have a sensitive name;
//! - values that sit under a sensitive name anywhere in the model: request and response headers
//!   ([`is_secret_header`]), URL user-info and query parameters, JSON fields, captures and
//!   variables named like secrets ([`is_secret_key`]);
//! - spec variables listed under `secrets:` and captures marked `secret: true` (added at run time
//!   by the engine, so a token captured in one step is hidden everywhere);
//! - `basic_auth` passwords ([`Secrets::add_basic_auth`], for when targets get that option).
//!
//! Redaction is **by value**: each secret, its JSON-escaped form, its base64 encodings (standard
//! and URL-safe, with and without padding, also at the three byte alignments so a secret inside a
//! longer encoded text such as `base64("Bearer <token>")` is found) and its percent-encodings are
//! replaced by [`REDACTED`] in every string of the model, map keys included. It runs once per
//! spec, when the spec's result is finished and before it is sent to reporters, and once more over
//! the whole report at the end of the run (secrets found late also leave earlier specs).

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock, Mutex};

use aho_corasick::AhoCorasick;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use indexmap::IndexMap;
use percent_encoding::{
    percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC,
};
use regex::Regex;
use serde_json::Value;

use super::{RunReport, SpecResult, StepResult};

/// What replaces a secret in results and reports.
pub const REDACTED: &str = "[redacted]";

/// Values shorter than this (in characters, ignoring surrounding spaces) are never secrets:
/// hiding every `ab` would make reports unreadable and protect nothing.
pub const MIN_SECRET_CHARS: usize = 4;

/// Encoded fragments (base64 at a byte offset) shorter than this are not searched for.
const MIN_FRAGMENT: usize = 6;

/// A secret cut by a truncation (`…`, or the end of a body excerpt) is hidden when at least this
/// many bytes of it are left.
const MIN_PARTIAL: usize = 4;

// ---------------------------------------------------------------------------------------------
// Names that make a value secret
// ---------------------------------------------------------------------------------------------

/// Header names whose values never appear in results or reports.
pub fn is_secret_header(name: &str) -> bool {
    // Asked for every header of every request and response: one case-insensitive automaton,
    // no allocation (a lowercase copy and ten substring searches were a tenth of a fan-out's CPU).
    static PARTS: LazyLock<AhoCorasick> = LazyLock::new(|| {
        AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build([
                "token",
                "secret",
                "password",
                "passwd",
                "api-key",
                "apikey",
                "api_key",
                "session",
                "auth",
                "credential",
                "cookie",
            ])
            .expect("static patterns")
    });
    // `authorization`, `proxy-authorization`, `cookie` and `set-cookie` contain a part too.
    PARTS.is_match(name)
}

/// [`is_secret_header`] for a parsed header name: the standard headers every exchange carries
/// are answered without a search.
pub fn is_secret_header_name(name: &http::HeaderName) -> bool {
    // A match on the text compiles to a switch on its length: cheaper than comparing names.
    let plain = matches!(
        name.as_str(),
        "accept"
            | "accept-encoding"
            | "cache-control"
            | "connection"
            | "content-encoding"
            | "content-length"
            | "content-type"
            | "date"
            | "etag"
            | "host"
            | "last-modified"
            | "location"
            | "server"
            | "transfer-encoding"
            | "user-agent"
            | "vary"
    );
    !plain && is_secret_header(name.as_str())
}

/// JSON field, capture and variable names whose values are secrets (`password`, `api_key`,
/// `accessToken`...: compared without case and punctuation).
pub fn is_secret_key(name: &str) -> bool {
    let n: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    matches!(
        n.as_str(),
        "password"
            | "passwd"
            | "secret"
            | "token"
            | "accesstoken"
            | "refreshtoken"
            | "idtoken"
            | "apikey"
            | "authorization"
            | "clientsecret"
            | "cookie"
            | "bearer"
    )
}

/// Query parameter names whose values are secrets: `sig`, or names containing `token`,
/// `secret`, `password`/`passwd`, `api-key`/`api_key`/`apikey`, `signature`, `auth` (not
/// `author`), `session`, `credential` (case ignored).
pub fn is_secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "sig"
        || (n.contains("auth") && !n.contains("author"))
        || n.contains("authorization")
        || [
            "token",
            "secret",
            "password",
            "passwd",
            "api-key",
            "api_key",
            "apikey",
            "signature",
            "session",
            "credential",
        ]
        .iter()
        .any(|k| n.contains(k))
}

/// A query parameter: separator, name, value.
static QUERY_PARAM: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"([?&;])([^=&#;?]*)=([^&#;]*)").expect("static regex"));
static URL_USERINFO: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(://)([^/@\s]+)@").expect("static regex"));
/// `"key": value` in JSON text (also in a truncated excerpt, which does not parse).
static JSON_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#""((?:[^"\\]|\\.)*)"(\s*:\s*)("(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*|true|false)"#)
        .expect("static regex")
});

/// A URL with its user-info and secret-looking query parameters hidden.
pub fn redact_url(url: &str) -> String {
    let u = URL_USERINFO.replace(url, format!("${{1}}{REDACTED}@"));
    let Some(q) = u.find('?') else {
        return u.into_owned();
    };
    let query = QUERY_PARAM.replace_all(&u[q..], |c: &regex::Captures| {
        if is_secret_param(&c[2]) {
            format!("{}{}={REDACTED}", &c[1], &c[2])
        } else {
            c[0].to_string()
        }
    });
    format!("{}{query}", &u[..q])
}

/// JSON text with the values of secret-looking fields hidden.
/// Whether `text` can hold a `"name": value` field at all: most strings (a threshold, a plain
/// body) cannot, and then the field regex is neither run nor, in a short run, even compiled.
fn may_hold_json_field(text: &str) -> bool {
    text.contains('"') && text.contains(':')
}

fn redact_json_text(text: &str) -> Cow<'_, str> {
    if !may_hold_json_field(text) {
        return Cow::Borrowed(text);
    }
    JSON_FIELD.replace_all(text, |c: &regex::Captures| {
        if is_secret_key(&c[1]) {
            format!("\"{}\"{}\"{REDACTED}\"", &c[1], &c[2])
        } else {
            c[0].to_string()
        }
    })
}

/// A JSON value with the values of secret-looking fields hidden.
fn redact_json_keys(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if is_secret_key(k) && !x.is_null() {
                    *x = Value::String(REDACTED.into());
                } else {
                    redact_json_keys(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact_json_keys),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Which values are secrets
// ---------------------------------------------------------------------------------------------

static DURATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[0-9]+(\.[0-9]+)?\s*(ns|us|µs|ms|s|m|min|h|d)$").expect("static regex")
});

/// True for a value long enough to hide (at least [`MIN_SECRET_CHARS`] characters).
fn long_enough(v: &str) -> bool {
    v.trim().chars().count() >= MIN_SECRET_CHARS
}

/// Whether an environment value read by a template is treated as a secret. Every `env.*` value
/// is, except those too generic to hide without wrecking the reports: shorter than
/// [`MIN_SECRET_CHARS`] characters, numbers (`12`, `0.5`, `1e3`), booleans and the like
/// (`true`, `off`, `null`...), and durations (`30s`, `100ms`).
pub fn env_value_is_secret(v: &str) -> bool {
    let t = v.trim();
    if !long_enough(t) {
        return false;
    }
    let is_number = t.chars().any(|c| c.is_ascii_digit()) && t.parse::<f64>().is_ok();
    let is_word = matches!(
        t.to_ascii_lowercase().as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "none"
    );
    !(is_number || is_word || DURATION.is_match(t))
}

/// The forms a secret may take in a report: itself, JSON-escaped, base64 and percent-encoded.
pub fn encoded_forms(secret: &str) -> Vec<String> {
    // encodeURIComponent keeps these; application/x-www-form-urlencoded keeps `*-._`.
    const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'!')
        .remove(b'~')
        .remove(b'*')
        .remove(b'\'')
        .remove(b'(')
        .remove(b')');
    const FORM: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'*')
        .remove(b'-')
        .remove(b'.')
        .remove(b'_');
    // The sets the `url` crate (reqwest) uses for queries, paths and user-info.
    const QUERY: &AsciiSet = &CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'<')
        .add(b'>')
        .add(b'\'');
    const PATH: &AsciiSet = &QUERY.add(b'?').add(b'`').add(b'{').add(b'}');
    const USERINFO: &AsciiSet = &PATH
        .add(b'/')
        .add(b':')
        .add(b';')
        .add(b'=')
        .add(b'@')
        .add(b'[')
        .add(b'\\')
        .add(b']')
        .add(b'^')
        .add(b'|');
    static HEX: LazyLock<Regex> = LazyLock::new(|| Regex::new("%[0-9A-F]{2}").expect("static"));

    let mut out = vec![secret.to_string()];
    if let Ok(j) = serde_json::to_string(secret) {
        out.push(j[1..j.len() - 1].to_string());
    }
    let bytes = secret.as_bytes();
    for (padded, bare) in [(STANDARD, STANDARD_NO_PAD), (URL_SAFE, URL_SAFE_NO_PAD)] {
        out.push(padded.encode(bytes));
        out.push(bare.encode(bytes));
        // At byte offsets 0, 1 and 2 inside a longer encoded text: the characters that depend
        // on the secret's bytes alone.
        for shift in 0..3usize {
            let mut buf = vec![0u8; shift];
            buf.extend_from_slice(bytes);
            let e = bare.encode(&buf);
            let start = (8 * shift).div_ceil(6);
            let end = (8 * buf.len()) / 6;
            if end >= start + MIN_FRAGMENT {
                out.push(e[start..end].to_string());
            }
        }
    }
    for (set, form) in [
        (NON_ALPHANUMERIC, false),
        (COMPONENT, false),
        (FORM, true),
        (QUERY, false),
        (PATH, false),
        (USERINFO, false),
    ] {
        let mut e = utf8_percent_encode(secret, set).to_string();
        if form {
            e = e.replace("%20", "+");
        }
        let lower = HEX
            .replace_all(&e, |c: &regex::Captures| c[0].to_ascii_lowercase())
            .into_owned();
        out.push(e);
        out.push(lower);
    }
    let mut seen = BTreeSet::new();
    out.retain(|f| !f.is_empty() && seen.insert(f.clone()));
    out
}

// ---------------------------------------------------------------------------------------------
// The set and its matcher
// ---------------------------------------------------------------------------------------------

/// The secret values of a run, shared by everything that finds or hides them (cheap to clone).
#[derive(Clone, Default)]
pub struct Secrets {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the values themselves.
        write!(f, "Secrets({} values)", self.lock().values.len())
    }
}

#[derive(Default)]
struct Inner {
    values: BTreeSet<String>,
    /// Built on demand; `None` after a change.
    matcher: Option<Arc<Redactor>>,
}

impl Secrets {
    pub fn new() -> Self {
        Secrets::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a secret value (ignored when shorter than [`MIN_SECRET_CHARS`]).
    pub fn add(&self, value: &str) {
        if !long_enough(value) {
            return;
        }
        let mut inner = self.lock();
        if !inner.values.contains(value) {
            inner.values.insert(value.to_string());
            inner.matcher = None;
        }
    }

    /// Adds a value found under a sensitive name (a header, a URL parameter, a JSON field):
    /// like an `env.*` value, only when it is not a number, a boolean or a duration.
    pub fn add_learnt(&self, value: &str) {
        if env_value_is_secret(value) {
            self.add(value);
        }
    }

    /// Adds every string inside a JSON value found under a sensitive name (see [`Secrets::add_learnt`]).
    fn add_learnt_value(&self, v: &Value) {
        match v {
            Value::String(s) => self.add_learnt(s),
            Value::Array(a) => a.iter().for_each(|x| self.add_learnt_value(x)),
            Value::Object(m) => m.values().for_each(|x| self.add_learnt_value(x)),
            _ => {}
        }
    }

    /// Adds every string (and number) inside a JSON value, e.g. a variable marked secret.
    pub fn add_value(&self, v: &Value) {
        match v {
            Value::String(s) => self.add(s),
            Value::Number(n) => self.add(&n.to_string()),
            Value::Array(a) => a.iter().for_each(|x| self.add_value(x)),
            Value::Object(m) => m.values().for_each(|x| self.add_value(x)),
            Value::Bool(_) | Value::Null => {}
        }
    }

    /// Adds the value of a header with a sensitive name (also each `name=value` of a cookie).
    pub fn add_header(&self, name: &str, value: &str) {
        if !is_secret_header(name) {
            return;
        }
        self.add_learnt(value);
        if name.len() >= 6
            && name
                .as_bytes()
                .windows(6)
                .any(|w| w.eq_ignore_ascii_case(b"cookie"))
        {
            for part in value.split(';') {
                if let Some((_, v)) = part.split_once('=') {
                    self.add_learnt(v.trim());
                }
            }
        }
        // `Bearer <token>`, `Basic <base64>`: the credential alone too.
        if let Some((scheme, cred)) = value.trim().split_once(' ') {
            if scheme.chars().all(|c| c.is_ascii_alphabetic()) {
                self.add_learnt(cred.trim());
            }
        }
    }

    /// Adds what a URL carries under sensitive names: user-info (`user:password@`) and
    /// secret-looking query parameters (`?token=...`), decoded.
    pub fn add_url(&self, url: &str) {
        harvest_url(self, url);
    }

    /// Hook for HTTP basic authentication (a target `basic_auth: {user, password}` option does not
    /// exist yet; when it lands, it calls this): the password, and the `user:password` pair,
    /// whose base64 form is what `Authorization: Basic ...` carries.
    pub fn add_basic_auth(&self, user: &str, password: &str) {
        self.add(password);
        self.add(&format!("{user}:{password}"));
    }

    /// Where the run's templates report the `env.*` values they read: each is a secret, but
    /// those too generic to hide ([`env_value_is_secret`]). Scopes made by the run carry it.
    pub fn env_sink(&self) -> crate::template::EnvSink {
        let secrets = self.clone();
        crate::template::EnvSink::new(move |v| secrets.add_learnt(v))
    }

    /// Number of secret values known (environment values read so far included).
    pub fn len(&self) -> usize {
        self.matcher().values
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn matcher(&self) -> Arc<Redactor> {
        let mut inner = self.lock();
        if let Some(m) = &inner.matcher {
            return m.clone();
        }
        let m = Arc::new(Redactor::new(&inner.values));
        inner.matcher = Some(m.clone());
        m
    }

    /// A text with every secret (and its encoded forms) replaced by [`REDACTED`].
    pub fn redact_str(&self, s: &str) -> String {
        self.matcher().redact(s, false).into_owned()
    }

    /// A JSON value with every secret inside its strings (and keys) replaced.
    pub fn redact_value(&self, v: &Value) -> Value {
        let mut v = v.clone();
        self.matcher().redact_json(&mut v);
        v
    }

    /// Redacts one spec's result: first learns the values sitting under sensitive names (headers,
    /// URL parameters, JSON fields, captures), then hides every secret in every string.
    pub fn redact_spec(&self, spec: &mut SpecResult) {
        harvest_spec(self, spec);
        apply_spec(&self.matcher(), spec);
    }

    /// Redacts a whole report (all specs: a secret learnt in one spec leaves the others too).
    pub fn redact_report(&self, report: &mut RunReport) {
        if let Some(u) = &report.target.base_url {
            harvest_url(self, u);
        }
        report.specs.iter().for_each(|s| harvest_spec(self, s));
        let m = self.matcher();
        // Every field named: one added to the report does not compile until it is handled here.
        let RunReport {
            // focusqa's own name and version
            tool: _,
            version: _,
            target,
            started_at: _,
            duration_ms: _,
            interrupted: _,
            totals: _,
            specs,
            coverage,
            shard: _,
            // Filled after the run is redacted, from records made of redacted reports.
            history: _,
        } = report;
        target.redact_with(&m);
        for s in specs {
            apply_spec(&m, s);
        }
        coverage.redact_with(&m);
    }
}

/// Finds every secret form in a text at once (overlapping matches merged), and replaces them:
/// what each results type's [`Redact`] implementation is given.
pub struct Redactor {
    ac: Option<AhoCorasick>,
    patterns: Vec<String>,
    /// The secrets themselves (a JSON number equal to one is hidden too).
    raw: BTreeSet<String>,
    values: usize,
}

impl Redactor {
    fn new(values: &BTreeSet<String>) -> Redactor {
        let mut patterns: Vec<String> = values.iter().flat_map(|v| encoded_forms(v)).collect();
        patterns.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        patterns.dedup();
        let ac = (!patterns.is_empty())
            .then(|| AhoCorasick::new(&patterns).ok())
            .flatten();
        Redactor {
            ac,
            patterns,
            raw: values.clone(),
            values: values.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ac.is_none()
    }

    /// Replaces every occurrence of every secret form. Overlapping occurrences (two secrets
    /// sharing characters, a secret inside a longer one) are merged, so no piece of either is
    /// left. A secret cut by `…` (or, with `cut_at_end`, by the end of the text) is hidden too.
    pub fn redact<'a>(&self, s: &'a str, cut_at_end: bool) -> Cow<'a, str> {
        let Some(ac) = &self.ac else {
            return Cow::Borrowed(s);
        };
        let mut spans: Vec<(usize, usize)> = ac
            .find_overlapping_iter(s)
            .map(|m| (m.start(), m.end()))
            .collect();
        for (i, _) in s.match_indices('…') {
            spans.extend(self.partial_before(s, i));
        }
        if cut_at_end {
            spans.extend(self.partial_before(s, s.len()));
        }
        if spans.is_empty() {
            return Cow::Borrowed(s);
        }
        spans.sort();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
        for (start, end) in spans {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        let mut out = String::with_capacity(s.len());
        let mut pos = 0;
        for (start, end) in merged {
            out.push_str(&s[pos..start]);
            out.push_str(REDACTED);
            pos = end;
        }
        out.push_str(&s[pos..]);
        Cow::Owned(out)
    }

    /// The longest start of a secret form that ends at `end` (a truncation point).
    fn partial_before(&self, s: &str, end: usize) -> Option<(usize, usize)> {
        let head = &s[..end];
        let mut best = 0;
        for p in &self.patterns {
            let mut k = p.len().min(head.len());
            while k >= MIN_PARTIAL.max(best + 1) {
                if p.is_char_boundary(k) && head.ends_with(&p[..k]) {
                    best = k;
                    break;
                }
                k -= 1;
            }
        }
        (best > 0).then(|| (end - best, end))
    }

    pub fn redact_string(&self, s: &mut String) {
        if let Cow::Owned(r) = self.redact(s, false) {
            *s = r;
        }
    }

    /// Redacts a map's keys (two keys redacted alike: the later entry wins) and, with `f`, its values.
    pub fn redact_map<V>(&self, map: &mut IndexMap<String, V>, f: impl Fn(&Redactor, &mut V)) {
        if map
            .keys()
            .any(|k| matches!(self.redact(k, false), Cow::Owned(_)))
        {
            let old = std::mem::take(map);
            for (k, v) in old {
                map.insert(self.redact(&k, false).into_owned(), v);
            }
        }
        map.values_mut().for_each(|v| f(self, v));
    }

    pub fn redact_json(&self, v: &mut Value) {
        match v {
            Value::String(s) => self.redact_string(s),
            Value::Number(n) if self.raw.contains(&n.to_string()) => {
                *v = Value::String(REDACTED.into())
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.redact_json(x)),
            Value::Object(m) => {
                let needs_key = m
                    .keys()
                    .any(|k| matches!(self.redact(k, false), Cow::Owned(_)));
                if needs_key {
                    let old = std::mem::take(m);
                    for (k, mut x) in old {
                        self.redact_json(&mut x);
                        m.insert(self.redact(&k, false).into_owned(), x);
                    }
                } else {
                    m.values_mut().for_each(|x| self.redact_json(x));
                }
            }
            _ => {}
        }
    }
}

/// Hiding every secret in a results type's text: implemented beside each type, with the type
/// destructured without `..`, so a field added to the model does not compile until it is
/// redacted there (or named as holding no text).
pub trait Redact {
    fn redact_with(&mut self, r: &Redactor);
}

impl<T: Redact> Redact for Vec<T> {
    fn redact_with(&mut self, r: &Redactor) {
        self.iter_mut().for_each(|x| x.redact_with(r));
    }
}

impl<T: Redact> Redact for Option<T> {
    fn redact_with(&mut self, r: &Redactor) {
        if let Some(x) = self {
            x.redact_with(r);
        }
    }
}

impl<T: Redact> Redact for Box<T> {
    fn redact_with(&mut self, r: &Redactor) {
        (**self).redact_with(r);
    }
}

impl Redact for String {
    fn redact_with(&mut self, r: &Redactor) {
        r.redact_string(self);
    }
}

impl Redact for Value {
    fn redact_with(&mut self, r: &Redactor) {
        r.redact_json(self);
    }
}

/// A map's keys and values (two keys redacted alike: the later entry wins).
impl<V: Redact> Redact for IndexMap<String, V> {
    fn redact_with(&mut self, r: &Redactor) {
        r.redact_map(self, |r, v| v.redact_with(r));
    }
}

// ---------------------------------------------------------------------------------------------
// Walking the model
// ---------------------------------------------------------------------------------------------

fn harvest_url(secrets: &Secrets, url: &str) {
    if let Some(c) = URL_USERINFO.captures(url) {
        let info = &c[2];
        let decoded = percent_decode_str(info).decode_utf8_lossy();
        secrets.add_learnt(&decoded);
        if let Some((_, pw)) = decoded.split_once(':') {
            secrets.add_learnt(pw);
        }
    }
    let Some(q) = url.find('?') else { return };
    for c in QUERY_PARAM.captures_iter(&url[q..]) {
        if is_secret_param(&c[2]) {
            let raw = c[3].replace('+', " ");
            secrets.add_learnt(&percent_decode_str(&raw).decode_utf8_lossy());
            secrets.add_learnt(&c[3]);
        }
    }
}

fn harvest_json_text(secrets: &Secrets, text: &str) {
    if !may_hold_json_field(text) {
        return;
    }
    for c in JSON_FIELD.captures_iter(text) {
        if is_secret_key(&c[1]) {
            let raw = &c[3];
            match serde_json::from_str::<Value>(raw) {
                Ok(v) => secrets.add_learnt_value(&v),
                Err(_) => secrets.add_learnt(raw.trim_matches('"')),
            }
        }
    }
}

fn harvest_json(secrets: &Secrets, v: &Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if is_secret_key(k) {
                    secrets.add_learnt_value(x);
                } else {
                    harvest_json(secrets, x);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| harvest_json(secrets, x)),
        Value::String(s) => harvest_json_text(secrets, s),
        _ => {}
    }
}

fn harvest_named(secrets: &Secrets, name: &str, v: &Value) {
    if is_secret_key(name) {
        secrets.add_learnt_value(v);
    } else {
        harvest_json(secrets, v);
    }
}

fn harvest_step(secrets: &Secrets, s: &StepResult) {
    if let Some(r) = &s.request {
        harvest_url(secrets, &r.url);
        for (k, v) in &r.headers {
            secrets.add_header(k, v);
        }
        if let Some(b) = &r.body {
            harvest_json_text(secrets, b);
        }
    }
    if let Some(r) = &s.response {
        for (k, v) in &r.headers {
            secrets.add_header(k, v);
        }
        if let Some(b) = &r.body {
            harvest_json_text(secrets, b);
        }
    }
    for (k, v) in &s.captures {
        harvest_named(secrets, k, v);
    }
    for a in &s.assertions {
        harvest_json(secrets, &a.expected);
        if let Some(v) = &a.actual {
            harvest_json(secrets, v);
        }
    }
    if let Some(f) = &s.fanout {
        for (k, vals) in &f.captures {
            vals.iter().for_each(|v| harvest_named(secrets, k, v));
        }
    }
}

fn harvest_spec(secrets: &Secrets, spec: &SpecResult) {
    for c in &spec.cases {
        for (k, v) in &c.vars {
            harvest_named(secrets, k, v);
        }
        c.steps
            .iter()
            .chain(&c.cleanup)
            .chain(
                c.attempts
                    .iter()
                    .flat_map(|a| a.steps.iter().chain(&a.cleanup)),
            )
            .for_each(|s| harvest_step(secrets, s));
    }
}

/// The rules by name (headers, URLs, JSON fields, secret-named captures), on one step.
fn name_rules_step(s: &mut StepResult) {
    let hide_headers = |h: &mut Vec<(String, String)>| {
        for (k, v) in h.iter_mut() {
            if is_secret_header(k) {
                *v = REDACTED.to_string();
            }
        }
    };
    if let Some(r) = &mut s.request {
        hide_headers(&mut r.headers);
        r.url = redact_url(&r.url);
        if let Some(b) = &mut r.body {
            *b = redact_json_text(b).into_owned();
        }
    }
    if let Some(r) = &mut s.response {
        hide_headers(&mut r.headers);
        if let Some(b) = &mut r.body {
            *b = redact_json_text(b).into_owned();
        }
    }
    for (k, v) in s.captures.iter_mut() {
        if is_secret_key(k) {
            *v = Value::String(REDACTED.into());
        } else {
            redact_json_keys(v);
        }
    }
    for a in &mut s.assertions {
        redact_json_keys(&mut a.expected);
        if let Some(v) = &mut a.actual {
            redact_json_keys(v);
        }
    }
    if let Some(f) = &mut s.fanout {
        for (k, vals) in f.captures.iter_mut() {
            for v in vals.iter_mut() {
                if is_secret_key(k) {
                    *v = Value::String(REDACTED.into());
                } else {
                    redact_json_keys(v);
                }
            }
        }
    }
}

fn apply_spec(m: &Redactor, spec: &mut SpecResult) {
    // Name rules first: they leave markers the value rules never touch.
    for c in &mut spec.cases {
        for (k, v) in c.vars.iter_mut() {
            if is_secret_key(k) {
                *v = Value::String(REDACTED.into());
            } else {
                redact_json_keys(v);
            }
        }
        c.steps
            .iter_mut()
            .chain(c.cleanup.iter_mut())
            .for_each(name_rules_step);
    }
    if m.is_empty() {
        return;
    }
    // Then every string of the result (map keys too), each type redacting its own fields.
    spec.redact_with(m);
}

impl RunReport {
    /// Hides every secret of `secrets` (and every value under a sensitive name) in the report.
    pub fn redact(&mut self, secrets: &Secrets) {
        secrets.redact_report(self);
    }
}

impl SpecResult {
    /// Hides every secret of `secrets` (and every value under a sensitive name) in the result.
    pub fn redact(&mut self, secrets: &Secrets) {
        secrets.redact_spec(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text fields that hold only focusqa's own words (never a value from a spec, a server or
    /// the environment), so redaction leaves them: the tool's name and version.
    /// Any other text field a secret survives in fails the test below: a field added to the
    /// results model is redacted, or named here with the reason.
    const OWN_WORDS: &[&str] = &["tool", "version"];

    #[test]
    fn every_text_field_is_redacted() {
        use crate::results::every_field::{filled, SECRET};
        // Every field of the model filled, every string the secret (see `every_field`).
        let mut report: RunReport = filled();
        let secrets = set(&[SECRET]);
        report.redact(&secrets);
        let json = serde_json::to_value(&report).unwrap();
        let mut left = Vec::new();
        fn walk(v: &Value, path: &str, out: &mut Vec<String>) {
            match v {
                Value::String(s) if s.contains(SECRET) => out.push(path.to_string()),
                Value::Array(a) => a.iter().for_each(|x| walk(x, &format!("{path}[]"), out)),
                Value::Object(m) => {
                    for (k, x) in m {
                        if k.contains(SECRET) {
                            out.push(format!("{path} (a key)"));
                        }
                        let p = if path.is_empty() {
                            k.clone()
                        } else {
                            format!("{path}.{k}")
                        };
                        walk(x, &p, out);
                    }
                }
                _ => {}
            }
        }
        walk(&json, "", &mut left);
        left.sort();
        left.dedup();
        let unexpected: Vec<&String> = left
            .iter()
            .filter(|p| !OWN_WORDS.contains(&p.as_str()))
            .collect();
        assert!(
            unexpected.is_empty(),
            "text fields the redaction leaves a secret in: {unexpected:?}\n\
             (redact it in its type's `Redact` impl, or add it to OWN_WORDS with the reason)"
        );
        // The list names only fields that are still text (one gone or redacted leaves it).
        for own in OWN_WORDS {
            assert!(
                left.iter().any(|p| p == own),
                "{own} is no unredacted text field any more"
            );
        }
        // The filled value reaches deep: steps in steps, a fan-out, an excerpt, coverage down
        // to a covering spec's steps.
        let text = json.to_string();
        for field in [
            "\"fanout\"",
            "\"request\"",
            "\"attachments\"",
            "\"coverage\"",
            "\"source_line\"",
            "\"via\"",
        ] {
            assert!(text.contains(field), "{field} not filled: {text}");
        }
    }

    #[test]
    fn coverage_is_redacted_whatever_its_counts() {
        use crate::results::every_field::{filled, SECRET};
        // A count equal to a secret (a spec's `secrets:` may list a number) once made the
        // coverage fail to load back after redaction as JSON, and it was kept unredacted.
        let mut report: RunReport = filled();
        report.coverage.as_mut().unwrap().in_scope = 918273;
        report.redact(&set(&[SECRET, "918273"]));
        let text = serde_json::to_string(&report.coverage).unwrap();
        assert!(!text.contains(SECRET), "{text}");
        // Counts are the run's own figures, not text.
        assert_eq!(report.coverage.unwrap().in_scope, 918273);
    }

    use serde_json::json;

    fn set(values: &[&str]) -> Secrets {
        let s = Secrets::new();
        values.iter().for_each(|v| s.add(v));
        s
    }

    #[test]
    fn replaces_every_occurrence() {
        let s = set(&["s3cr3t-token"]);
        assert_eq!(
            s.redact_str("Bearer s3cr3t-token, again s3cr3t-token."),
            "Bearer [redacted], again [redacted]."
        );
        assert_eq!(s.redact_str("nothing here"), "nothing here");
    }

    #[test]
    fn overlapping_secrets_longest_first_and_merged() {
        // One secret inside another: the longer one goes entirely.
        let s = set(&["token", "token-long-value"]);
        assert_eq!(s.redact_str("a token-long-value b"), "a [redacted] b");
        assert_eq!(s.redact_str("a token b"), "a [redacted] b");
        // Two secrets sharing characters: nothing of either is left.
        let s = set(&["abcdef", "defghi"]);
        assert_eq!(s.redact_str("x abcdefghi y"), "x [redacted] y");
        // Adjacent secrets.
        assert_eq!(s.redact_str("abcdefdefghi"), "[redacted]");
    }

    #[test]
    fn empty_and_short_values_are_ignored() {
        let s = set(&["", "  ", "abc", "12"]);
        assert!(s.lock().values.is_empty());
        assert_eq!(s.redact_str("abc 12"), "abc 12");
        assert_eq!(Secrets::new().redact_str("anything"), "anything");
    }

    #[test]
    fn env_values_that_are_not_secrets() {
        for v in [
            "12", "1234", "0.25", "-3", "1e3", "true", "OFF", "null", "30s", "100ms", "ab",
        ] {
            assert!(!env_value_is_secret(v), "{v}");
        }
        for v in ["s3cr3t", "eyJhbGciOi", "abcd", "v1.2.3", "12ab"] {
            assert!(env_value_is_secret(v), "{v}");
        }
    }

    #[test]
    fn encoded_forms_are_hidden() {
        let secret = "s3cr3t/t0ken+x=y z";
        let s = set(&[secret]);
        for text in [
            STANDARD.encode(secret),
            STANDARD_NO_PAD.encode(secret),
            URL_SAFE.encode(secret),
            URL_SAFE_NO_PAD.encode(secret),
            utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string(),
            "s3cr3t%2Ft0ken%2Bx%3Dy+z".to_string(),
            "s3cr3t%2ft0ken%2bx%3dy%20z".to_string(),
            "s3cr3t/t0ken+x=y%20z".to_string(),
            // Inside a longer encoded text, at every alignment.
            STANDARD.encode(format!("Bearer {secret}")),
            STANDARD.encode(format!("x{secret}")),
            STANDARD.encode(format!("xy{secret}")),
            URL_SAFE_NO_PAD.encode(format!("{{\"t\":\"{secret}\"}}")),
        ] {
            let out = s.redact_str(&format!("<{text}>"));
            assert!(out.contains(REDACTED), "{text} -> {out}");
            assert!(!out.contains(&text), "{text} -> {out}");
        }
        // JSON-escaped.
        let s = set(&["quo\"te\\d"]);
        assert_eq!(
            s.redact_str(r#"{"a":"quo\"te\\d"}"#),
            r#"{"a":"[redacted]"}"#
        );
    }

    #[test]
    fn basic_auth_pair() {
        let s = Secrets::new();
        s.add_basic_auth("alice", "pa55word");
        let header = format!("Basic {}", STANDARD.encode("alice:pa55word"));
        assert_eq!(s.redact_str(&header), "Basic [redacted]");
        assert_eq!(s.redact_str("pw=pa55word"), "pw=[redacted]");
    }

    #[test]
    fn secrets_cut_by_a_truncation() {
        let s = set(&["s3cr3t-token"]);
        assert_eq!(s.redact_str("found \"s3cr3t-t…"), "found \"[redacted]…");
        // Fewer than MIN_PARTIAL bytes left: nothing to hide.
        assert_eq!(s.redact_str("found s3c…"), "found s3c…");
        let m = s.matcher();
        assert_eq!(m.redact("body s3cr3t-to", true), "body [redacted]");
        assert_eq!(m.redact("body s3cr3t-to", false), "body s3cr3t-to");
    }

    #[test]
    fn values_and_keys_inside_json() {
        let s = set(&["s3cr3t-token", "918273"]);
        let v = json!({"a": ["x s3cr3t-token", 1], "s3cr3t-token": true, "pin": 918273});
        assert_eq!(
            s.redact_value(&v),
            json!({"a": ["x [redacted]", 1], "[redacted]": true, "pin": "[redacted]"})
        );
    }

    #[test]
    fn urls_and_json_fields_by_name() {
        assert_eq!(
            redact_url("https://u:p@h/x?a=1&token=abc&b=2"),
            "https://[redacted]@h/x?a=1&token=[redacted]&b=2"
        );
        assert_eq!(
            redact_url("http://h/p;x=1?design=a&author=b&sig=c&X-Amz-Signature=d#f"),
            "http://h/p;x=1?design=a&author=b&sig=[redacted]&X-Amz-Signature=[redacted]#f"
        );
        assert_eq!(
            redact_json_text(r#"{"user": "a", "password": "p\"w", "n": [{"api_key": 12}]}"#),
            r#"{"user": "a", "password": "[redacted]", "n": [{"api_key": "[redacted]"}]}"#
        );
        let mut v = json!({"user": "a", "password": "p", "nested": [{"api_key": "k"}]});
        redact_json_keys(&mut v);
        assert_eq!(
            v,
            json!({"user": "a", "password": "[redacted]", "nested": [{"api_key": "[redacted]"}]})
        );
        assert!(is_secret_header("Authorization"));
        assert!(is_secret_header("X-Auth-Token"));
        assert!(is_secret_header("Cookie"));
        assert!(!is_secret_header("Content-Type"));
    }

    #[test]
    fn parsed_header_names_agree_with_the_search() {
        use http::header::*;
        for secret in [AUTHORIZATION, PROXY_AUTHORIZATION, COOKIE, SET_COOKIE] {
            assert!(is_secret_header_name(&secret), "{secret}");
        }
        let custom = HeaderName::from_static("x-session-id");
        assert!(is_secret_header_name(&custom));
        for plain in [
            CONTENT_TYPE,
            DATE,
            HOST,
            USER_AGENT,
            HeaderName::from_static("x-trace"),
        ] {
            assert!(!is_secret_header_name(&plain), "{plain}");
            assert_eq!(
                is_secret_header_name(&plain),
                is_secret_header(plain.as_str())
            );
        }
    }

    #[test]
    fn every_string_of_a_spec_result() {
        let t = "s3cr3t-value";
        let b64 = STANDARD.encode(t);
        let request = json!({"method": "GET", "url": format!("http://h/{t}?q={t}"),
                             "headers": [["X-Plain", t]], "body": format!("{{\"a\":\"{b64}\"}}")});
        let response = json!({"status": 200, "headers": [["x-echo", format!("Basic {b64}")]],
                              "body": format!("xx {}", &t[..8]), "truncated": true, "elapsed_ms": 1.0});
        let assertion = json!({"line": 3, "subject": format!("$.a {t}"),
                               "subject_template": format!("$.a {t}{{{{ x }}}}"), "op": "equals", "expected": [t],
                               "actual": {"k": t}, "passed": false, "message": t});
        let poll = json!({"attempts": 2, "elapsed_ms": 1.0, "interval_ms": 1.0, "timeout_ms": 1.0,
                          "satisfied": false, "last_mismatch": format!("last {t}")});
        let fanout = json!({"count": 2, "concurrency": 2, "started": 2, "succeeded": 0, "failed": 2,
                            "by_reason": {format!("error: {t}"): 1, "error: [redacted]": 1},
                            "duration_ms": 1.0, "throughput_per_s": 0.0, "steps": {},
                            "captures": {"c": [t, t]},
                            "thresholds": [{"expr": t, "value": t, "passed": false}],
                            "sample_failures": [format!("iteration 0: {t}")],
                            "cleanup_failures": 2,
                            "cleanup_by_reason": {format!("404 unknown job_id {t}"): 2},
                            "cleanup_sample_failures": [format!("iteration 1: 404 {t}")]});
        let step = json!({"name": format!("login {t}"), "name_template": format!("{t} {{{{ x }}}}"),
                          "kind": "http", "line": 2, "status": "failed",
                          "duration_ms": 1.0, "request": request, "response": response,
                          "assertions": [assertion], "poll": poll, "captures": {"c": t},
                          "fanout": fanout,
                          "attachments": [{"title": t, "body": format!("token: {t}")}]});
        let case = json!({"name": t, "status": "failed", "duration_ms": 1.0,
                          "message": format!("found {t}"), "vars": {"pw": t, t: 1},
                          "steps": [step]});
        let mut spec: SpecResult = serde_json::from_value(json!({
            "id": "x", "title": format!("title {t}"), "file": "f.yaml", "line": 1,
            "status": "failed", "started_at": "2026-01-01T00:00:00Z", "duration_ms": 1.0,
            "skip_reason": t, "cases": [case]
        }))
        .unwrap();
        set(&[t]).redact_spec(&mut spec);
        let text = serde_json::to_string(&spec).unwrap();
        assert!(
            !text.contains(t) && !text.contains(&b64) && !text.contains("s3cr3t-v"),
            "{text}"
        );
        let fanout = spec.cases[0].steps[0].fanout.as_ref().unwrap();
        assert_eq!(fanout.by_reason.get("error: [redacted]"), Some(&2));
        assert_eq!(
            fanout
                .cleanup_by_reason
                .get("404 unknown job_id [redacted]"),
            Some(&2),
            "cleanup reasons are redacted too"
        );
        assert_eq!(
            spec.cases[0].steps[0]
                .response
                .as_ref()
                .unwrap()
                .body
                .as_deref(),
            Some("xx [redacted]")
        );
    }

    #[test]
    fn values_under_sensitive_names_are_learnt() {
        let s = Secrets::new();
        s.add_header("Cookie", "session=abcd1234; theme=dark");
        s.add_header("X-Trace", "not-a-secret");
        s.add_header("Authorization", "Bearer tok-9876");
        // Numbers and the like under sensitive names are too generic to hide everywhere.
        s.add_header("X-Session-Id", "12345");
        harvest_json_text(&s, r#"{"token": true, "password": "none"}"#);
        harvest_url(&s, "https://bob:hunter22@h/x?api_key=k%2Fey1&b=plain-value");
        harvest_json_text(&s, r#"{"token": "json-token", "other": "visible"}"#);
        let out = s.redact_str(
            "abcd1234 not-a-secret tok-9876 hunter22 k/ey1 plain-value json-token visible 12345 none",
        );
        assert_eq!(
            out,
            "[redacted] not-a-secret [redacted] [redacted] [redacted] plain-value [redacted] visible 12345 none"
        );
    }
}
