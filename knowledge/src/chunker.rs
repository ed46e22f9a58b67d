//! Cutting a [`ParsedDocument`]'s body into chunks for embedding and quoting.
//!
//! A chunk is one contiguous, trimmed byte range of the body, so its text is always a verbatim
//! substring of the document and a quote taken from it can be found again. Chunks follow the
//! document's structure: they never straddle an ATX heading (`#` … `######` at line start, not
//! inside fenced code), whose texts become the chunk's `heading_path`; they pack whole
//! paragraphs up to `max_tokens`; and only an oversized paragraph is split — at sentence ends
//! and line breaks, then between words, then after punctuation inside a word. Each chunk after
//! the first in a section starts up to `overlap_tokens` earlier, at a sentence or paragraph
//! boundary, repeating the end of the previous chunk.

use std::ops::Range;

use crate::document::{atx_heading, Fences, ParsedDocument};

/// Counts tokens the way the embedding model will, or an estimate of it.
pub trait TokenCounter: Send + Sync {
    /// The number of tokens in `text`.
    fn count(&self, text: &str) -> usize;
}

/// An estimate of BERT WordPiece tokens that needs no vocabulary: each punctuation (any
/// non-alphanumeric, non-whitespace) character is one token; each alphanumeric word is one
/// token plus one per 6 characters (or part of 6) beyond its first 6; and each CJK ideograph
/// is one token on its own, as BERT's tokenizer splits them. Counts add up across whitespace,
/// so the count of a text is the sum of the counts of its words.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApproxTokens;

impl TokenCounter for ApproxTokens {
    fn count(&self, text: &str) -> usize {
        let word_tokens = |chars: usize| {
            if chars == 0 {
                0
            } else {
                1 + chars.saturating_sub(6).div_ceil(6)
            }
        };
        let mut tokens = 0;
        let mut word = 0;
        for ch in text.chars() {
            if ch.is_alphanumeric() && !is_cjk(ch) {
                word += 1;
                continue;
            }
            tokens += word_tokens(word);
            word = 0;
            if !ch.is_whitespace() {
                tokens += 1;
            }
        }
        tokens + word_tokens(word)
    }
}

/// CJK ideographs, the ranges BERT's tokenizer treats as one token each.
fn is_cjk(ch: char) -> bool {
    matches!(ch as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2CEAF
        | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

/// How big chunks are and how much consecutive chunks overlap, in tokens.
#[derive(Debug, Clone)]
pub struct ChunkOptions {
    /// Largest chunk; only a single unsplittable word may exceed it.
    pub max_tokens: usize,
    /// Most tokens a chunk repeats from the end of the previous chunk of its section.
    pub overlap_tokens: usize,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            max_tokens: 200,
            overlap_tokens: 30,
        }
    }
}

/// One piece of a document: `text == body[start..end]`, trimmed and never empty.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Chunk {
    /// Position in the document, counting from 0.
    pub ord: usize,
    /// Texts of the enclosing headings, outermost first.
    pub heading_path: Vec<String>,
    /// The chunk's text, a verbatim substring of the body.
    pub text: String,
    /// Byte offset of `text` in the body.
    pub start: usize,
    /// Byte offset just past `text` in the body.
    pub end: usize,
    /// Tokens in `text` by the counter used for chunking.
    pub tokens: usize,
}

impl Chunk {
    /// The text to embed: `title › h1 › h2`, a blank line, then the chunk text, so the vector
    /// carries where in which document the text stands.
    pub fn embed_text(&self, title: &str) -> String {
        let path: Vec<&str> = std::iter::once(title.trim())
            .chain(self.heading_path.iter().map(|heading| heading.as_str()))
            .filter(|part| !part.is_empty())
            .collect();
        if path.is_empty() {
            self.text.clone()
        } else {
            format!("{}\n\n{}", path.join(" › "), self.text)
        }
    }
}

/// Cuts `doc.body` into chunks in document order.
pub fn chunk(doc: &ParsedDocument, opts: &ChunkOptions, counter: &dyn TokenCounter) -> Vec<Chunk> {
    let body = doc.body.as_str();
    let mut chunks = Vec::new();
    for section in sections(body) {
        let splitter = Splitter {
            body,
            max_tokens: opts.max_tokens,
            counter,
        };
        let mut pieces = Vec::new();
        for paragraph in paragraphs(body, section.range) {
            splitter.push(
                &mut pieces,
                paragraph,
                Boundary::Paragraph,
                Level::Paragraph,
            );
        }
        Packer {
            body,
            pieces: &pieces,
            opts,
            counter,
        }
        .pack(&section.heading_path, &mut chunks);
    }
    chunks
}

/// The text between two headings, with the path of headings it stands under.
struct Section {
    heading_path: Vec<String>,
    range: Range<usize>,
}

fn sections(body: &str) -> Vec<Section> {
    let mut sections = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut fences = Fences::default();
    let path = |stack: &[(usize, String)]| -> Vec<String> {
        stack
            .iter()
            .map(|(_, text)| text.clone())
            .filter(|text| !text.is_empty())
            .collect()
    };
    let (mut start, mut pos) = (0, 0);
    for line in body.split_inclusive('\n') {
        let heading = if fences.is_code(line) {
            None
        } else {
            atx_heading(line)
        };
        if let Some((level, text)) = heading {
            sections.push(Section {
                heading_path: path(&stack),
                range: start..pos,
            });
            stack.retain(|(outer, _)| *outer < level);
            stack.push((level, text.to_string()));
            start = pos + line.len();
        }
        pos += line.len();
    }
    sections.push(Section {
        heading_path: path(&stack),
        range: start..body.len(),
    });
    sections
}

/// Blank-line separated paragraphs of a section, trimmed; a fenced code block with blank
/// lines inside stays one paragraph.
fn paragraphs(body: &str, range: Range<usize>) -> Vec<Range<usize>> {
    let mut paragraphs = Vec::new();
    let mut fences = Fences::default();
    let mut open: Option<usize> = None;
    let mut pos = range.start;
    for line in body[range.clone()].split_inclusive('\n') {
        let in_code = fences.is_code(line);
        if line.trim().is_empty() && !in_code {
            if let Some(start) = open.take() {
                paragraphs.extend(trimmed(body, start..pos));
            }
        } else if open.is_none() {
            open = Some(pos);
        }
        pos += line.len();
    }
    if let Some(start) = open {
        paragraphs.extend(trimmed(body, start..range.end));
    }
    paragraphs
}

/// `range` without leading and trailing whitespace, or `None` if nothing else is left.
fn trimmed(body: &str, range: Range<usize>) -> Option<Range<usize>> {
    let text = &body[range.clone()];
    let start = range.start + (text.len() - text.trim_start().len());
    let end = range.end - (text.len() - text.trim_end().len());
    (start < end).then_some(start..end)
}

/// What kind of boundary precedes a piece; overlap may only start at the first two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Boundary {
    Paragraph,
    Sentence,
    Word,
}

/// How far a range has been split so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Paragraph,
    Sentence,
    Word,
    Unsplittable,
}

/// The smallest unit packed into chunks: a paragraph, or a part of an oversized one.
#[derive(Debug, Clone)]
struct Piece {
    range: Range<usize>,
    tokens: usize,
    boundary: Boundary,
}

struct Splitter<'a> {
    body: &'a str,
    max_tokens: usize,
    counter: &'a dyn TokenCounter,
}

impl Splitter<'_> {
    /// Pushes `range` as one piece if it fits, else its parts at the next finer level.
    fn push(&self, pieces: &mut Vec<Piece>, range: Range<usize>, boundary: Boundary, level: Level) {
        let tokens = self.counter.count(&self.body[range.clone()]);
        if tokens <= self.max_tokens || level == Level::Unsplittable {
            pieces.push(Piece {
                range,
                tokens,
                boundary,
            });
            return;
        }
        let (parts, inner, next) = match level {
            Level::Paragraph => (
                sentences(self.body, range.clone()),
                Boundary::Sentence,
                Level::Sentence,
            ),
            Level::Sentence => (words(self.body, range.clone()), Boundary::Word, Level::Word),
            Level::Word | Level::Unsplittable => (
                word_parts(self.body, range.clone()),
                Boundary::Word,
                Level::Unsplittable,
            ),
        };
        if parts.len() <= 1 {
            self.push(pieces, range, boundary, next);
            return;
        }
        for (index, part) in parts.into_iter().enumerate() {
            self.push(
                pieces,
                part,
                if index == 0 { boundary } else { inner },
                next,
            );
        }
    }
}

/// Sentences of `range`: cut after `.`, `!` or `?` (and any closing quotes or brackets) that
/// are followed by whitespace, after CJK full stops, and at every line break, since lines of
/// lists, tables and code are units too.
fn sentences(body: &str, range: Range<usize>) -> Vec<Range<usize>> {
    let text = &body[range.clone()];
    let mut cuts = Vec::new();
    for (index, ch) in text.char_indices() {
        let after = index + ch.len_utf8();
        match ch {
            '\n' => cuts.push(after),
            '。' | '！' | '？' => cuts.push(after),
            '.' | '!' | '?' => {
                let rest = &text[after..];
                let unclosed = rest.trim_start_matches(['"', '\'', ')', ']', '”', '’', '»']);
                if unclosed.starts_with(char::is_whitespace) {
                    cuts.push(after + rest.len() - unclosed.len());
                }
            }
            _ => {}
        }
    }
    split_at(body, range, cuts)
}

/// Runs of non-whitespace.
fn words(body: &str, range: Range<usize>) -> Vec<Range<usize>> {
    let text = &body[range.clone()];
    let cuts = text
        .char_indices()
        .filter(|(_, ch)| ch.is_whitespace())
        .map(|(index, _)| index);
    split_at(body, range, cuts.collect())
}

/// A word cut after each punctuation character or CJK ideograph (a long URL, a table row
/// without spaces); runs of letters and digits stay whole.
fn word_parts(body: &str, range: Range<usize>) -> Vec<Range<usize>> {
    let text = &body[range.clone()];
    let cuts = text
        .char_indices()
        .filter(|&(_, ch)| !ch.is_alphanumeric() || is_cjk(ch))
        .map(|(index, ch)| index + ch.len_utf8());
    split_at(body, range, cuts.collect())
}

/// Cuts `range` at the given offsets (relative to its start), keeping the trimmed, non-empty
/// parts.
fn split_at(body: &str, range: Range<usize>, cuts: Vec<usize>) -> Vec<Range<usize>> {
    let mut parts = Vec::new();
    let mut start = range.start;
    for cut in cuts
        .into_iter()
        .map(|cut| range.start + cut)
        .chain([range.end])
    {
        parts.extend(trimmed(body, start..cut));
        start = cut;
    }
    parts
}

/// Packs a section's pieces greedily into chunks, with overlap.
struct Packer<'a> {
    body: &'a str,
    pieces: &'a [Piece],
    opts: &'a ChunkOptions,
    counter: &'a dyn TokenCounter,
}

impl Packer<'_> {
    fn pack(&self, heading_path: &[String], chunks: &mut Vec<Chunk>) {
        let max = self.opts.max_tokens;
        // `next` is the first piece no chunk holds yet; every chunk takes at least that one.
        let mut next = 0;
        let mut previous_start = None;
        while next < self.pieces.len() {
            let mut start =
                previous_start.map_or(next, |previous| self.overlap_start(previous, next));
            let mut end = next + 1;
            while start < next && self.estimate(start..end) > max {
                start = self.boundary_from(start + 1, next);
            }
            let mut tokens = self.estimate(start..end);
            while end < self.pieces.len() && tokens + self.pieces[end].tokens <= max {
                tokens += self.pieces[end].tokens;
                end += 1;
            }
            // Estimates add piece counts; a counter that does not add up across whitespace
            // is checked on the real text and the chunk shrunk until it fits.
            let mut tokens = self.count(start..end);
            while tokens > max && (end > next + 1 || start < next) {
                if end > next + 1 {
                    end -= 1;
                } else {
                    start = self.boundary_from(start + 1, next);
                }
                tokens = self.count(start..end);
            }
            let range = self.text_range(start..end);
            chunks.push(Chunk {
                ord: chunks.len(),
                heading_path: heading_path.to_vec(),
                text: self.body[range.clone()].to_string(),
                start: range.start,
                end: range.end,
                tokens,
            });
            previous_start = Some(start);
            next = end;
        }
    }

    /// The earliest sentence or paragraph boundary after the previous chunk's start from
    /// which the pieces up to `next` fit in the overlap budget; `next` if there is none.
    fn overlap_start(&self, previous_start: usize, next: usize) -> usize {
        let mut best = next;
        let mut tokens = 0;
        for index in (previous_start + 1..next).rev() {
            tokens += self.pieces[index].tokens;
            if tokens > self.opts.overlap_tokens {
                break;
            }
            if self.pieces[index].boundary != Boundary::Word {
                best = index;
            }
        }
        best
    }

    /// The first piece at or after `from` that starts at a sentence or paragraph boundary,
    /// or `next` if none does before it.
    fn boundary_from(&self, from: usize, next: usize) -> usize {
        (from..next)
            .find(|&index| self.pieces[index].boundary != Boundary::Word)
            .unwrap_or(next)
    }

    fn estimate(&self, pieces: Range<usize>) -> usize {
        self.pieces[pieces].iter().map(|piece| piece.tokens).sum()
    }

    fn count(&self, pieces: Range<usize>) -> usize {
        self.counter.count(&self.body[self.text_range(pieces)])
    }

    fn text_range(&self, pieces: Range<usize>) -> Range<usize> {
        self.pieces[pieces.start].range.start..self.pieces[pieces.end - 1].range.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{Format, FrontMatter};
    use proptest::prelude::*;

    fn doc(body: &str) -> ParsedDocument {
        ParsedDocument {
            format: Format::Markdown,
            front_matter: FrontMatter::default(),
            title: "Doc".to_string(),
            body: body.to_string(),
        }
    }

    fn chunks_of(body: &str, max_tokens: usize, overlap_tokens: usize) -> Vec<Chunk> {
        let opts = ChunkOptions {
            max_tokens,
            overlap_tokens,
        };
        chunk(&doc(body), &opts, &ApproxTokens)
    }

    fn numbered_sentences(count: usize) -> String {
        (0..count)
            .map(|i| format!("Sentence number {i} talks about budgets."))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn approx_tokens_counts_punctuation_words_and_cjk() {
        assert_eq!(ApproxTokens.count(""), 0);
        assert_eq!(ApproxTokens.count("Hello, world!"), 4);
        assert_eq!(ApproxTokens.count("abcdef"), 1);
        assert_eq!(ApproxTokens.count("abcdefg"), 2);
        assert_eq!(ApproxTokens.count("internationalization"), 4);
        assert_eq!(ApproxTokens.count("中文 ok"), 3);
        assert_eq!(ApproxTokens.count("a.b"), 3);
    }

    #[test]
    fn headings_split_sections_and_build_paths() {
        let body = "Intro text.\n\n# Alpha\n\nAlpha text.\n\n## Beta\nBeta text.\n\n### Gamma\n\n#### \n\nDeep text.\n\n# Delta #\n\nDelta text.";
        let chunks = chunks_of(body, 200, 30);
        let seen: Vec<(Vec<&str>, &str)> = chunks
            .iter()
            .map(|c| {
                (
                    c.heading_path.iter().map(String::as_str).collect(),
                    c.text.as_str(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                (vec![], "Intro text."),
                (vec!["Alpha"], "Alpha text."),
                (vec!["Alpha", "Beta"], "Beta text."),
                (vec!["Alpha", "Beta", "Gamma"], "Deep text."),
                (vec!["Delta"], "Delta text."),
            ]
        );
        assert_eq!(
            chunks.iter().map(|c| c.ord).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
    }

    #[test]
    fn a_section_with_only_a_heading_yields_no_chunk() {
        let chunks = chunks_of("# Empty\n\n\n# Full\n\ntext", 200, 30);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].heading_path, vec!["Full"]);
        assert!(chunks_of("# Only a heading\n", 200, 30).is_empty());
        assert!(chunks_of("", 200, 30).is_empty());
    }

    #[test]
    fn whole_paragraphs_are_packed_together() {
        let body = "First paragraph.\n\nSecond paragraph.\n\nThird paragraph.";
        let chunks = chunks_of(body, 200, 30);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].text, body);
        assert_eq!(chunks[0].tokens, ApproxTokens.count(body));
    }

    #[test]
    fn max_tokens_is_respected_and_long_paragraphs_split_at_sentence_ends() {
        let body = numbered_sentences(40);
        let chunks = chunks_of(&body, 30, 0);
        assert!(chunks.len() > 5);
        for chunk in &chunks {
            assert!(chunk.tokens <= 30, "{chunk:?}");
            assert!(
                chunk.text.starts_with("Sentence") && chunk.text.ends_with('.'),
                "{chunk:?}"
            );
        }
    }

    #[test]
    fn an_oversized_sentence_splits_between_words() {
        let body = (0..50)
            .map(|i| format!("word{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let chunks = chunks_of(&body, 10, 0);
        assert!(chunks.len() >= 5);
        assert!(chunks.iter().all(|c| c.tokens <= 10));
        assert!(chunks.iter().all(|c| c.text.starts_with("word")));
    }

    #[test]
    fn only_an_unsplittable_word_may_exceed_max_tokens() {
        let long = "a".repeat(120);
        let body = format!("short words here {long} and more");
        let chunks = chunks_of(&body, 5, 0);
        let over: Vec<&Chunk> = chunks.iter().filter(|c| c.tokens > 5).collect();
        assert_eq!(over.len(), 1);
        assert_eq!(over[0].text, long);
        let url = "https://example.com/a/very/long/path/with/many/segments?and=query&more=params";
        let chunks = chunks_of(url, 8, 0);
        assert!(chunks.len() > 1);
        assert!(chunks.iter().all(|c| c.tokens <= 8), "{chunks:?}");
    }

    #[test]
    fn chunk_text_is_the_verbatim_body_range() {
        let body = "  # Title\n\nSome  text,\twith odd   spacing.\r\n\n- item one\n- item two\n\n| a | b |\n|---|---|\n";
        for chunk in chunks_of(body, 6, 3) {
            assert_eq!(chunk.text, &body[chunk.start..chunk.end]);
            assert_eq!(chunk.text, chunk.text.trim());
            assert!(!chunk.text.is_empty());
        }
    }

    #[test]
    fn consecutive_chunks_overlap_at_a_sentence_boundary() {
        let body = numbered_sentences(30);
        let chunks = chunks_of(&body, 40, 12);
        assert!(chunks.len() > 3);
        for pair in chunks.windows(2) {
            let (previous, current) = (&pair[0], &pair[1]);
            assert!(
                current.start < previous.end,
                "no overlap: {previous:?} {current:?}"
            );
            assert!(current.start > previous.start);
            assert!(current.text.starts_with("Sentence"), "{current:?}");
            let repeated = &body[current.start..previous.end];
            assert!(ApproxTokens.count(repeated) <= 12, "{repeated}");
        }
    }

    #[test]
    fn overlap_does_not_cross_headings() {
        let body = format!(
            "# A\n\n{}\n\n# B\n\n{}",
            numbered_sentences(10),
            numbered_sentences(10)
        );
        let chunks = chunks_of(&body, 40, 12);
        let heading_b = body.find("# B").unwrap();
        for chunk in &chunks {
            assert!(
                chunk.end <= heading_b || chunk.start > heading_b,
                "{chunk:?}"
            );
        }
    }

    #[test]
    fn hash_lines_in_fenced_code_are_not_headings() {
        let body = "# Real\n\nBefore.\n\n```bash\n# install\n\nmake install\n```\n\n~~~\n## also code\n~~~\n\nAfter.";
        let chunks = chunks_of(body, 200, 30);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].heading_path, vec!["Real"]);
        assert!(chunks[0].text.contains("# install") && chunks[0].text.contains("## also code"));
        assert!(chunks[0].text.ends_with("After."));
    }

    #[test]
    fn embed_text_carries_title_and_heading_path() {
        let chunks = chunks_of("# Policy\n## Travel\n\nBook early.", 200, 30);
        assert_eq!(
            chunks[0].embed_text("Handbook"),
            "Handbook › Policy › Travel\n\nBook early."
        );
        let plain = chunks_of("Just text.", 200, 30);
        assert_eq!(plain[0].embed_text(""), "Just text.");
    }

    /// A counter that does not add up across pieces, like a real tokenizer with special
    /// tokens: the packer must check and shrink chunks by the real count.
    struct WithSpecialTokens;

    impl TokenCounter for WithSpecialTokens {
        fn count(&self, text: &str) -> usize {
            text.chars().count().div_ceil(4) + 2
        }
    }

    #[test]
    fn chunks_fit_by_the_real_count_of_a_non_additive_counter() {
        let body = numbered_sentences(30);
        let opts = ChunkOptions {
            max_tokens: 40,
            overlap_tokens: 10,
        };
        let chunks = chunk(&doc(&body), &opts, &WithSpecialTokens);
        assert!(chunks.len() > 3);
        for chunk in chunks {
            assert!(chunk.tokens <= 40, "{chunk:?}");
            assert_eq!(chunk.tokens, WithSpecialTokens.count(&chunk.text));
        }
    }

    // --- property test ----------------------------------------------------------------------

    #[derive(Debug, Clone)]
    enum Block {
        Heading(usize, String),
        Paragraph(String),
        Code(Vec<String>),
    }

    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z]{1,8}",
            "[A-Z][a-z]{0,12}[.!?,;:]?",
            "[a-z]{20,40}",
            "[0-9]{1,4}(\\.[0-9]{1,2})?",
            "https?://[a-z]{2,8}\\.[a-z]{2,3}/[a-z/]{0,20}",
            "[中文字]{1,6}",
        ]
    }

    fn line() -> impl Strategy<Value = String> {
        (
            prop_oneof![Just(""), Just("- "), Just("| "), Just("  ")],
            prop::collection::vec(word(), 1..12),
        )
            .prop_map(|(lead, words)| format!("{lead}{}", words.join(" ")))
    }

    fn block() -> impl Strategy<Value = Block> {
        prop_oneof![
            1 => (1usize..=6, "[A-Za-z ]{0,12}").prop_map(|(level, text)| Block::Heading(level, text)),
            4 => prop::collection::vec(line(), 1..5).prop_map(|lines| Block::Paragraph(lines.join("\n"))),
            1 => prop::collection::vec(prop_oneof![line(), Just("# not a heading".to_string()), Just(String::new())], 0..4)
                .prop_map(Block::Code),
        ]
    }

    /// Renders blocks to a body, returning the byte ranges of heading lines and the heading
    /// path in force at each byte.
    fn render(
        blocks: &[Block],
        blank_lines: &[usize],
    ) -> (String, Vec<Range<usize>>, Vec<Vec<String>>) {
        let mut body = String::new();
        let mut headings = Vec::new();
        let mut paths: Vec<Vec<String>> = Vec::new();
        let mut stack: Vec<(usize, String)> = Vec::new();
        for (index, block) in blocks.iter().enumerate() {
            let start = body.len();
            match block {
                Block::Heading(level, text) => {
                    body.push_str(&format!("{} {text}\n", "#".repeat(*level)));
                    headings.push(start..body.len());
                    stack.retain(|(outer, _)| outer < level);
                    stack.push((*level, text.trim().to_string()));
                }
                Block::Paragraph(text) => body.push_str(&format!("{text}\n")),
                Block::Code(lines) => {
                    body.push_str("```\n");
                    for line in lines {
                        body.push_str(&format!("{line}\n"));
                    }
                    body.push_str("```\n");
                }
            }
            let path: Vec<String> = stack
                .iter()
                .map(|(_, t)| t.clone())
                .filter(|t| !t.is_empty())
                .collect();
            body.push_str(&"\n".repeat(blank_lines[index % blank_lines.len()]));
            paths.resize(body.len(), path);
        }
        (body, headings, paths)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn chunks_are_verbatim_contiguous_bounded_and_cover_all_text(
            blocks in prop::collection::vec(block(), 0..14),
            blank_lines in prop::collection::vec(0usize..3, 1..4),
            max_tokens in 1usize..60,
            overlap_tokens in 0usize..25,
        ) {
            let (body, headings, paths) = render(&blocks, &blank_lines);
            let opts = ChunkOptions { max_tokens, overlap_tokens };
            let chunks = chunk(&doc(&body), &opts, &ApproxTokens);

            let mut covered = vec![false; body.len()];
            for (ord, chunk) in chunks.iter().enumerate() {
                prop_assert_eq!(chunk.ord, ord);
                prop_assert!(chunk.start < chunk.end);
                prop_assert_eq!(&chunk.text, &body[chunk.start..chunk.end]);
                prop_assert_eq!(chunk.text.trim(), chunk.text.as_str());
                prop_assert_eq!(chunk.tokens, ApproxTokens.count(&chunk.text));
                prop_assert!(
                    chunk.tokens <= max_tokens || !chunk.text.contains(char::is_whitespace),
                    "over the limit: {:?}", chunk
                );
                for heading in &headings {
                    prop_assert!(chunk.end <= heading.start || chunk.start >= heading.end, "straddles a heading: {:?}", chunk);
                }
                prop_assert_eq!(&chunk.heading_path, &paths[chunk.start]);
                if ord > 0 {
                    prop_assert!(chunk.start > chunks[ord - 1].start);
                }
                covered[chunk.start..chunk.end].iter_mut().for_each(|c| *c = true);
            }
            for (index, ch) in body.char_indices() {
                let in_heading = headings.iter().any(|h| h.contains(&index));
                if !ch.is_whitespace() && !in_heading {
                    prop_assert!(covered[index], "byte {} ({:?}) is in no chunk", index, ch);
                }
            }
        }
    }
}
