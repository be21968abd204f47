//! Secret comparison.

use sha2::{Digest, Sha256};

/// Compares a presented secret with the expected one in time that depends on neither
/// content nor length: both are hashed first, then the digests are compared without
/// an early exit.
pub fn secrets_match(presented: &str, expected: &str) -> bool {
    if expected.is_empty() {
        return false;
    }
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    diff == 0
}

/// Takes the token out of an `Authorization: Bearer <token>` header value.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
        Some(token.trim())
    } else {
        None
    }
}

/// The user name of an `Authorization: Basic <base64(user:password)>` header value: how
/// Segment's and RudderStack's libraries send a write key (as the user, with an empty
/// password). `None` for another scheme, bad base64 or text that is not UTF-8.
pub fn basic_user(header: &str) -> Option<String> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let (user, _password) = decoded.split_once(':').unwrap_or((&decoded, ""));
    (!user.is_empty()).then(|| user.to_string())
}

/// Standard base64 (RFC 4648), padding optional; `None` on any other character.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let body = text.trim_end_matches('=');
    if text.len() - body.len() > 2 || body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    for chunk in body.as_bytes().chunks(4) {
        let mut bits = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            bits |= value(*c)? << (18 - 6 * i);
        }
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_equal_secrets() {
        assert!(secrets_match("s3cret", "s3cret"));
        assert!(!secrets_match("s3cret", "s3cres"));
        assert!(!secrets_match("s3cre", "s3cret"));
        assert!(!secrets_match("", ""), "an unset secret never matches");
    }

    #[test]
    fn reads_the_user_of_basic_credentials() {
        // base64("tt_ik_abc:") and base64("tt_ik_abc:secret"), as libraries send them.
        assert_eq!(
            basic_user("Basic dHRfaWtfYWJjOg==").as_deref(),
            Some("tt_ik_abc")
        );
        assert_eq!(
            basic_user("basic dHRfaWtfYWJjOnNlY3JldA").as_deref(),
            Some("tt_ik_abc")
        );
        assert_eq!(
            basic_user("Basic dHRfaWtfYWJj").as_deref(),
            Some("tt_ik_abc"),
            "no colon"
        );
        assert_eq!(basic_user("Basic Og=="), None, "an empty user");
        assert_eq!(basic_user("Basic ###"), None);
        assert_eq!(basic_user("Basic /w=="), None, "not UTF-8");
        assert_eq!(basic_user("Basic QQ==="), None, "three pads");
        assert_eq!(basic_user("Basic Q"), None, "a lone sextet");
        assert_eq!(basic_user("Bearer dHRfaWtfYWJjOg=="), None);
        for text in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            let encoded = [
                "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy",
            ][text.len()];
            assert_eq!(
                base64_decode(encoded).as_deref(),
                Some(text.as_bytes()),
                "{text}"
            );
        }
    }

    #[test]
    fn parses_bearer() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }
}
