//! Parsing one uploaded or ingested file into a [`ParsedDocument`]: Markdown with YAML front
//! matter, plain text, HTML and PDF.
//!
//! Every format becomes Markdown-ish `body` text that [`crate::chunker`] cuts chunks from, so a
//! quote taken from a chunk is a substring of `body`. Files are untrusted input: the size is
//! checked before any work, PDF streams are inflated against one shared budget before lopdf
//! sees them, and a panicking PDF parser becomes an error for that file only. Errors say in
//! one sentence what is wrong and what to do, and carry a machine-readable [`ParseError::code`].
//!
//! One file per concern: `types` (limits, formats, the parsed document and its errors),
//! `text` (UTF-8 decoding for the text formats), `front_matter` and `markdown` (YAML metadata,
//! headings and code fences), `body` (the writer the HTML and PDF converters share), `html`,
//! `pdf` (text extraction with lopdf) and `pdf_guard` (the checks around lopdf).

mod body;
mod front_matter;
mod html;
mod markdown;
mod pdf;
mod pdf_guard;
#[cfg(test)]
mod test_support;
mod text;
mod types;

pub(crate) use markdown::{atx_heading, Fences};
pub use types::{Format, FrontMatter, Limits, ParseError, ParsedDocument};

use front_matter::split_front_matter;
use html::{html_nesting_depth, html_to_markdown, MAX_HTML_DEPTH};
use markdown::first_h1;
use pdf_guard::parse_pdf;
use text::decode_text;

/// Parses one file, choosing the format by the extension of `path`.
pub fn parse(path: &str, bytes: &[u8], limits: &Limits) -> Result<ParsedDocument, ParseError> {
    if bytes.len() > limits.max_bytes {
        return Err(ParseError::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let format = Format::from_path(path).ok_or_else(|| ParseError::UnsupportedFormat {
        extension: extension(path).unwrap_or_default().to_string(),
    })?;
    let stem = file_stem(path);
    let (front_matter, title, body) = match format {
        Format::Markdown => {
            let text = decode_text(bytes)?;
            let (front_matter, body) = split_front_matter(&text)?;
            let title = front_matter.title.clone().or_else(|| first_h1(body));
            (front_matter, title, body.to_string())
        }
        Format::Text => (FrontMatter::default(), None, decode_text(bytes)?),
        Format::Html => {
            let text = decode_text(bytes)?;
            if html_nesting_depth(&text) > MAX_HTML_DEPTH {
                return Err(ParseError::TooDeeplyNested {
                    limit: MAX_HTML_DEPTH,
                });
            }
            let (title, body) = html_to_markdown(&text);
            (FrontMatter::default(), title, body)
        }
        Format::Pdf => {
            let (title, body) = parse_pdf(bytes, limits)?;
            (FrontMatter::default(), title, body)
        }
    };
    if body.trim().is_empty() {
        let reason = match format {
            Format::Pdf => {
                "the PDF has no extractable text (it may be scanned images, which need OCR first)"
            }
            _ => "the document contains no text",
        };
        return Err(ParseError::Empty { reason });
    }
    Ok(ParsedDocument {
        format,
        front_matter,
        title: title.unwrap_or_else(|| stem.to_string()),
        body,
    })
}

/// The last path component; uploads from Windows may use backslashes.
fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

fn extension(path: &str) -> Option<&str> {
    file_name(path)
        .rsplit_once('.')
        .map(|(_, extension)| extension)
}

fn file_stem(path: &str) -> &str {
    let name = file_name(path);
    match name.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => name,
    }
}

// Helpers below are shared by several formats, so they live here rather than in one format's
// file that the others would then have to reach into.

fn non_empty(text: String) -> Option<String> {
    let trimmed = text.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|pos| pos + from)
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .rposition(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::test_support::{code_of, md, parse_with_defaults, pdf_with_pages};
    use super::*;
    use lopdf::{dictionary, Stream};

    #[test]
    fn too_large_files_are_rejected_before_parsing() {
        let limits = Limits {
            max_bytes: 10,
            ..Limits::default()
        };
        let err = parse("a.md", b"0123456789AB", &limits).unwrap_err();
        assert_eq!(err.code(), "too_large");
        assert!(
            err.to_string()
                .contains("12 bytes but the limit is 10 bytes"),
            "{err}"
        );
    }

    #[test]
    fn unknown_extensions_list_the_supported_ones() {
        let err = parse_with_defaults("report.docx", b"x").unwrap_err();
        assert_eq!(err.code(), "unsupported_format");
        assert!(err.to_string().contains("`.docx`"), "{err}");
        assert!(err.to_string().contains(".md, .markdown"), "{err}");
        let err = parse_with_defaults("Makefile", b"x").unwrap_err();
        assert!(err.to_string().contains("without an extension"), "{err}");
    }

    #[test]
    fn documents_without_text_are_empty() {
        assert_eq!(code_of(md("---\ntitle: x\n---\n \n\n")), "empty");
        assert_eq!(code_of(parse_with_defaults("a.txt", b"")), "empty");
        assert_eq!(
            code_of(parse_with_defaults("a.html", b"<script>x()</script>")),
            "empty"
        );
    }

    #[test]
    fn pdf_without_text_is_empty() {
        let stream = Stream::new(dictionary! {}, b"0 0 100 100 re f".to_vec());
        let err = parse_with_defaults("a.pdf", &pdf_with_pages(vec![stream], None)).unwrap_err();
        assert_eq!(err.code(), "empty");
        assert!(err.to_string().contains("OCR"), "{err}");
    }
}
