//! The `http` step (and `sim`, the same request to the simulator's control API): a request and
//! the parts it is written with.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::KindModel;
use crate::spec::{Dur, VarMap};

/// An HTTP method: any valid token (RFC 9110), case-insensitive, sent upper-cased
/// (`GET`, `post`, `PURGE`, `PROPFIND`, `LOCK`, a custom one). Default `GET`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(with = "MethodSchema")]
pub struct Method(String);

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "HttpMethod")]
enum MethodSchema {
    /// A common method
    Known(KnownMethod),
    /// Any other method: an HTTP token (letters, digits, ``!#$%&'*+-.^_`|~``)
    Token(#[schemars(pattern(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"))] String),
}

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
enum KnownMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
    Trace,
    Connect,
    Purge,
    Propfind,
    Proppatch,
    Mkcol,
    Copy,
    Move,
    Lock,
    Unlock,
}

impl Default for Method {
    fn default() -> Self {
        Method("GET".into())
    }
}

impl Method {
    /// A method from a token (upper-cased); an error says what is wrong with it.
    pub fn parse(s: &str) -> Result<Method, String> {
        let t = s.trim();
        let ok = !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if ok {
            Ok(Method(t.to_ascii_uppercase()))
        } else {
            Err(format!(
                "`{s}` is not an HTTP method: a method is a token of letters, digits and !#$%&'*+-.^_`|~ (e.g. GET, POST, PURGE, PROPFIND)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Method::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The value(s) of a request header: a text (or number, boolean), or a list to send the header
/// once per element (`X-A: [1, 2]`). Values are templates.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[schemars(with = "HeaderValuesSchema")]
pub struct HeaderValues(pub Vec<String>);

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "HeaderValues")]
enum HeaderValuesSchema {
    /// One value (a template)
    One(HeaderScalar),
    /// The header is sent once per element
    Many(Vec<HeaderScalar>),
}

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(untagged)]
enum HeaderScalar {
    Text(String),
    Number(f64),
    Bool(bool),
}

impl<'de> Deserialize<'de> for HeaderValues {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        fn scalar(v: &Value) -> Option<String> {
            match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            }
        }
        let v = Value::deserialize(d)?;
        let bad = || {
            serde::de::Error::custom("a header value is a text, a number, a boolean, or a list of them (the header is then sent once per element)")
        };
        match &v {
            Value::Array(items) => items
                .iter()
                .map(|i| scalar(i).ok_or_else(bad))
                .collect::<Result<Vec<_>, _>>()
                .map(HeaderValues),
            other => scalar(other).map(|s| HeaderValues(vec![s])).ok_or_else(bad),
        }
    }
}

impl Serialize for HeaderValues {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.len() == 1 {
            self.0[0].serialize(s)
        } else {
            self.0.serialize(s)
        }
    }
}

impl From<&str> for HeaderValues {
    fn from(s: &str) -> Self {
        HeaderValues(vec![s.to_string()])
    }
}

/// HTTP basic authentication (`Authorization: Basic ...`); both are templates. The password
/// (and `user:password`) is a secret, redacted from every report.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub user: String,
    pub password: String,
}

/// One part of a `multipart/form-data` body: a text field (`name`, `value`) or a file
/// (`name`, `file` relative to the spec file, optional `filename` and `content_type`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MultipartPart {
    /// The field name.
    pub name: String,
    /// A text value (a template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A file to send, relative to the spec file (sent byte for byte).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The file name announced (default: the file's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// The part's Content-Type (default for files: `application/octet-stream`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// A request's query parameters: written as a map, or one template rendered to a map at run
/// time, so a table of cases can vary which keys are sent.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Query {
    Map(#[schemars(with = "IndexMap<String, Value>")] VarMap),
    /// A template whose value is a map (`"{{ q }}"`).
    Template(String),
}

impl Default for Query {
    fn default() -> Self {
        Query::Map(VarMap::new())
    }
}

impl Query {
    pub fn is_empty(&self) -> bool {
        matches!(self, Query::Map(m) if m.is_empty())
    }
}

/// An HTTP request (also used by `sim`, where `path` is relative to the simulator's `/sim`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpRequest {
    /// Any HTTP method, case-insensitive: GET (default), POST, PUT, PATCH, DELETE, HEAD,
    /// OPTIONS, TRACE, PURGE, PROPFIND, LOCK, or any other token.
    #[serde(default)]
    pub method: Method,
    /// Path relative to the target's base URL (e.g. `/configure`), or an absolute URL.
    pub path: String,
    /// Query parameters: `null` sends `key=`, a list repeats the key (`b=1&b=2`); or one
    /// template that renders to such a map (`query: "{{ q }}"`, e.g. from a case's `vars`).
    #[serde(default, skip_serializing_if = "Query::is_empty")]
    pub query: Query,
    /// Request headers (added to the target's default headers, replacing those of the same
    /// name); a list sends the header once per element.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, HeaderValues>,
    /// Cookies sent with this request only (besides the case's cookie jar): `{name: value}`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub cookies: IndexMap<String, String>,
    /// JSON body (strings inside are templates; `"{{ expr }}"` alone keeps the expression's
    /// type). Content-Type `application/json` unless a `Content-Type` header says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
    /// Raw body text, sent as written (UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Body bytes given in base64 (binary bodies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    /// Body read from a file relative to the spec file, sent byte for byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_file: Option<String>,
    /// An `application/x-www-form-urlencoded` body: `{k: v}` (a list repeats the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<IndexMap<String, Value>>")]
    pub form: Option<VarMap>,
    /// A `multipart/form-data` body: text fields and files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipart: Option<Vec<MultipartPart>>,
    /// HTTP basic authentication for this request (overrides the target's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// Follow redirects (default: the target's `follow_redirects`, itself default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_redirects: Option<bool>,
    /// At most this many redirects are followed (default: the target's, itself default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_redirects: Option<u32>,
    /// Per-request timeout (default: the target's request timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
}

impl HttpRequest {
    /// The body keys given (at most one is allowed).
    pub fn body_kinds(&self) -> Vec<&'static str> {
        let mut k = Vec::new();
        if self.json.is_some() {
            k.push("json");
        }
        if self.body.is_some() {
            k.push("body");
        }
        if self.body_base64.is_some() {
            k.push("body_base64");
        }
        if self.body_file.is_some() {
            k.push("body_file");
        }
        if self.form.is_some() {
            k.push("form");
        }
        if self.multipart.is_some() {
            k.push("multipart");
        }
        k
    }
}

impl KindModel for HttpRequest {
    fn name(&self) -> &'static str {
        "http"
    }
    fn label(&self) -> String {
        format!("{} {}", self.method.as_str(), self.path)
    }
    fn request(&self) -> Option<&HttpRequest> {
        Some(self)
    }
}

/// A `sim` step: a request to the simulator's control API (`path` relative to its `/sim`),
/// written like an `http` request.
#[derive(Debug, Clone)]
pub struct Sim(pub HttpRequest);

impl KindModel for Sim {
    fn name(&self) -> &'static str {
        "sim"
    }
    fn label(&self) -> String {
        format!("sim {} {}", self.0.method.as_str(), self.0.path)
    }
    fn request(&self) -> Option<&HttpRequest> {
        Some(&self.0)
    }
}
