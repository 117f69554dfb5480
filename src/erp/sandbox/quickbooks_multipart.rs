//! `multipart/form-data` (RFC 7578) read by hand, as the QuickBooks upload endpoint takes
//! it: each part's name, file name, media type and bytes. Small enough not to need a crate.

/// One part of a multipart body.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Part {
    pub(super) name: String,
    pub(super) file_name: Option<String>,
    pub(super) content_type: Option<String>,
    pub(super) data: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A `key="value"` (or unquoted) parameter of a header value.
fn param(header: &str, key: &str) -> Option<String> {
    header.split(';').map(str::trim).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case(key).then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// The boundary a `Content-Type: multipart/form-data; boundary=…` names.
pub(super) fn boundary(content_type: &str) -> Option<String> {
    let media = content_type.split(';').next()?.trim();
    if !media.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    param(content_type, "boundary").filter(|b| !b.is_empty())
}

/// The parts of `body`, or what is malformed.
pub(super) fn parse(boundary: &str, body: &[u8]) -> Result<Vec<Part>, String> {
    let delim = format!("--{boundary}");
    let start = find(body, delim.as_bytes()).ok_or("no boundary in the body")?;
    let mut rest = &body[start + delim.len()..];
    let mut parts = Vec::new();
    let next_delim = format!("\r\n{delim}");
    loop {
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        rest = rest.strip_prefix(b"\r\n").ok_or("a boundary line does not end in CRLF")?;
        let end = find(rest, b"\r\n\r\n").ok_or("a part's headers do not end")?;
        let headers = String::from_utf8_lossy(&rest[..end]).into_owned();
        rest = &rest[end + 4..];
        let len = find(rest, next_delim.as_bytes()).ok_or("a part does not end in a boundary")?;
        let (mut name, mut file_name, mut content_type) = (None, None, None);
        for line in headers.split("\r\n") {
            let Some((h, v)) = line.split_once(':') else { continue };
            if h.trim().eq_ignore_ascii_case("content-disposition") {
                name = param(v, "name");
                file_name = param(v, "filename");
            } else if h.trim().eq_ignore_ascii_case("content-type") {
                content_type = Some(v.trim().to_owned());
            }
        }
        let name = name.ok_or("a part has no name")?;
        parts.push(Part { name, file_name, content_type, data: rest[..len].to_vec() });
        rest = &rest[len + next_delim.len()..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_read_with_their_names_types_and_bytes() {
        let body = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file_metadata_01\"\r\nContent-Type: application/json\r\n\r\n{\"a\":1}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file_content_01\"; filename=\"a.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-\r\n1\r\n--XyZ--\r\n";
        let parts = parse("XyZ", body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "file_metadata_01");
        assert_eq!(parts[0].content_type.as_deref(), Some("application/json"));
        assert_eq!(parts[0].data, b"{\"a\":1}");
        assert_eq!(parts[1].file_name.as_deref(), Some("a.pdf"));
        assert_eq!(parts[1].data, b"%PDF-\r\n1");
    }

    #[test]
    fn boundaries_and_junk() {
        assert_eq!(boundary("multipart/form-data; boundary=\"abc\"").as_deref(), Some("abc"));
        assert_eq!(boundary("application/json"), None);
        for junk in [&b""[..], b"--b", b"--b\r\nno end", b"--b\r\n\r\nx\r\n--b--", b"\xff--b\r\nA: b\r\n\r\n"] {
            assert!(parse("b", junk).is_err(), "{junk:?}");
        }
    }
}
