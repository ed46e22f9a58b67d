//! Parsing one uploaded or ingested file into a [`ParsedDocument`]: Markdown with YAML front
//! matter, plain text, HTML and PDF.
//!
//! Every format becomes Markdown-ish `body` text that [`crate::chunker`] cuts chunks from, so a
//! quote taken from a chunk is a substring of `body`. Files are untrusted input: the size is
//! checked before any work, PDF streams are inflated against one shared budget before lopdf
//! sees them, and a panicking PDF parser becomes an error for that file only. Errors say in
//! one sentence what is wrong and what to do, and carry a machine-readable [`ParseError::code`].

use std::cell::Cell;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read};
use std::panic::{self, AssertUnwindSafe};

use flate2::read::ZlibDecoder;
use lopdf::content::{Content, Operation};
use lopdf::{DecompressError, Dictionary, Document, Encoding, LoadOptions, Object};
use scraper::{ElementRef, Html, Node, Selector};
use serde_yaml::{Mapping, Value};

const MIB: usize = 1024 * 1024;

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
    /// HTML nested deeper than [`MAX_HTML_DEPTH`], which the HTML parser handles in quadratic time.
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

/// Text formats: UTF-8 without NULs; the BOM is dropped and `\r\n` becomes `\n`.
fn decode_text(bytes: &[u8]) -> Result<String, ParseError> {
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

// ---------------------------------------------------------------------------------------------
// Markdown

/// Splits YAML front matter (between a first line `---` and the next `---` line) from the body.
fn split_front_matter(text: &str) -> Result<(FrontMatter, &str), ParseError> {
    let mut lines = text.split_inclusive('\n');
    if lines.next().map(str::trim_end) != Some("---") {
        return Ok((FrontMatter::default(), text));
    }
    let yaml_start = text.find('\n').map_or(text.len(), |at| at + 1);
    let mut offset = yaml_start;
    for line in lines {
        if line.trim_end() == "---" {
            let front_matter = parse_front_matter(&text[yaml_start..offset])?;
            return Ok((front_matter, &text[offset + line.len()..]));
        }
        offset += line.len();
    }
    Err(ParseError::BadFrontMatter {
        line: Some(1),
        reason: "the opening `---` has no closing `---` line".to_string(),
    })
}

fn parse_front_matter(yaml: &str) -> Result<FrontMatter, ParseError> {
    // Lines of the file: the YAML starts on line 2, after the opening `---`.
    let bad = |line: Option<usize>, reason: String| ParseError::BadFrontMatter { line, reason };
    let value: Value = serde_yaml::from_str(yaml).map_err(|e| {
        let message = e.to_string();
        // The YAML error's own "at line N" counts from the first YAML line; we report file lines.
        let reason = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_string();
        bad(e.location().map(|l| l.line() + 1), reason)
    })?;
    let map = match value {
        Value::Mapping(map) => map,
        Value::Null => return Ok(FrontMatter::default()),
        _ => return Err(bad(Some(2), "it must be `key: value` lines".to_string())),
    };
    let field = |key: &str| -> Result<Option<String>, ParseError> {
        scalar(&map, key).map_err(|reason| bad(key_line(yaml, key), reason))
    };
    let date = field("date")?;
    if let Some(date) = &date {
        let valid = date.len() == 10 && chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok();
        if !valid {
            let reason =
                format!("`date` must be a date written YYYY-MM-DD, like 2024-03-31, not `{date}`");
            return Err(bad(key_line(yaml, "date"), reason));
        }
    }
    Ok(FrontMatter {
        title: field("title")?,
        department: field("department")?,
        label: field("label")?,
        tags: tags(&map).map_err(|reason| bad(key_line(yaml, "tags"), reason))?,
        date,
    })
}

/// A single scalar value as a trimmed string; empty strings and nulls become `None`.
fn scalar(map: &Mapping, key: &str) -> Result<Option<String>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => scalar_text(value)
            .map(non_empty)
            .ok_or_else(|| format!("`{key}` must be a single value, not a list or mapping")),
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn non_empty(text: String) -> Option<String> {
    let trimmed = text.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

/// `tags` as a YAML list or a comma-separated string.
fn tags(map: &Mapping) -> Result<Vec<String>, String> {
    let raw: Vec<String> = match map.get("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(scalar_text)
            .collect::<Option<_>>()
            .ok_or("`tags` must be a list of words or a comma-separated string")?,
        Some(Value::String(text)) => text.split(',').map(str::to_string).collect(),
        Some(_) => {
            return Err("`tags` must be a list of words or a comma-separated string".to_string())
        }
    };
    let mut tags: Vec<String> = Vec::new();
    for tag in raw.into_iter().filter_map(non_empty) {
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    Ok(tags)
}

/// The file line on which `key:` appears in the front matter, for error messages.
fn key_line(yaml: &str, key: &str) -> Option<usize> {
    yaml.lines()
        .position(|line| {
            line.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map(|index| index + 2)
}

/// The text of the first `# ` heading outside fenced code.
fn first_h1(body: &str) -> Option<String> {
    let mut fences = Fences::default();
    body.lines()
        .filter(|line| !fences.is_code(line))
        .find_map(|line| match atx_heading(line) {
            Some((1, text)) if !text.is_empty() => Some(text.to_string()),
            _ => None,
        })
}

/// An ATX heading line (`#` to `######` at line start, then a space or the end of the line):
/// its level and its text without the `#` marks.
pub(crate) fn atx_heading(line: &str) -> Option<(usize, &str)> {
    let line = line.trim_end_matches(['\n', '\r']);
    let level = line.bytes().take_while(|&b| b == b'#').count();
    let rest = &line[level..];
    if !(1..=6).contains(&level) || !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    let text = rest.trim();
    // An optional closing sequence of `#`s counts only after whitespace (`# C#` keeps its `#`).
    let unclosed = text.trim_end_matches('#');
    let text = if unclosed.is_empty() {
        ""
    } else if unclosed.ends_with([' ', '\t']) {
        unclosed.trim_end()
    } else {
        text
    };
    Some((level, text))
}

/// Tracks fenced code blocks (```` ``` ```` or `~~~`, CommonMark rules) line by line, so that
/// `#` lines inside code are not taken for headings.
#[derive(Debug, Default)]
pub(crate) struct Fences {
    open: Option<(u8, usize)>,
}

impl Fences {
    /// Feeds the next line; true if it belongs to a fenced block, fence lines included.
    pub(crate) fn is_code(&mut self, line: &str) -> bool {
        let unindented = line.trim_start_matches(' ');
        let fence = if line.len() - unindented.len() <= 3 {
            fence_marker(unindented)
        } else {
            None
        };
        match (self.open, fence) {
            (None, Some((marker, length, _))) => {
                self.open = Some((marker, length));
                true
            }
            (None, None) => false,
            (Some((marker, length)), Some((closing, run, bare)))
                if closing == marker && run >= length && bare =>
            {
                self.open = None;
                true
            }
            (Some(_), _) => true,
        }
    }
}

/// A fence line's marker byte, run length, and whether nothing but whitespace follows the run.
fn fence_marker(line: &str) -> Option<(u8, usize, bool)> {
    let marker = *line.as_bytes().first()?;
    if marker != b'`' && marker != b'~' {
        return None;
    }
    let run = line.bytes().take_while(|&b| b == marker).count();
    let rest = &line[run..];
    // A backtick fence's info string may not contain backticks (that is inline code).
    if run < 3 || (marker == b'`' && rest.contains('`')) {
        return None;
    }
    Some((marker, run, rest.trim().is_empty()))
}

// ---------------------------------------------------------------------------------------------
// Body text shared by the HTML and PDF converters

/// The separator owed before the next line written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Break {
    Line,
    Paragraph,
}

/// Builds a body from inline text and line/paragraph breaks, collapsing whitespace and
/// escaping lines that would otherwise read as Markdown headings or fences.
#[derive(Debug, Default)]
struct BodyWriter {
    out: String,
    line: String,
    /// Markup for the current line (`## `, `- `), written only if the line gets text.
    prefix: String,
    pending: Option<Break>,
}

impl BodyWriter {
    fn text(&mut self, text: &str) {
        for ch in text.chars() {
            if ch.is_whitespace() {
                if !self.line.is_empty() && !self.line.ends_with(' ') {
                    self.line.push(' ');
                }
            } else if !ch.is_control() {
                self.line.push(ch);
            }
        }
    }

    fn ends_with_space(&self) -> bool {
        self.line.is_empty() || self.line.ends_with(' ')
    }

    /// Ends the current line (if it has text) and owes at least `kind` before the next one.
    fn brk(&mut self, kind: Break) {
        let content = self.line.trim();
        if !content.is_empty() {
            if !self.out.is_empty() {
                self.out.push_str(match self.pending {
                    Some(Break::Paragraph) => "\n\n",
                    _ => "\n",
                });
            }
            let looks_like_markup = content.starts_with('#')
                || content.starts_with("```")
                || content.starts_with("~~~");
            if self.prefix.is_empty() && looks_like_markup {
                self.out.push('\\');
            }
            self.out.push_str(&self.prefix);
            self.out.push_str(content);
            self.prefix.clear();
            self.pending = None;
        }
        self.line.clear();
        self.pending = self.pending.max(Some(kind));
    }

    /// Writes `text` verbatim as its own paragraph.
    fn raw_paragraph(&mut self, text: &str) {
        self.brk(Break::Paragraph);
        if !self.out.is_empty() {
            self.out.push_str("\n\n");
        }
        self.out.push_str(text);
        self.pending = Some(Break::Paragraph);
    }

    fn finish(mut self) -> String {
        self.brk(Break::Paragraph);
        self.out
    }
}

// ---------------------------------------------------------------------------------------------
// HTML

/// Elements whose content is not document text.
const SKIPPED: &[&str] = &[
    "script", "style", "nav", "head", "noscript", "template", "svg", "canvas", "iframe", "select",
];

/// Elements that start and end a paragraph.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "aside",
    "blockquote",
    "figure",
    "figcaption",
    "form",
    "fieldset",
    "address",
    "details",
    "summary",
    "dl",
    "dt",
    "dd",
    "hr",
    "center",
    "table",
    "caption",
];

/// Deepest element nesting accepted. html5ever's tree builder searches the stack of open
/// elements for each new tag, so parse time grows with the square of the depth (100k nested
/// `<div>`s take 20 s); real pages stay far below this.
const MAX_HTML_DEPTH: usize = 512;

/// Elements without content, which never nest.
const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

/// Elements whose end tag may be left out because the next sibling closes them.
const OPTIONAL_END: &[&str] = &[
    "p", "li", "dt", "dd", "tr", "td", "th", "thead", "tbody", "tfoot", "option", "optgroup", "rb",
    "rt", "rtc", "rp", "colgroup", "caption", "html", "head", "body",
];

/// Elements whose content is raw text, not tags.
const RAW_TEXT: &[&str] = &[
    "script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes",
];

/// Estimates how deeply an HTML source nests elements with a linear scan of its tags, counting
/// only elements that stay open until their end tag. HTML ignores `/>` except inside SVG and
/// MathML, so `<div/>` counts as an open `<div>`.
fn html_nesting_depth(source: &str) -> usize {
    let lower = source.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let (mut depth, mut deepest, mut pos, mut foreign) = (0usize, 0usize, 0usize, 0usize);
    while let Some(lt) = find(bytes, b"<", pos) {
        if bytes[lt + 1..].starts_with(b"!--") {
            pos = find(bytes, b"-->", lt).map_or(bytes.len(), |end| end + 3);
            continue;
        }
        let closing = bytes.get(lt + 1) == Some(&b'/');
        let name_start = lt + 1 + usize::from(closing);
        let name_len = bytes[name_start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        if name_len == 0 || !bytes[name_start].is_ascii_alphabetic() {
            pos = lt + 1;
            continue;
        }
        let name = &lower[name_start..name_start + name_len];
        let Some(tag_end) = find(bytes, b">", name_start) else {
            break;
        };
        pos = tag_end + 1;
        if VOID.contains(&name) || OPTIONAL_END.contains(&name) {
            continue;
        }
        let is_foreign_root = name == "svg" || name == "math";
        if closing {
            depth = depth.saturating_sub(1);
            if is_foreign_root {
                foreign = foreign.saturating_sub(1);
            }
        } else if foreign == 0 || bytes[tag_end - 1] != b'/' {
            depth += 1;
            if is_foreign_root {
                foreign += 1;
            }
            deepest = deepest.max(depth);
            if RAW_TEXT.contains(&name) {
                let end_tag = format!("</{name}");
                pos = find(bytes, end_tag.as_bytes(), pos).unwrap_or(bytes.len());
            }
        }
    }
    deepest
}

/// Converts HTML to Markdown-ish text; also returns `<title>` or else the first `<h1>`.
fn html_to_markdown(source: &str) -> (Option<String>, String) {
    let html = Html::parse_document(source);
    let title = ["title", "h1"].iter().find_map(|tag| {
        let selector = Selector::parse(tag).expect("a tag name is a valid selector");
        let element = html.select(&selector).next()?;
        let mut writer = BodyWriter::default();
        writer.text(&element.text().collect::<String>());
        non_empty(writer.line)
    });

    // Walk the tree without recursion, so nesting depth never meets the stack size.
    let mut writer = HtmlWriter::default();
    let root = html.tree.root();
    let mut node = root;
    'walk: loop {
        let entered = match node.value() {
            Node::Element(element) if element.name() == "pre" => {
                let code: String = ElementRef::wrap(node)
                    .map(|pre| pre.text().collect())
                    .unwrap_or_default();
                writer.code_block(&code);
                false
            }
            value => writer.open(value),
        };
        if entered {
            if let Some(child) = node.first_child() {
                node = child;
                continue;
            }
            writer.close(node.value());
        }
        loop {
            if node == root {
                break 'walk;
            }
            if let Some(sibling) = node.next_sibling() {
                node = sibling;
                break;
            }
            node = node.parent().expect("a node below the root has a parent");
            writer.close(node.value());
        }
    }
    (title, writer.body.finish())
}

/// Turns HTML open/close events into body text.
#[derive(Debug, Default)]
struct HtmlWriter {
    body: BodyWriter,
    list_depth: usize,
    /// Inside headings and table cells, where block breaks become spaces.
    inline_depth: usize,
    cells_in_row: usize,
}

impl HtmlWriter {
    /// Handles an opening tag or text; false if the element's content is to be skipped.
    fn open(&mut self, node: &Node) -> bool {
        let element = match node {
            Node::Text(text) => {
                self.body.text(text);
                return true;
            }
            Node::Element(element) => element,
            Node::Document | Node::Fragment => return true,
            _ => return false,
        };
        let name = element.name();
        if SKIPPED.contains(&name) {
            return false;
        }
        match name {
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.brk(Break::Paragraph);
                let level = usize::from(name.as_bytes()[1] - b'0');
                self.body.prefix = format!("{} ", "#".repeat(level));
                self.inline_depth += 1;
            }
            "ul" | "ol" => {
                self.brk(self.list_break());
                self.list_depth += 1;
            }
            "li" => {
                self.brk(Break::Line);
                let indent = "  ".repeat(self.list_depth.saturating_sub(1));
                self.body.prefix = format!("{indent}- ");
            }
            "tr" => {
                self.brk(Break::Line);
                self.cells_in_row = 0;
            }
            "td" | "th" => {
                if self.cells_in_row > 0 {
                    let kept = self.body.line.trim_end().len();
                    self.body.line.truncate(kept);
                    self.body.line.push_str(" | ");
                }
                self.cells_in_row += 1;
                self.inline_depth += 1;
            }
            "br" => self.brk(Break::Line),
            _ if BLOCKS.contains(&name) => self.brk(Break::Paragraph),
            _ => {}
        }
        true
    }

    /// Handles the closing of an element that [`HtmlWriter::open`] entered.
    fn close(&mut self, node: &Node) {
        let Node::Element(element) = node else { return };
        match element.name() {
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.inline_depth -= 1;
                self.brk(Break::Paragraph);
                self.body.prefix.clear();
            }
            "ul" | "ol" => {
                self.list_depth -= 1;
                self.brk(self.list_break());
            }
            "li" => {
                self.brk(Break::Line);
                self.body.prefix.clear();
            }
            "td" | "th" => self.inline_depth -= 1,
            "tr" => self.brk(Break::Line),
            name if BLOCKS.contains(&name) => self.brk(Break::Paragraph),
            _ => {}
        }
    }

    /// A nested list continues its parent's block; a top-level list is its own paragraph.
    fn list_break(&self) -> Break {
        if self.list_depth > 0 {
            Break::Line
        } else {
            Break::Paragraph
        }
    }

    fn brk(&mut self, kind: Break) {
        if self.inline_depth > 0 {
            self.body.text(" ");
        } else {
            self.body.brk(kind);
        }
    }

    /// `<pre>` keeps its whitespace, fenced so the chunker does not read `#` lines as headings.
    fn code_block(&mut self, code: &str) {
        let code = code.trim_matches('\n');
        if code.trim().is_empty() {
            return;
        }
        let longest_run = code.split(|ch| ch != '`').map(str::len).max().unwrap_or(0);
        let fence = "`".repeat(longest_run.max(2) + 1);
        self.body
            .raw_paragraph(&format!("{fence}\n{code}\n{fence}"));
    }
}

// ---------------------------------------------------------------------------------------------
// PDF

/// Most filter layers followed when measuring one stream (lopdf allows 16).
const MAX_FLATE_LAYERS: usize = 16;

/// Extracts a PDF's Info title and its text, page by page.
fn parse_pdf(bytes: &[u8], limits: &Limits) -> Result<(Option<String>, String), ParseError> {
    let head = &bytes[..bytes.len().min(1024)];
    if find(head, b"%PDF-", 0).is_none() {
        return Err(ParseError::MalformedPdf {
            reason: "it does not start with a %PDF header".to_string(),
        });
    }
    if declares_encryption(bytes) {
        return Err(ParseError::EncryptedPdf);
    }
    check_inflated_size(bytes, limits.max_decompressed_bytes)?;
    panic::catch_unwind(AssertUnwindSafe(|| extract_pdf(bytes, limits))).unwrap_or_else(|_| {
        Err(ParseError::MalformedPdf {
            reason: "the PDF parser crashed on it".to_string(),
        })
    })
}

/// An `/Encrypt` entry (in a trailer or cross-reference stream dictionary).
fn declares_encryption(pdf: &[u8]) -> bool {
    let mut from = 0;
    while let Some(at) = find(pdf, b"/Encrypt", from) {
        from = at + 1;
        match pdf.get(at + b"/Encrypt".len()) {
            Some(b) if b.is_ascii_whitespace() || b.is_ascii_digit() || *b == b'<' => return true,
            _ => {}
        }
    }
    false
}

/// Inflates every FlateDecode stream that text extraction may decode (all but images and
/// font programs), through bounded readers and against one budget for the whole file, so a
/// small PDF cannot make lopdf inflate gigabytes. Streams that are not zlib data are left
/// to lopdf, which bounds each stream by the same limit.
fn check_inflated_size(pdf: &[u8], limit: usize) -> Result<(), ParseError> {
    let budget = Budget {
        remaining: Cell::new(limit),
        exceeded: Cell::new(false),
    };
    let mut from = 0;
    while let Some(at) = find(pdf, b"stream", from) {
        from = at + 1;
        let Some(data) = stream_data_start(pdf, at) else {
            continue;
        };
        if !is_zlib_header(&pdf[data..]) || never_decoded(stream_dictionary(pdf, at)) {
            continue;
        }
        measure_layers(&pdf[data..], &budget);
        if budget.exceeded.get() {
            return Err(ParseError::DecompressionBomb { limit });
        }
    }
    Ok(())
}

/// Where a stream's data starts, if `at` is a `stream` keyword (lopdf's rule: optional spaces,
/// then an end of line) and not the end of `endstream`.
fn stream_data_start(pdf: &[u8], at: usize) -> Option<usize> {
    if at >= 3 && &pdf[at - 3..at] == b"end" {
        return None;
    }
    let mut pos = at + b"stream".len();
    while matches!(pdf.get(pos), Some(b' ' | b'\t')) {
        pos += 1;
    }
    match (pdf.get(pos), pdf.get(pos + 1)) {
        (Some(b'\r'), Some(b'\n')) => Some(pos + 2),
        (Some(b'\r' | b'\n'), _) => Some(pos + 1),
        _ => None,
    }
}

/// The text before a `stream` keyword back to the previous object's end: its dictionary.
fn stream_dictionary(pdf: &[u8], at: usize) -> &[u8] {
    let window = &pdf[at.saturating_sub(8192)..at];
    let after = |needle: &[u8]| rfind(window, needle).map_or(0, |pos| pos + needle.len());
    &window[after(b"endobj").max(after(b"endstream"))..]
}

/// Images and font programs, which text extraction never inflates. A dictionary that also
/// mentions object or cross-reference streams (which lopdf inflates while loading) or uses `#`
/// name escapes (which could hide those) is measured anyway.
fn never_decoded(dictionary: &[u8]) -> bool {
    let has = |needle: &[u8]| find(dictionary, needle, 0).is_some();
    let suspicious = has(b"ObjStm") || has(b"XRef") || has(b"#");
    let image = {
        let mut from = 0;
        let mut found = false;
        while let Some(at) = find(dictionary, b"/Image", from) {
            from = at + 1;
            let next = dictionary.get(at + b"/Image".len());
            if next.is_none_or(|b| !b.is_ascii_alphanumeric()) {
                found = true;
                break;
            }
        }
        found
    };
    let font_program =
        has(b"/Length1") || has(b"/Type1C") || has(b"/CIDFontType0C") || has(b"/OpenType");
    (image || font_program) && !suspicious
}

fn is_zlib_header(data: &[u8]) -> bool {
    match data {
        [cmf, flg, ..] => {
            cmf & 0x0F == 8
                && cmf >> 4 <= 7
                && flg & 0x20 == 0
                && (u16::from(*cmf) * 256 + u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

/// What is left of the inflation budget, shared by every layer of every stream.
struct Budget {
    remaining: Cell<usize>,
    exceeded: Cell<bool>,
}

/// A reader that fails once its output would exceed what is left of the budget.
struct Bounded<'b, R> {
    inner: R,
    budget: &'b Budget,
}

impl<R: Read> Read for Bounded<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        let remaining = self.budget.remaining.get();
        if read > remaining {
            self.budget.exceeded.set(true);
            return Err(io::Error::other("decompression budget exceeded"));
        }
        self.budget.remaining.set(remaining - read);
        Ok(read)
    }
}

/// Inflates one stream to the end, counting every layer's output: when a layer's output is
/// itself zlib data (`/Filter [/FlateDecode /FlateDecode]`), the next layer is chained on
/// top, streaming, so nothing is held in memory. Corrupt data just ends the measurement;
/// lopdf reports it later if it matters.
fn measure_layers(data: &[u8], budget: &Budget) {
    let mut reader: Box<dyn Read + '_> = Box::new(Bounded {
        inner: ZlibDecoder::new(data),
        budget,
    });
    for _ in 1..MAX_FLATE_LAYERS {
        let mut head = [0u8; 2];
        let got = read_up_to(&mut reader, &mut head);
        if !is_zlib_header(&head[..got]) {
            break;
        }
        let inner = io::Cursor::new(head).chain(reader);
        reader = Box::new(Bounded {
            inner: ZlibDecoder::new(inner),
            budget,
        });
    }
    let _ = io::copy(&mut reader, &mut io::sink());
}

fn read_up_to(reader: &mut dyn Read, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) | Err(_) => break,
            Ok(read) => filled += read,
        }
    }
    filled
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

/// Loads the PDF with lopdf and extracts its text; runs under `catch_unwind`.
fn extract_pdf(bytes: &[u8], limits: &Limits) -> Result<(Option<String>, String), ParseError> {
    let options = LoadOptions {
        max_decompressed_size: Some(limits.max_decompressed_bytes),
        ..LoadOptions::default()
    };
    let doc = Document::load_mem_with_options(bytes, options).map_err(|e| pdf_error(e, limits))?;
    if doc.trailer.get(b"Encrypt").is_ok() || doc.was_encrypted() {
        return Err(ParseError::EncryptedPdf);
    }
    let pages = doc.get_pages();
    if pages.len() > limits.max_pdf_pages {
        return Err(ParseError::TooManyPages {
            pages: pages.len(),
            limit: limits.max_pdf_pages,
        });
    }
    let mut text = PdfText {
        doc: &doc,
        limits,
        budget: limits.max_decompressed_bytes,
        encodings: HashMap::new(),
        body: BodyWriter::default(),
    };
    for &page_id in pages.values() {
        text.page(page_id)?;
    }
    Ok((info_title(&doc), text.body.finish()))
}

/// Form XObjects nested deeper than this are not read.
const MAX_FORM_DEPTH: usize = 8;

/// Extracts a document's text page by page, including form XObjects the pages draw.
struct PdfText<'d> {
    doc: &'d Document,
    limits: &'d Limits,
    /// Bytes page contents and forms may still inflate to. The whole file was measured before
    /// loading, but a stream whose dictionary posed as an image was not, so this bounds them too.
    budget: usize,
    /// Font encodings resolved once per font dictionary, however many pages use the font.
    encodings: HashMap<*const Dictionary, Option<Encoding<'d>>>,
    body: BodyWriter,
}

impl<'d> PdfText<'d> {
    fn page(&mut self, page_id: lopdf::ObjectId) -> Result<(), ParseError> {
        let content = self
            .doc
            .get_page_content_with_limit(page_id, self.budget)
            .map_err(|e| pdf_error(e, self.limits))?;
        self.budget = self.budget.saturating_sub(content.len());
        let (direct, inherited) = self.doc.get_page_resources(page_id).unwrap_or_default();
        let resources: Vec<&Dictionary> = direct
            .into_iter()
            .chain(
                inherited
                    .iter()
                    .filter_map(|id| self.doc.get_dictionary(*id).ok()),
            )
            .collect();
        self.content(&content, &resources, &mut HashSet::new(), 0)?;
        self.body.brk(Break::Paragraph);
        Ok(())
    }

    /// The text of one content stream, then of the forms it draws (each form once per page).
    fn content(
        &mut self,
        content: &[u8],
        resources: &[&'d Dictionary],
        seen: &mut HashSet<lopdf::ObjectId>,
        depth: usize,
    ) -> Result<(), ParseError> {
        let fonts: BTreeMap<Vec<u8>, &Encoding> = self
            .resolve_fonts(resources)?
            .into_iter()
            .filter_map(|(name, key)| Some((name, self.encodings.get(&key)?.as_ref()?)))
            .collect();
        let forms = PageText::new(&fonts, &mut self.body).run(content);
        if depth >= MAX_FORM_DEPTH {
            return Ok(());
        }
        for name in forms {
            let Some((id, form)) = self.form(resources, &name) else {
                continue;
            };
            if !seen.insert(id) {
                continue;
            }
            let data = match form.decompressed_content_with_limit(self.budget) {
                Ok(data) => data,
                Err(e @ lopdf::Error::Decompress(DecompressError::MemoryLimitExceeded { .. })) => {
                    return Err(pdf_error(e, self.limits));
                }
                Err(_) if form.dict.get(b"Filter").is_err() => form.content.clone(),
                Err(_) => continue,
            };
            self.budget = self.budget.saturating_sub(data.len());
            // A form's own resources come first; old files let forms use the page's.
            let own = form
                .dict
                .get_deref(b"Resources", self.doc)
                .and_then(Object::as_dict);
            let inner: Vec<&Dictionary> =
                own.into_iter().chain(resources.iter().copied()).collect();
            self.content(&data, &inner, seen, depth + 1)?;
        }
        Ok(())
    }

    /// The form XObject `name` refers to in `resources`, with its object id.
    fn form(
        &self,
        resources: &[&'d Dictionary],
        name: &[u8],
    ) -> Option<(lopdf::ObjectId, &'d lopdf::Stream)> {
        resources.iter().find_map(|dict| {
            let xobjects = dict
                .get_deref(b"XObject", self.doc)
                .and_then(Object::as_dict)
                .ok()?;
            let id = xobjects.get(name).and_then(Object::as_reference).ok()?;
            let stream = self.doc.get_object(id).and_then(Object::as_stream).ok()?;
            let is_form =
                stream.dict.get(b"Subtype").and_then(Object::as_name).ok() == Some(b"Form");
            is_form.then_some((id, stream))
        })
    }

    /// Resolves the encodings of the fonts in `resources` into the cache; returns the font
    /// dictionaries by name, the first resource dictionary winning.
    fn resolve_fonts(
        &mut self,
        resources: &[&'d Dictionary],
    ) -> Result<BTreeMap<Vec<u8>, *const Dictionary>, ParseError> {
        let doc = self.doc;
        let mut keys: BTreeMap<Vec<u8>, *const Dictionary> = BTreeMap::new();
        for resource in resources.iter().rev() {
            let Ok(fonts) = resource.get_deref(b"Font", doc).and_then(Object::as_dict) else {
                continue;
            };
            for (name, font) in fonts.iter() {
                let Ok(font) = doc.dereference(font).and_then(|(_, font)| font.as_dict()) else {
                    continue;
                };
                if let Entry::Vacant(slot) = self.encodings.entry(font) {
                    let encoding = match font
                        .get_font_encoding_with_limit(doc, self.limits.max_decompressed_bytes)
                    {
                        Ok(encoding) => Some(encoding),
                        Err(
                            e @ lopdf::Error::Decompress(DecompressError::MemoryLimitExceeded {
                                ..
                            }),
                        ) => {
                            return Err(pdf_error(e, self.limits));
                        }
                        Err(_) => None,
                    };
                    slot.insert(encoding);
                }
                keys.insert(name.clone(), font);
            }
        }
        Ok(keys)
    }
}

fn pdf_error(error: lopdf::Error, limits: &Limits) -> ParseError {
    match error {
        lopdf::Error::Decompress(DecompressError::MemoryLimitExceeded { .. }) => {
            ParseError::DecompressionBomb {
                limit: limits.max_decompressed_bytes,
            }
        }
        other => {
            let mut reason = other.to_string();
            if reason.len() > 200 {
                let cut = (0..=200)
                    .rev()
                    .find(|&i| reason.is_char_boundary(i))
                    .unwrap_or(0);
                reason.truncate(cut);
                reason.push('…');
            }
            ParseError::MalformedPdf { reason }
        }
    }
}

fn info_title(doc: &Document) -> Option<String> {
    let (_, info) = doc.dereference(doc.trailer.get(b"Info").ok()?).ok()?;
    let (_, title) = doc
        .dereference(info.as_dict().ok()?.get(b"Title").ok()?)
        .ok()?;
    non_empty(lopdf::decode_text_string(title).ok()?)
}

/// Typographic ligatures spelled out, so that "ﬁle" is found by searching for "file".
fn expand_ligatures(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '\u{FB00}' => plain.push_str("ff"),
            '\u{FB01}' => plain.push_str("fi"),
            '\u{FB02}' => plain.push_str("fl"),
            '\u{FB03}' => plain.push_str("ffi"),
            '\u{FB04}' => plain.push_str("ffl"),
            '\u{FB05}' | '\u{FB06}' => plain.push_str("st"),
            other => plain.push(other),
        }
    }
    plain
}

/// A TJ adjustment (thousandths of an em) wide enough to be a space between words.
const TJ_SPACE: f32 = -180.0;

/// Rebuilds lines and paragraphs from one content stream by following the text line
/// matrix: a small vertical move starts a new line, a move well beyond the usual line gap
/// (or upwards, to a new column) starts a new paragraph.
struct PageText<'f, 'd, 'w> {
    fonts: &'f BTreeMap<Vec<u8>, &'f Encoding<'d>>,
    body: &'w mut BodyWriter,
    encoding: Option<&'f Encoding<'d>>,
    font_size: f32,
    leading: f32,
    /// The text line matrix `[a b c d e f]`.
    matrix: [f32; 6],
    /// Whether the matrix moved since text was last shown.
    moved: bool,
    last_y: Option<f32>,
    line_gap: Option<f32>,
    /// Names of the XObjects drawn with `Do`, in order, each once.
    drawn: Vec<Vec<u8>>,
}

impl<'f, 'd, 'w> PageText<'f, 'd, 'w> {
    const IDENTITY: [f32; 6] = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];

    fn new(fonts: &'f BTreeMap<Vec<u8>, &'f Encoding<'d>>, body: &'w mut BodyWriter) -> Self {
        PageText {
            fonts,
            body,
            encoding: None,
            font_size: 12.0,
            leading: 0.0,
            matrix: Self::IDENTITY,
            moved: false,
            last_y: None,
            line_gap: None,
            drawn: Vec::new(),
        }
    }

    /// Writes the text of `content`; returns the names of the XObjects it draws.
    fn run(mut self, content: &[u8]) -> Vec<Vec<u8>> {
        // A broken operator ends the text of this stream; what came before it is kept.
        for operation in Content::decode_iter(content) {
            match operation {
                Ok(operation) => self.apply(&operation),
                Err(_) => break,
            }
        }
        self.drawn
    }

    fn apply(&mut self, op: &Operation) {
        let number = |index: usize| {
            op.operands
                .get(index)
                .and_then(|o| o.as_float().ok())
                .unwrap_or(0.0)
        };
        match op.operator.as_str() {
            "BT" => self.set_matrix(Self::IDENTITY),
            "Tf" => {
                let name = op.operands.first().and_then(|o| o.as_name().ok());
                self.encoding = name.and_then(|name| self.fonts.get(name)).copied();
                self.font_size = number(1);
            }
            "TL" => self.leading = number(0),
            "Td" => self.translate(number(0), number(1)),
            "TD" => {
                self.leading = -number(1);
                self.translate(number(0), number(1));
            }
            "Tm" => self.set_matrix([
                number(0),
                number(1),
                number(2),
                number(3),
                number(4),
                number(5),
            ]),
            "T*" => self.translate(0.0, -self.leading),
            "Tj" => self.show(op.operands.first()),
            "'" => {
                self.translate(0.0, -self.leading);
                self.show(op.operands.first());
            }
            "\"" => {
                self.translate(0.0, -self.leading);
                self.show(op.operands.get(2));
            }
            "Do" => {
                let name = op.operands.first().and_then(|o| o.as_name().ok());
                if let Some(name) = name.filter(|name| !self.drawn.iter().any(|seen| seen == name))
                {
                    self.drawn.push(name.to_vec());
                }
            }
            "TJ" => {
                let items = op.operands.first().and_then(|o| o.as_array().ok());
                for item in items.into_iter().flatten() {
                    match item.as_float() {
                        Ok(adjust) if adjust < TJ_SPACE => self.body.text(" "),
                        Ok(_) => {}
                        Err(_) => self.show(Some(item)),
                    }
                }
            }
            _ => {}
        }
    }

    fn set_matrix(&mut self, matrix: [f32; 6]) {
        self.matrix = matrix;
        self.moved = true;
    }

    fn translate(&mut self, tx: f32, ty: f32) {
        let [a, b, c, d, e, f] = self.matrix;
        self.set_matrix([a, b, c, d, e + tx * a + ty * c, f + tx * b + ty * d]);
    }

    fn show(&mut self, operand: Option<&Object>) {
        let (Some(encoding), Some(Ok(bytes))) = (self.encoding, operand.map(Object::as_str)) else {
            return;
        };
        self.place();
        let mut text = String::new();
        if encoding.write_to_string(bytes, &mut text).is_ok() {
            self.body.text(&expand_ligatures(&text));
        }
    }

    /// Decides, before text is shown, whether it continues the line or starts a new one.
    fn place(&mut self) {
        let [_, b, _, d, _, y] = self.matrix;
        let size = (self.font_size * b.hypot(d)).abs().max(1.0);
        if let Some(last_y) = self.last_y {
            // With a flipped text matrix (d < 0) the page runs down with growing y.
            let drop = (last_y - y) * if d < 0.0 { -1.0 } else { 1.0 };
            if drop.abs() < size * 0.5 {
                if self.moved && !self.body.ends_with_space() {
                    self.body.text(" ");
                }
            } else {
                let usual = self.line_gap.map_or(size * 1.8, |gap| gap * 1.35);
                if drop < 0.0 || drop > usual {
                    self.body.brk(Break::Paragraph);
                } else {
                    self.line_gap = Some(drop);
                    self.body.brk(Break::Line);
                }
            }
        }
        self.last_y = Some(y);
        self.moved = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::ZlibEncoder;
    use flate2::Compression;
    use lopdf::{dictionary, Stream};
    use std::io::Write;

    fn parse_with_defaults(path: &str, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        parse(path, bytes, &Limits::default())
    }

    fn md(source: &str) -> Result<ParsedDocument, ParseError> {
        parse_with_defaults("notes/Team Handbook.md", source.as_bytes())
    }

    fn code_of(result: Result<ParsedDocument, ParseError>) -> &'static str {
        result.expect_err("parsing should fail").code()
    }

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
    fn markdown_front_matter_fills_fields_and_body_follows_verbatim() {
        let source = "---\ntitle: \"  Expense policy \"\ndepartment: finance\nlabel: internal\ntags: [travel, ' meals ', travel]\ndate: 2024-03-31\nowner: someone\n---\n# Heading\n\nBody  text.\n";
        let doc = md(source).unwrap();
        assert_eq!(doc.format, Format::Markdown);
        assert_eq!(
            doc.front_matter,
            FrontMatter {
                title: Some("Expense policy".into()),
                department: Some("finance".into()),
                label: Some("internal".into()),
                tags: vec!["travel".into(), "meals".into()],
                date: Some("2024-03-31".into()),
            }
        );
        assert_eq!(doc.title, "Expense policy");
        assert_eq!(doc.body, "# Heading\n\nBody  text.\n");
    }

    #[test]
    fn front_matter_tags_may_be_a_comma_separated_string_and_blanks_become_none() {
        let doc = md("---\ntags: 'a, b,,c '\ndepartment: '  '\nlabel:\n---\ntext").unwrap();
        assert_eq!(doc.front_matter.tags, vec!["a", "b", "c"]);
        assert_eq!(doc.front_matter.department, None);
        assert_eq!(doc.front_matter.label, None);
        let empty = md("---\n---\ntext").unwrap();
        assert_eq!(empty.front_matter, FrontMatter::default());
    }

    #[test]
    fn markdown_title_falls_back_to_first_h1_then_file_stem() {
        let doc = md("```\n# not a title\n```\n## Sub\n# Real Title #\ntext").unwrap();
        assert_eq!(doc.title, "Real Title");
        let doc = md("## Only a subheading\ntext").unwrap();
        assert_eq!(doc.title, "Team Handbook");
    }

    #[test]
    fn bom_and_crlf_are_normalised() {
        let doc = parse_with_defaults("a.md", b"\xEF\xBB\xBF# T\r\n\r\nline\r\n").unwrap();
        assert_eq!(doc.body, "# T\n\nline\n");
        assert_eq!(doc.title, "T");
    }

    #[test]
    fn yaml_errors_are_bad_front_matter_with_the_file_line() {
        let err = md("---\ntitle: ok\ntags: [unclosed\n---\ntext").unwrap_err();
        assert_eq!(err.code(), "bad_front_matter");
        let ParseError::BadFrontMatter { line, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(matches!(line, Some(3..=5)), "line {line:?}");
        assert!(err.to_string().contains("fix the YAML"), "{err}");
    }

    #[test]
    fn invalid_dates_and_shapes_are_bad_front_matter() {
        let err = md("---\ntitle: x\ndate: 31/03/2024\n---\ntext").unwrap_err();
        assert_eq!(err.code(), "bad_front_matter");
        assert!(err.to_string().contains("at line 3"), "{err}");
        assert!(err.to_string().contains("YYYY-MM-DD"), "{err}");
        assert_eq!(
            code_of(md("---\ndate: 2024-02-30\n---\ntext")),
            "bad_front_matter"
        );
        assert_eq!(
            code_of(md("---\ndate: 2024-3-1\n---\ntext")),
            "bad_front_matter"
        );
        assert_eq!(
            code_of(md("---\ntitle: [a, b]\n---\ntext")),
            "bad_front_matter"
        );
        assert_eq!(code_of(md("---\n- a\n- b\n---\ntext")), "bad_front_matter");
        assert_eq!(
            code_of(md("---\ntitle: never closed\n\ntext")),
            "bad_front_matter"
        );
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
    fn html_becomes_markdown_like_text() {
        let source = r#"<!doctype html><html><head><title> Onboarding
            guide </title><style>p { color: red }</style></head>
            <body><nav><a href="/">Home</a></nav>
            <h1>Welcome</h1><p>First   <b>bold</b> paragraph.</p><p>Second<br>line</p>
            <script>alert("x")</script>
            <h2>Steps</h2><ul><li>One</li><li>Two<ul><li>Nested</li></ul></li></ul>
            <table><tr><th>Name</th><th>Role</th></tr><tr><td>Ann</td><td>Lead</td></tr></table>
            <pre>let x = 1;
# not a heading</pre><p>#hashtag line</p></body></html>"#;
        let doc = parse_with_defaults("guide.html", source.as_bytes()).unwrap();
        assert_eq!(doc.title, "Onboarding guide");
        let expected = "# Welcome\n\nFirst bold paragraph.\n\nSecond\nline\n\n## Steps\n\n- One\n- Two\n  - Nested\n\nName | Role\nAnn | Lead\n\n```\nlet x = 1;\n# not a heading\n```\n\n\\#hashtag line";
        assert_eq!(doc.body, expected);
    }

    #[test]
    fn html_title_falls_back_to_h1_then_stem() {
        let doc = parse_with_defaults("a.htm", b"<h1>Big <i>Title</i></h1><p>x</p>").unwrap();
        assert_eq!(doc.title, "Big Title");
        let doc = parse_with_defaults("plain.html", b"<p>x</p>").unwrap();
        assert_eq!(doc.title, "plain");
    }

    #[test]
    fn html_nested_within_the_limit_parses() {
        let source = format!(
            "{}deep{}",
            "<div>".repeat(MAX_HTML_DEPTH),
            "</div>".repeat(MAX_HTML_DEPTH)
        );
        let doc = parse_with_defaults("deep.html", source.as_bytes()).unwrap();
        assert_eq!(doc.body, "deep");
    }

    #[test]
    fn deeply_nested_html_is_too_large() {
        let depth = MAX_HTML_DEPTH + 1;
        let source = format!("{}deep{}", "<div>".repeat(depth), "</div>".repeat(depth));
        let err = parse_with_defaults("deep.html", source.as_bytes()).unwrap_err();
        assert_eq!(err.code(), "too_large");
        assert!(err.to_string().contains("more than 512 deep"), "{err}");
    }

    #[test]
    fn nesting_depth_ignores_void_optional_raw_and_comment_tags() {
        let source = "<!doctype html><html><body><div><p>a<p>b<br><img src=x><ul><li>1<li>2</ul>\
            <script>if (a < b) { x = '<div><div><div>'; }</script><!-- <div><div> --></div>";
        assert_eq!(html_nesting_depth(source), 2);
        assert_eq!(html_nesting_depth("<DIV><Div><div></div></DIV></div>"), 3);
        assert_eq!(html_nesting_depth("<div/><div/><div/>"), 3);
        assert_eq!(
            html_nesting_depth("<svg><path/><path/><g><path/></g></svg><p>"),
            2
        );
    }

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

    // --- PDFs built in memory -------------------------------------------------------------

    /// A PDF with one page per entry; each page's content stream is stored as given.
    fn pdf_with_pages(contents: Vec<Stream>, title: Option<&str>) -> Vec<u8> {
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let font_id = doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "Encoding" => "WinAnsiEncoding",
        });
        let resources_id =
            doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font_id } });
        let kids: Vec<Object> = contents
            .into_iter()
            .map(|stream| {
                let content_id = doc.add_object(stream);
                doc.add_object(dictionary! { "Type" => "Page", "Parent" => pages_id, "Contents" => content_id })
                    .into()
            })
            .collect();
        let count = kids.len() as i64;
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages", "Kids" => kids, "Count" => count, "Resources" => resources_id,
                "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
            }),
        );
        let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        doc.trailer.set("Root", catalog_id);
        if let Some(title) = title {
            let info_id = doc.add_object(dictionary! { "Title" => Object::string_literal(title) });
            doc.trailer.set("Info", info_id);
        }
        let mut bytes = Vec::new();
        doc.save_to(&mut bytes).expect("an in-memory PDF saves");
        bytes
    }

    fn text_page(lines: &[(f32, &str)]) -> Stream {
        let mut ops = vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 12.into()]),
            Operation::new("Td", vec![72.into(), 760.into()]),
        ];
        for (drop, text) in lines {
            ops.push(Operation::new("Td", vec![0.into(), Object::Real(-drop)]));
            ops.push(Operation::new("Tj", vec![Object::string_literal(*text)]));
        }
        ops.push(Operation::new("ET", vec![]));
        let content = Content { operations: ops }
            .encode()
            .expect("content encodes");
        let mut stream = Stream::new(dictionary! {}, content);
        stream.compress().expect("content compresses");
        stream
    }

    fn flate_of_zeros(size: usize) -> Vec<u8> {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
        let zeros = vec![0u8; 64 * 1024];
        let mut left = size;
        while left > 0 {
            let n = left.min(zeros.len());
            encoder.write_all(&zeros[..n]).unwrap();
            left -= n;
        }
        encoder.finish().unwrap()
    }

    /// Limits with a 1 MiB inflation budget, so that bomb tests stay fast.
    fn one_mib_budget() -> Limits {
        Limits {
            max_decompressed_bytes: MIB,
            ..Limits::default()
        }
    }

    fn assert_rejected_as_bomb(pdf: &[u8]) {
        let err = parse("bomb.pdf", pdf, &one_mib_budget()).unwrap_err();
        assert_eq!(err.code(), "decompression_bomb", "{err}");
    }

    /// `pdf` with one more stream object, `header` being its dictionary up to `/Length`,
    /// spliced in before the xref table (which then no longer lists every object, as in
    /// many damaged files lopdf still reads).
    fn with_stream_object(mut pdf: Vec<u8>, header: &str, data: &[u8]) -> Vec<u8> {
        let at = rfind(&pdf, b"xref").expect("the PDF has an xref table");
        let mut object = format!("{header} /Length {} >>\nstream\n", data.len()).into_bytes();
        object.extend_from_slice(data);
        object.extend_from_slice(b"\nendstream\nendobj\n");
        pdf.splice(at..at, object);
        pdf
    }

    fn flate_stream(data: Vec<u8>) -> Stream {
        Stream::new(dictionary! { "Filter" => "FlateDecode" }, data)
    }

    #[test]
    fn pdf_text_is_extracted_with_lines_paragraphs_and_pages() {
        let page1 = text_page(&[
            (0.0, "Quarterly report"),
            (30.0, "Revenue grew"),
            (14.0, "by ten percent."),
            (30.0, "Costs fell."),
        ]);
        let page2 = text_page(&[(0.0, "Second page.")]);
        let bytes = pdf_with_pages(vec![page1, page2], Some("Q3 Report"));
        let doc = parse_with_defaults("q3.pdf", &bytes).unwrap();
        assert_eq!(doc.format, Format::Pdf);
        assert_eq!(doc.title, "Q3 Report");
        assert_eq!(
            doc.body,
            "Quarterly report\n\nRevenue grew\nby ten percent.\n\nCosts fell.\n\nSecond page."
        );
    }

    fn numbers(values: &[i64]) -> Vec<Object> {
        values.iter().map(|&value| Object::Integer(value)).collect()
    }

    fn ops_stream(operations: Vec<Operation>) -> Stream {
        form_stream(dictionary! {}, operations)
    }

    fn form_stream(dict: lopdf::Dictionary, operations: Vec<Operation>) -> Stream {
        let content = Content { operations }.encode().expect("content encodes");
        Stream::new(dict, content)
    }

    #[test]
    fn pdf_flipped_text_matrices_still_read_top_down() {
        let stream = ops_stream(vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 12.into()]),
            Operation::new("Tm", numbers(&[1, 0, 0, -1, 72, 100])),
            Operation::new("Tj", vec![Object::string_literal("Line one")]),
            Operation::new("Td", vec![0.into(), (-14).into()]),
            Operation::new("Tj", vec![Object::string_literal("line two")]),
            Operation::new("Td", vec![0.into(), (-30).into()]),
            Operation::new("Tj", vec![Object::string_literal("Next paragraph")]),
            Operation::new("ET", vec![]),
        ]);
        let doc = parse_with_defaults("a.pdf", &pdf_with_pages(vec![stream], None)).unwrap();
        assert_eq!(doc.body, "Line one\nline two\n\nNext paragraph");
    }

    #[test]
    fn pdf_text_inside_form_xobjects_is_extracted() {
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let font_id = doc.add_object(
            dictionary! { "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica" },
        );
        let bbox = || vec![0.into(), 0.into(), 595.into(), 842.into()];
        let inner = form_stream(
            dictionary! {
                "Type" => "XObject", "Subtype" => "Form", "BBox" => bbox(),
                "Resources" => dictionary! { "Font" => dictionary! { "F9" => font_id } },
            },
            vec![
                Operation::new("BT", vec![]),
                Operation::new("Tf", vec!["F9".into(), 12.into()]),
                Operation::new("Td", vec![72.into(), 700.into()]),
                Operation::new("Tj", vec![Object::string_literal("Drawn by a form")]),
                Operation::new("ET", vec![]),
            ],
        );
        let inner_id = doc.add_object(inner);
        let outer = form_stream(
            dictionary! {
                "Type" => "XObject", "Subtype" => "Form", "BBox" => bbox(),
                "Resources" => dictionary! { "XObject" => dictionary! { "Inner" => inner_id } },
            },
            vec![Operation::new("Do", vec!["Inner".into()])],
        );
        let outer_id = doc.add_object(outer);
        let content_id = doc.add_object(ops_stream(vec![
            Operation::new("q", vec![]),
            Operation::new("Do", vec!["Fm1".into()]),
            Operation::new("Do", vec!["Fm1".into()]),
            Operation::new("Q", vec![]),
        ]));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages_id, "Contents" => content_id,
            "Resources" => dictionary! { "XObject" => dictionary! { "Fm1" => outer_id } },
        });
        doc.objects.insert(
            pages_id,
            Object::Dictionary(
                dictionary! { "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1 },
            ),
        );
        let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        doc.trailer.set("Root", catalog_id);
        let mut bytes = Vec::new();
        doc.save_to(&mut bytes).unwrap();
        let parsed = parse_with_defaults("forms.pdf", &bytes).unwrap();
        assert_eq!(parsed.body, "Drawn by a form");
    }

    #[test]
    fn pdf_ligatures_are_spelled_out() {
        assert_eq!(expand_ligatures("\u{FB01}le o\u{FB04}ine"), "file offline");
    }

    #[test]
    fn pdf_title_falls_back_to_file_stem_and_tj_gaps_become_spaces() {
        let ops = vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 12.into()]),
            Operation::new("Tm", numbers(&[1, 0, 0, 1, 72, 700])),
            Operation::new(
                "TJ",
                vec![Object::Array(vec![
                    Object::string_literal("Ke"),
                    Object::Integer(-20),
                    Object::string_literal("rned"),
                    Object::Integer(-300),
                    Object::string_literal("words"),
                ])],
            ),
            Operation::new("ET", vec![]),
        ];
        let stream = Stream::new(
            dictionary! {},
            Content { operations: ops }.encode().unwrap(),
        );
        let doc =
            parse_with_defaults("dir/scan-01.pdf", &pdf_with_pages(vec![stream], None)).unwrap();
        assert_eq!(doc.title, "scan-01");
        assert_eq!(doc.body, "Kerned words");
    }

    #[test]
    fn pdf_without_text_is_empty() {
        let stream = Stream::new(dictionary! {}, b"0 0 100 100 re f".to_vec());
        let err = parse_with_defaults("a.pdf", &pdf_with_pages(vec![stream], None)).unwrap_err();
        assert_eq!(err.code(), "empty");
        assert!(err.to_string().contains("OCR"), "{err}");
    }

    #[test]
    fn truncated_and_garbage_pdfs_are_malformed() {
        let bytes = pdf_with_pages(vec![text_page(&[(0.0, "Hello")])], None);
        let truncated = &bytes[..bytes.len() / 3];
        let err = parse_with_defaults("a.pdf", truncated).unwrap_err();
        assert_eq!(err.code(), "malformed_pdf", "{err}");
        let err = parse_with_defaults("a.pdf", b"this is not a pdf").unwrap_err();
        assert_eq!(err.code(), "malformed_pdf");
        assert!(err.to_string().contains("%PDF"), "{err}");
    }

    #[test]
    fn encrypted_pdfs_are_rejected() {
        let mut bytes = pdf_with_pages(vec![text_page(&[(0.0, "Secret")])], None);
        let at = rfind(&bytes, b"/Root").expect("the trailer names its root");
        bytes.splice(at..at, b"/Encrypt 99 0 R ".iter().copied());
        let err = parse_with_defaults("a.pdf", &bytes).unwrap_err();
        assert_eq!(err.code(), "encrypted_pdf");
    }

    #[test]
    fn pdfs_over_the_page_limit_are_too_large() {
        let pages = (0..3).map(|_| text_page(&[(0.0, "Page")])).collect();
        let limits = Limits {
            max_pdf_pages: 2,
            ..Limits::default()
        };
        let err = parse("a.pdf", &pdf_with_pages(pages, None), &limits).unwrap_err();
        assert_eq!(err.code(), "too_large");
        assert!(err.to_string().contains("3 pages"), "{err}");
    }

    #[test]
    fn a_content_stream_bomb_is_rejected() {
        let bytes = pdf_with_pages(vec![flate_stream(flate_of_zeros(8 * MIB))], None);
        assert!(
            bytes.len() < 64 * 1024,
            "the bomb itself is small: {}",
            bytes.len()
        );
        let err = parse("bomb.pdf", &bytes, &one_mib_budget()).unwrap_err();
        assert_eq!(err.code(), "decompression_bomb");
        assert!(err.to_string().contains("1.0 MiB"), "{err}");
    }

    #[test]
    fn many_small_streams_count_against_one_budget() {
        let pages = (0..6)
            .map(|_| flate_stream(flate_of_zeros(300 * 1024)))
            .collect();
        let bytes = pdf_with_pages(pages, None);
        assert_rejected_as_bomb(&bytes);
    }

    #[test]
    fn nested_flate_layers_are_measured() {
        let inner = flate_of_zeros(8 * MIB);
        let mut outer = ZlibEncoder::new(Vec::new(), Compression::best());
        outer.write_all(&inner).unwrap();
        let stream = Stream::new(
            dictionary! { "Filter" => vec![Object::from("FlateDecode"), Object::from("FlateDecode")] },
            outer.finish().unwrap(),
        );
        let bytes = pdf_with_pages(vec![stream], None);
        assert_rejected_as_bomb(&bytes);
    }

    #[test]
    fn an_object_stream_bomb_is_rejected() {
        // lopdf inflates object streams while loading, before any page is read.
        let pdf = pdf_with_pages(vec![text_page(&[(0.0, "Hi")])], None);
        let header = "90 0 obj\n<< /Type /ObjStm /N 1 /First 5 /Filter /FlateDecode";
        let bytes = with_stream_object(pdf, header, &flate_of_zeros(8 * MIB));
        assert_rejected_as_bomb(&bytes);
    }

    #[test]
    fn images_do_not_count_against_the_budget() {
        let pdf = pdf_with_pages(vec![text_page(&[(0.0, "Diagram below")])], None);
        let header = "91 0 obj\n<< /Type /XObject /Subtype /Image /Width 1024 /Height 2048 \
                      /BitsPerComponent 8 /ColorSpace /DeviceGray /Filter /FlateDecode";
        let bytes = with_stream_object(pdf, header, &flate_of_zeros(2 * MIB));
        let doc = parse("figure.pdf", &bytes, &one_mib_budget()).unwrap();
        assert_eq!(doc.body, "Diagram below");
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
