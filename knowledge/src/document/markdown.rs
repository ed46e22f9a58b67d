//! Markdown structure read line by line: ATX headings and fenced code blocks. The chunker cuts
//! sections at the same headings, so it uses [`atx_heading`] and [`Fences`] too.

/// The text of the first `# ` heading outside fenced code.
pub(super) fn first_h1(body: &str) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use crate::document::test_support::md;

    #[test]
    fn markdown_title_falls_back_to_first_h1_then_file_stem() {
        let doc = md("```\n# not a title\n```\n## Sub\n# Real Title #\ntext").unwrap();
        assert_eq!(doc.title, "Real Title");
        let doc = md("## Only a subheading\ntext").unwrap();
        assert_eq!(doc.title, "Team Handbook");
    }
}
