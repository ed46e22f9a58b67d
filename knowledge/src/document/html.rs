//! HTML to Markdown-ish text: the nesting-depth check that runs before html5ever, a tree walk
//! without recursion, and the writer that turns elements into headings, lists and tables.

use scraper::{ElementRef, Html, Node, Selector};

use super::body::{BodyWriter, Break};
use super::{find, non_empty};

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
pub(super) const MAX_HTML_DEPTH: usize = 512;

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
pub(super) fn html_nesting_depth(source: &str) -> usize {
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
pub(super) fn html_to_markdown(source: &str) -> (Option<String>, String) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::test_support::parse_with_defaults;

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
}
