//! Downloads: one HTTP(S) GET with a conditional request, a time limit and a
//! size limit.
//!
//! Owns: the HTTP client configuration (rustls with the bundled web PKI roots,
//! proxies from `ALL_PROXY`/`HTTPS_PROXY`/`HTTP_PROXY` and `NO_PROXY`, no
//! transparent decompression, HTTPS only for an unverified source so a redirect
//! cannot downgrade it), `If-None-Match`/`If-Modified-Since`, and turning a
//! response into [`Fetched`]. Must not own: verification or what the bytes mean.

use std::time::Duration;

/// A request for one URL.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The URL.
    pub url: &'a str,
    /// The `ETag` of the copy we have, sent as `If-None-Match`.
    pub etag: Option<&'a str>,
    /// The `Last-Modified` of the copy we have, sent as `If-Modified-Since`.
    pub last_modified: Option<&'a str>,
    /// The whole request, connect to last byte.
    pub timeout: Duration,
    /// Largest body accepted.
    pub max_size: u64,
    /// Refuse plain `http://`, redirects included.
    pub https_only: bool,
}

/// What the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// 304: the copy we have is current; nothing was downloaded.
    NotModified,
    /// 200 with the whole body.
    Body {
        /// The bytes.
        bytes: Vec<u8>,
        /// The response's `ETag`.
        etag: Option<String>,
        /// The response's `Last-Modified`.
        last_modified: Option<String>,
    },
}

/// Performs `request`.
///
/// # Errors
///
/// A message for the operator: the connection or TLS error, the timeout, an
/// HTTP status other than 200 and 304, or a body over the size limit.
pub fn get(request: &Request<'_>) -> Result<Fetched, String> {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .https_only(request.https_only)
        .timeout_global(Some(request.timeout))
        // Bytes as served: a digest or signature covers exactly them.
        .accept_encoding("identity")
        .user_agent(concat!("vigil-update/", env!("CARGO_PKG_VERSION")))
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let mut call = agent.get(request.url);
    if let Some(etag) = request.etag {
        call = call.header("If-None-Match", etag);
    }
    if let Some(since) = request.last_modified {
        call = call.header("If-Modified-Since", since);
    }
    let mut response = call.call().map_err(|e| describe(&e))?;
    let status = response.status().as_u16();
    match status {
        304 => return Ok(Fetched::NotModified),
        200 => {}
        other => {
            let reason = response.status().canonical_reason().unwrap_or("");
            return Err(format!("HTTP {other} {reason}").trim_end().to_owned());
        }
    }
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let etag = header("etag");
    let last_modified = header("last-modified");
    if let Some(length) = response.body().content_length()
        && length > request.max_size
    {
        return Err(format!(
            "the server announces {length} bytes, more than update.max_download_size ({})",
            request.max_size
        ));
    }
    let bytes = response
        .body_mut()
        .with_config()
        .limit(request.max_size)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(limit) => {
                format!("the body is larger than update.max_download_size ({limit} bytes)")
            }
            other => format!("reading the body: {}", describe(&other)),
        })?;
    Ok(Fetched::Body {
        bytes,
        etag,
        last_modified,
    })
}

/// ureq's error in words an operator can act on.
fn describe(error: &ureq::Error) -> String {
    match error {
        ureq::Error::Timeout(what) => format!("timed out ({what}; see update.timeout_s)"),
        ureq::Error::RequireHttpsOnly(url) => format!(
            "refused plain http:// ({url}): a source with verify = \"none\" must stay on https://"
        ),
        ureq::Error::Io(io) => format!("cannot connect: {io}"),
        ureq::Error::ConnectionFailed => "cannot connect: connection failed".to_owned(),
        ureq::Error::HostNotFound => "cannot connect: host not found".to_owned(),
        ureq::Error::Rustls(tls) => format!("TLS: {tls}"),
        other => other.to_string(),
    }
}
