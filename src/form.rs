//! Request bodies the gateway reads itself (admin JSON, back-channel
//! logout forms, refresh requests): their size limit, media types and
//! form encoding. A leaf: it imports nothing from the crate, so every
//! route module can share it without importing another.

/// Largest request body any gateway route reads, in bytes. A logout token
/// or a refresh request is a few hundred; an admin request a few thousand.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How much of a body refused for its size is still read and dropped before
/// answering. workerd closes a connection whose request body was left
/// unread, and a client still uploading then sees a reset instead of the
/// 400; beyond this the upload is cancelled, since draining it would cost
/// more than the client's error is worth.
pub const DRAIN_LIMIT_BYTES: usize = 1024 * 1024;

/// `application/x-www-form-urlencoded`, the back-channel route's only
/// content type (Back-Channel Logout 1.0, 2.5).
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// The media type of a `Content-Type` value, without parameters, in
/// lower case.
pub fn media_type(content_type: Option<&str>) -> Option<String> {
    content_type
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase())
}

/// Is this `Content-Type` the form encoding (parameters such as
/// `charset` allowed)?
pub fn is_form(content_type: Option<&str>) -> bool {
    media_type(content_type).as_deref() == Some(FORM_CONTENT_TYPE)
}

/// One form-urlencoded name or value: `+` is a space and `%XX` an octet;
/// `None` for a broken escape or bytes that are not UTF-8.
pub fn form_decode(bytes: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let text = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(text, 16).ok()?);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_and_escapes() {
        assert!(is_form(Some(FORM_CONTENT_TYPE)));
        assert!(is_form(Some(
            " Application/X-WWW-Form-Urlencoded ; charset=utf-8"
        )));
        for other in [None, Some("application/json"), Some("text/plain"), Some("")] {
            assert!(!is_form(other), "{other:?}");
        }
        assert_eq!(
            media_type(Some("Application/JSON; charset=utf-8")).as_deref(),
            Some("application/json")
        );
        assert_eq!(form_decode(b"a+b%2Fc").as_deref(), Some("a b/c"));
        for broken in [&b"%"[..], b"%e", b"%zz", b"%ff"] {
            assert_eq!(form_decode(broken), None);
        }
    }
}
