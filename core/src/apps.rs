//! Registered apps: id and allowed-origin rules.

use crate::error::FieldError;

/// App ids are short, lowercase, URL-safe slugs: `[a-z0-9][a-z0-9_-]{0,62}`.
pub fn validate_app_id(id: &str) -> Result<(), FieldError> {
    let ok = !id.is_empty()
        && id.len() <= 63
        && id.bytes().enumerate().all(|(i, c)| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || (i > 0 && (c == b'-' || c == b'_'))
        });
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            "invalid_value",
            "id",
            "app id must be 1 to 63 of a-z, 0-9, - and _, starting with a letter or digit",
        ))
    }
}

/// An allowed origin is `*` or exactly `scheme://host[:port]`, as browsers send it in
/// the `Origin` header (no path, no trailing slash).
pub fn validate_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && rest
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b':' | b'[' | b']'))
}

/// Whether a browser request from `origin` may write with an app's ingest key.
pub fn origin_allowed(allowed: &[String], origin: &str) -> bool {
    allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids() {
        assert!(validate_app_id("demo").is_ok());
        assert!(validate_app_id("shop-2_eu").is_ok());
        for bad in ["", "-x", "Demo", "a b", &"x".repeat(64)] {
            assert!(validate_app_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn origins() {
        assert!(validate_origin("https://shop.example.com"));
        assert!(validate_origin("http://127.0.0.1:8787"));
        assert!(validate_origin("*"));
        for bad in [
            "shop.example.com",
            "https://x.com/",
            "ftp://x.com",
            "https://",
        ] {
            assert!(!validate_origin(bad), "{bad}");
        }
        let allowed = vec!["https://a.com".to_string()];
        assert!(origin_allowed(&allowed, "https://a.com"));
        assert!(!origin_allowed(&allowed, "https://b.com"));
    }
}
