//! The body writer the HTML and PDF converters share: inline text and line or paragraph breaks
//! in, Markdown-ish text out, with whitespace collapsed and heading-like lines escaped.

/// The separator owed before the next line written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Break {
    Line,
    Paragraph,
}

/// Builds a body from inline text and line/paragraph breaks, collapsing whitespace and
/// escaping lines that would otherwise read as Markdown headings or fences.
#[derive(Debug, Default)]
pub(super) struct BodyWriter {
    out: String,
    pub(super) line: String,
    /// Markup for the current line (`## `, `- `), written only if the line gets text.
    pub(super) prefix: String,
    pending: Option<Break>,
}

impl BodyWriter {
    pub(super) fn text(&mut self, text: &str) {
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

    pub(super) fn ends_with_space(&self) -> bool {
        self.line.is_empty() || self.line.ends_with(' ')
    }

    /// Ends the current line (if it has text) and owes at least `kind` before the next one.
    pub(super) fn brk(&mut self, kind: Break) {
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
    pub(super) fn raw_paragraph(&mut self, text: &str) {
        self.brk(Break::Paragraph);
        if !self.out.is_empty() {
            self.out.push_str("\n\n");
        }
        self.out.push_str(text);
        self.pending = Some(Break::Paragraph);
    }

    pub(super) fn finish(mut self) -> String {
        self.brk(Break::Paragraph);
        self.out
    }
}
