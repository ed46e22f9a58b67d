//! Plain text, and the UTF-8 decoding that every text format (Markdown, HTML too) starts with.

use super::ParseError;

/// Text formats: UTF-8 without NULs; the BOM is dropped and `\r\n` becomes `\n`.
pub(super) fn decode_text(bytes: &[u8]) -> Result<String, ParseError> {
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    let skipped = if bytes.starts_with(BOM) { BOM.len() } else { 0 };
    let bytes = &bytes[skipped..];
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err(ParseError::Binary {
            offset: skipped + at,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| ParseError::InvalidUtf8 {
        offset: skipped + e.valid_up_to(),
    })?;
    Ok(text.replace("\r\n", "\n"))
}

#[cfg(test)]
mod tests {
    use crate::document::test_support::parse_with_defaults;
    use crate::document::{Format, FrontMatter};

    #[test]
    fn bom_and_crlf_are_normalised() {
        let doc = parse_with_defaults("a.md", b"\xEF\xBB\xBF# T\r\n\r\nline\r\n").unwrap();
        assert_eq!(doc.body, "# T\n\nline\n");
        assert_eq!(doc.title, "T");
    }

    #[test]
    fn plain_text_keeps_its_text_and_takes_the_file_stem_as_title() {
        let doc =
            parse_with_defaults("minutes.2024.txt", b"# not a heading source\nplain").unwrap();
        assert_eq!(doc.format, Format::Text);
        assert_eq!(doc.title, "minutes.2024");
        assert_eq!(doc.body, "# not a heading source\nplain");
        assert_eq!(doc.front_matter, FrontMatter::default());
    }

    #[test]
    fn invalid_utf8_reports_the_byte_offset() {
        let err = parse_with_defaults("a.txt", b"ok \xFF bad").unwrap_err();
        assert_eq!(err.code(), "invalid_utf8");
        assert!(err.to_string().contains("offset 3"), "{err}");
    }

    #[test]
    fn nul_bytes_make_a_text_file_binary() {
        let err = parse_with_defaults("a.md", b"h\0e\0").unwrap_err();
        assert_eq!(err.code(), "binary");
        assert!(err.to_string().contains("offset 1"), "{err}");
    }
}
