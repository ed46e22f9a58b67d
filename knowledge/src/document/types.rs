//! The shared vocabulary of document parsing: [`Limits`], [`Format`], [`FrontMatter`],
//! [`ParsedDocument`] and [`ParseError`], with the helpers its messages are written with.

use super::extension;

pub(super) const MIB: usize = 1024 * 1024;

/// Upper bounds on what parsing one file may cost.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted file, in bytes.
    pub max_bytes: usize,
    /// Most bytes all of a PDF's compressed streams may inflate to, together.
    pub max_decompressed_bytes: usize,
    /// Most pages a PDF may have.
    pub max_pdf_pages: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 20 * MIB,
            max_decompressed_bytes: 64 * MIB,
            max_pdf_pages: 2000,
        }
    }
}

/// The kinds of file we can parse, recognised by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `.md`, `.markdown`
    Markdown,
    /// `.txt`, `.text`
    Text,
    /// `.html`, `.htm`
    Html,
    /// `.pdf`
    Pdf,
}

/// Supported extensions, as listed in the `unsupported_format` error.
const SUPPORTED: &str = ".md, .markdown, .txt, .text, .html, .htm or .pdf";

impl Format {
    /// The format of `path` by its extension (case-insensitive), or `None` if unsupported.
    pub fn from_path(path: &str) -> Option<Format> {
        match extension(path)?.to_ascii_lowercase().as_str() {
            "md" | "markdown" => Some(Format::Markdown),
            "txt" | "text" => Some(Format::Text),
            "html" | "htm" => Some(Format::Html),
            "pdf" => Some(Format::Pdf),
            _ => None,
        }
    }
}

/// Metadata from a Markdown file's YAML front matter; unknown keys are ignored.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct FrontMatter {
    /// Document title; overrides the first heading.
    pub title: Option<String>,
    /// Owning department, as written.
    pub department: Option<String>,
    /// Sensitivity label, as written.
    pub label: Option<String>,
    /// Tags, trimmed and de-duplicated, from a YAML list or a comma-separated string.
    pub tags: Vec<String>,
    /// Document date, validated as `YYYY-MM-DD`.
    pub date: Option<String>,
}

/// One file turned into text that chunks are cut from.
#[derive(Debug, Clone)]
pub struct ParsedDocument {
    /// The format the file was parsed as.
    pub format: Format,
    /// Front matter (Markdown only; empty for the other formats).
    pub front_matter: FrontMatter,
    /// Front matter title, else the first top-level heading (PDF: its Info title), else the
    /// file stem.
    pub title: String,
    /// Markdown-ish text: `#` headings, paragraphs separated by blank lines.
    pub body: String,
}

/// Why a file could not be parsed; `Display` is a sentence meant for the uploader.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The file is bigger than [`Limits::max_bytes`].
    #[error("the file is {} but the limit is {}; split it into smaller files and upload those", human_size(.size), human_size(.limit))]
    TooLarge { size: usize, limit: usize },
    /// HTML nested deeper than [`MAX_HTML_DEPTH`](super::html::MAX_HTML_DEPTH), which the HTML parser handles in quadratic time.
    #[error("the HTML nests elements more than {limit} deep; simplify the page or save it as text and upload that")]
    TooDeeplyNested { limit: usize },
    /// The PDF has more pages than [`Limits::max_pdf_pages`].
    #[error("the PDF has {pages} pages but the limit is {limit}; split it into smaller PDFs and upload those")]
    TooManyPages { pages: usize, limit: usize },
    /// A text format that is not UTF-8.
    #[error("the file is not valid UTF-8 (the first invalid byte is at offset {offset}); save it as UTF-8 and upload it again")]
    InvalidUtf8 { offset: usize },
    /// A text format containing NUL bytes.
    #[error("the file contains a NUL byte at offset {offset}, so it is binary or UTF-16 rather than text; save it as UTF-8 text and upload it again")]
    Binary { offset: usize },
    /// An extension we do not parse.
    #[error("files {} are not supported; upload a {SUPPORTED} file", describe_extension(.extension))]
    UnsupportedFormat { extension: String },
    /// Front matter that is not YAML, not a mapping, or has a malformed field.
    #[error("the front matter {}is invalid: {reason}; fix the YAML between the two `---` lines or remove it", at_line(.line))]
    BadFrontMatter { line: Option<usize>, reason: String },
    /// A PDF that lopdf cannot read, or that crashed it.
    #[error(
        "the PDF could not be read ({reason}); export or print it to a new PDF and upload that"
    )]
    MalformedPdf { reason: String },
    /// A password-protected or otherwise encrypted PDF.
    #[error("the PDF is encrypted; save a copy without password or restrictions and upload that")]
    EncryptedPdf,
    /// PDF streams that would inflate beyond [`Limits::max_decompressed_bytes`].
    #[error("the PDF's compressed streams expand to more than {}, so it was rejected as a possible decompression bomb; split it or export it again without oversized content", human_size(.limit))]
    DecompressionBomb { limit: usize },
    /// A document without any text to index.
    #[error("{reason}; upload a document that contains text")]
    Empty { reason: &'static str },
}

impl ParseError {
    /// A stable machine-readable code for API responses and logs.
    pub fn code(&self) -> &'static str {
        match self {
            ParseError::TooLarge { .. }
            | ParseError::TooManyPages { .. }
            | ParseError::TooDeeplyNested { .. } => "too_large",
            ParseError::InvalidUtf8 { .. } => "invalid_utf8",
            ParseError::Binary { .. } => "binary",
            ParseError::UnsupportedFormat { .. } => "unsupported_format",
            ParseError::BadFrontMatter { .. } => "bad_front_matter",
            ParseError::MalformedPdf { .. } => "malformed_pdf",
            ParseError::EncryptedPdf => "encrypted_pdf",
            ParseError::DecompressionBomb { .. } => "decompression_bomb",
            ParseError::Empty { .. } => "empty",
        }
    }
}

fn human_size(bytes: &usize) -> String {
    let bytes = *bytes as f64;
    if bytes >= MIB as f64 {
        format!("{:.1} MiB", bytes / MIB as f64)
    } else if bytes >= 1024.0 {
        format!("{:.1} KiB", bytes / 1024.0)
    } else {
        format!("{bytes} bytes")
    }
}

fn describe_extension(extension: &str) -> String {
    if extension.is_empty() {
        "without an extension".to_string()
    } else {
        format!("ending in `.{extension}`")
    }
}

fn at_line(line: &Option<usize>) -> String {
    line.map(|line| format!("at line {line} "))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_comes_from_the_extension_case_insensitively() {
        assert_eq!(Format::from_path("a/b/Guide.MD"), Some(Format::Markdown));
        assert_eq!(Format::from_path("x.markdown"), Some(Format::Markdown));
        assert_eq!(Format::from_path("x.Txt"), Some(Format::Text));
        assert_eq!(Format::from_path("x.text"), Some(Format::Text));
        assert_eq!(Format::from_path("x.HTM"), Some(Format::Html));
        assert_eq!(Format::from_path("x.html"), Some(Format::Html));
        assert_eq!(Format::from_path("C:\\docs\\x.pdf"), Some(Format::Pdf));
        assert_eq!(Format::from_path("x.docx"), None);
        assert_eq!(Format::from_path("README"), None);
        assert_eq!(Format::from_path("archive.md/notes"), None);
    }

    #[test]
    fn every_error_has_its_code() {
        let cases = [
            (ParseError::TooLarge { size: 2, limit: 1 }, "too_large"),
            (ParseError::TooManyPages { pages: 2, limit: 1 }, "too_large"),
            (ParseError::TooDeeplyNested { limit: 1 }, "too_large"),
            (ParseError::InvalidUtf8 { offset: 0 }, "invalid_utf8"),
            (ParseError::Binary { offset: 0 }, "binary"),
            (
                ParseError::UnsupportedFormat {
                    extension: "x".into(),
                },
                "unsupported_format",
            ),
            (
                ParseError::BadFrontMatter {
                    line: None,
                    reason: "r".into(),
                },
                "bad_front_matter",
            ),
            (
                ParseError::MalformedPdf { reason: "r".into() },
                "malformed_pdf",
            ),
            (ParseError::EncryptedPdf, "encrypted_pdf"),
            (
                ParseError::DecompressionBomb { limit: 1 },
                "decompression_bomb",
            ),
            (ParseError::Empty { reason: "no text" }, "empty"),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code);
            let message = error.to_string();
            assert!(message.contains("; "), "says what to do: {message}");
        }
    }
}
