//! Template filters for HTTP work: encoding (`urlencode`, `b64encode`, `b64decode`), digests
//! (`sha256`, `md5`), text (`regex_capture`) and HTTP dates (`http_date`); minijinja's own
//! `split` splits texts. Registered on the template environment in one place: [`register`]
//! (and listed in `crate::template::BUILTIN_FILTERS`, which `validate` checks names against).

use base64::Engine as _;
use minijinja::value::Value as MjValue;
use minijinja::{Environment, Error as MjError, ErrorKind};

fn invalid(msg: String) -> MjError {
    MjError::new(ErrorKind::InvalidOperation, msg)
}

/// Adds the filters to a template environment.
pub fn register(env: &mut Environment<'static>) {
    env.add_filter("urlencode", urlencode);
    env.add_filter("b64encode", b64encode);
    env.add_filter("b64decode", b64decode);
    env.add_filter("sha256", sha256);
    env.add_filter("md5", md5);
    env.add_filter("regex_capture", regex_capture);
    env.add_filter("http_date", http_date);
}

/// Percent-encodes everything but unreserved characters (RFC 3986), for query values and paths.
pub fn urlencode(v: String) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(&v, SET).to_string()
}

pub fn b64encode(v: String) -> String {
    base64::engine::general_purpose::STANDARD.encode(v.as_bytes())
}

/// Decodes standard or URL-safe base64 (padding optional) to text (UTF-8, lossy).
pub fn b64decode(v: String) -> Result<String, MjError> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let t = v.trim().trim_end_matches('=');
    let bytes = STANDARD_NO_PAD
        .decode(t)
        .or_else(|_| URL_SAFE_NO_PAD.decode(t))
        .map_err(|e| invalid(format!("b64decode: `{v}` is not base64: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

pub fn sha256(v: String) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(v.as_bytes()))
}

pub fn md5(v: String) -> String {
    use md5::Digest;
    hex(&md5::Md5::digest(v.as_bytes()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `value | regex_capture('id=(\d+)')`: the first group (or `group`, by number or name) of the
/// first match; none when nothing matches.
pub fn regex_capture(
    v: String,
    pattern: String,
    group: Option<MjValue>,
) -> Result<MjValue, MjError> {
    let re = regex::Regex::new(&pattern)
        .map_err(|e| invalid(format!("regex_capture: bad regex `{pattern}`: {e}")))?;
    let Some(caps) = re.captures(&v) else {
        return Ok(MjValue::from(()));
    };
    let m = match group {
        Some(g) if g.as_str().is_some() => caps.name(g.as_str().unwrap_or_default()),
        Some(g) => caps.get(i64::try_from(g).unwrap_or(1).max(0) as usize),
        None if caps.len() > 1 => caps.get(1),
        None => caps.get(0),
    };
    Ok(m.map(|m| MjValue::from(m.as_str()))
        .unwrap_or(MjValue::from(())))
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, also RFC 850 and asctime forms, or RFC 3339)
/// as seconds since the Unix epoch, to compare: `last_modified | http_date < now('%s') | int`.
pub fn http_date(v: String) -> Result<i64, MjError> {
    parse_http_date(&v).ok_or_else(|| {
        invalid(format!(
            "http_date: `{v}` is not an HTTP date (e.g. `Sun, 06 Nov 1994 08:49:37 GMT`)"
        ))
    })
}

pub fn parse_http_date(v: &str) -> Option<i64> {
    let t = v.trim();
    if let Ok(d) = chrono::DateTime::parse_from_rfc2822(t) {
        return Some(d.timestamp());
    }
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(t) {
        return Some(d.timestamp());
    }
    // RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`).
    for fmt in [
        "%A, %d-%b-%y %H:%M:%S GMT",
        "%a %b %e %H:%M:%S %Y",
        "%a, %d-%b-%Y %H:%M:%S GMT",
    ] {
        if let Ok(d) = chrono::NaiveDateTime::parse_from_str(t, fmt) {
            return Some(d.and_utc().timestamp());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        assert_eq!(urlencode("a b&c=d/é".into()), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(b64encode("user:pw".into()), "dXNlcjpwdw==");
        assert_eq!(b64decode("dXNlcjpwdw".into()).unwrap(), "user:pw");
        assert!(b64decode("***".into()).is_err());
        assert_eq!(
            sha256("abc".into()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(md5("abc".into()), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            regex_capture("id=42;x".into(), r"id=(\d+)".into(), None).unwrap(),
            MjValue::from("42")
        );
        assert_eq!(
            http_date("Sun, 06 Nov 1994 08:49:37 GMT".into()).unwrap(),
            784111777
        );
        assert_eq!(
            http_date("Sunday, 06-Nov-94 08:49:37 GMT".into()).unwrap(),
            784111777
        );
        assert_eq!(
            http_date("Sun Nov  6 08:49:37 1994".into()).unwrap(),
            784111777
        );
        assert!(http_date("soon".into()).is_err());
    }
}
