//! CORS for the endpoints browsers call from the apps' own origins (ingest, flag
//! decisions, OFREP). Preflights are answered for any origin; the origin is enforced on
//! the real request, which carries the key (`apps::authenticate`).

use worker::{Headers, Request, Response};

fn cors_headers(origin: Option<&str>) -> worker::Result<Headers> {
    let headers = Headers::new();
    if let Some(origin) = origin {
        headers.set("Access-Control-Allow-Origin", origin)?;
        headers.set("Vary", "Origin")?;
        headers.set("Access-Control-Expose-Headers", "Retry-After, ETag")?;
    }
    Ok(headers)
}

/// Adds the CORS answer headers for `origin` to a response.
pub fn with_cors(mut response: Response, origin: Option<&str>) -> worker::Result<Response> {
    for (name, value) in cors_headers(origin)?.entries() {
        response.headers_mut().set(&name, &value)?;
    }
    Ok(response)
}

/// `OPTIONS` on a cross-origin endpoint.
pub fn preflight(req: &Request) -> worker::Result<Response> {
    let origin = req.headers().get("Origin")?;
    let headers = cors_headers(origin.as_deref())?;
    headers.set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")?;
    headers.set(
        "Access-Control-Allow-Headers",
        "Authorization, Content-Type, If-None-Match, X-API-Key",
    )?;
    headers.set("Access-Control-Max-Age", "86400")?;
    Ok(Response::empty()?.with_status(204).with_headers(headers))
}
