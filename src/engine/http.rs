//! `http` and `sim` steps: one request, measured from the moment it is handed to the client.

use std::time::Instant;

use serde_json::Value;

use super::{ExecError, Observation};
use crate::results::{RequestExcerpt, ResponseExcerpt};
use crate::spec::HttpRequest;
use crate::template::Scope;

/// Bodies kept in results are cut to this many bytes.
pub const EXCERPT_BYTES: usize = 4096;

pub async fn execute(
    req: &HttpRequest,
    scope: &Scope,
    ctx: &super::Ctx,
    sim: bool,
) -> Result<Observation, ExecError> {
    let target = &ctx.target;
    let path = scope.render_str(&req.path)?;
    let url = if path.starts_with("http://") || path.starts_with("https://") {
        path
    } else {
        let base = if sim {
            target.sim_url.clone()
        } else {
            target.base_url.clone()
        };
        let base = base.ok_or_else(|| {
            ExecError::spec(format!(
                "target `{}` has no base_url for `{}`",
                target.name, req.path
            ))
        })?;
        join_url(&base, &path)
    };
    let method = reqwest::Method::from_bytes(req.method.as_str().as_bytes())
        .map_err(|e| ExecError::spec(e.to_string()))?;
    let mut rb = target.http.request(method, &url);
    let mut shown_headers: Vec<(String, String)> = Vec::new();
    let mut headers: Vec<(String, String)> = if sim {
        Vec::new()
    } else {
        target.headers.clone()
    };
    for (k, v) in &req.headers {
        headers.retain(|(hk, _)| !hk.eq_ignore_ascii_case(k));
        headers.push((k.clone(), scope.render_str(v)?));
    }
    // Excerpts keep what was sent: secrets are redacted from the whole result when the spec
    // finishes (crate::results::secrets). Sensitive headers are learnt here already, so their
    // values also leave fan-out iterations, whose step results are not kept.
    for (k, v) in &headers {
        rb = rb.header(k.as_str(), v.as_str());
        target.secrets.add_header(k, v);
        shown_headers.push((k.clone(), v.clone()));
    }
    if !req.query.is_empty() {
        let mut q = Vec::new();
        for (k, v) in &req.query {
            let v = scope.render_value(v)?;
            let s = match v {
                Value::String(s) => s,
                Value::Null => continue,
                other => other.to_string(),
            };
            q.push((k.clone(), s));
        }
        rb = rb.query(&q);
    }
    let mut body_shown = None;
    if let Some(j) = &req.json {
        let j = scope.render_value(j)?;
        let text = serde_json::to_string(&j).map_err(|e| ExecError::spec(e.to_string()))?;
        body_shown = Some(excerpt(&text).0);
        rb = rb.header("content-type", "application/json").body(text);
    } else if let Some(b) = &req.body {
        let b = scope.render_str(b)?;
        body_shown = Some(excerpt(&b).0);
        rb = rb.body(b);
    }
    if let Some(t) = &req.timeout {
        rb = rb.timeout(super::resolve_dur(t, scope)?);
    }
    let request = rb
        .build()
        .map_err(|e| ExecError::spec(format!("cannot build the request to {url}: {e}")))?;
    let shown = RequestExcerpt {
        method: req.method.as_str().into(),
        url: request.url().to_string(),
        headers: shown_headers,
        body: body_shown,
    };
    // The clock starts here: templating and queueing in the runner are not part of the latency.
    let t0 = Instant::now();
    let resp = match target.http.execute(request).await {
        Ok(r) => r,
        Err(e) => {
            let mut err = ExecError::infra(describe_reqwest(&e, &url));
            err.request = Some(Box::new(shown));
            return Err(err);
        }
    };
    let status = resp.status().as_u16();
    let headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let bytes = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => {
            let mut err = ExecError::infra(format!(
                "reading the response of {url}: {}",
                describe_reqwest(&e, &url)
            ));
            err.request = Some(Box::new(shown));
            return Err(err);
        }
    };
    let elapsed = t0.elapsed();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let doc = serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null);
    let (body_excerpt, truncated) = excerpt(&text);
    for (k, v) in &headers {
        target.secrets.add_header(k, v);
    }
    let shown_resp_headers = headers.clone();
    Ok(Observation {
        status: Some(status),
        headers,
        body: Some(text),
        doc,
        elapsed,
        request: Some(shown),
        response: Some(ResponseExcerpt {
            status,
            headers: shown_resp_headers,
            body: (!body_excerpt.is_empty()).then_some(body_excerpt),
            truncated,
            elapsed_ms: super::ms(elapsed),
        }),
        ..Default::default()
    })
}

fn join_url(base: &str, path: &str) -> String {
    match (base.ends_with('/'), path.starts_with('/')) {
        (true, true) => format!("{}{}", base, &path[1..]),
        (false, false) if !path.is_empty() => format!("{base}/{path}"),
        _ => format!("{base}{path}"),
    }
}

fn excerpt(s: &str) -> (String, bool) {
    if s.len() <= EXCERPT_BYTES {
        return (s.to_string(), false);
    }
    let mut end = EXCERPT_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (s[..end].to_string(), true)
}

/// Says what went wrong in words a QA engineer can act on.
fn describe_reqwest(e: &reqwest::Error, url: &str) -> String {
    use std::error::Error;
    let mut root = String::new();
    let mut src = e.source();
    while let Some(s) = src {
        root = s.to_string();
        src = s.source();
    }
    let detail = if root.is_empty() { e.to_string() } else { root };
    if e.is_timeout() {
        format!("timeout: no answer from {url} in time (raise the step's `timeout` or the target's `timeout`)")
    } else if e.is_connect() {
        if detail.to_lowercase().contains("certificate") {
            format!("TLS error connecting to {url}: {detail} (for lab servers set `tls.insecure: true` or `tls.ca_file` on the target)")
        } else {
            format!("cannot connect to {url}: {detail} (is the server up and the target's base_url right?)")
        }
    } else {
        format!("request to {url} failed: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::join_url;

    #[test]
    fn joins_urls() {
        assert_eq!(
            join_url("http://h/focus-server", "/configure"),
            "http://h/focus-server/configure"
        );
        assert_eq!(
            join_url("http://h/focus-server/", "/configure"),
            "http://h/focus-server/configure"
        );
        assert_eq!(join_url("http://h", "jobs"), "http://h/jobs");
    }
}
