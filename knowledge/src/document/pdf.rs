//! PDF text extraction with lopdf, once [`super::pdf_guard`] has passed the file: loading it
//! within the limits, walking pages and the form XObjects they draw, and rebuilding lines and
//! paragraphs from the text operators.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};

use lopdf::content::{Content, Operation};
use lopdf::{DecompressError, Dictionary, Document, Encoding, LoadOptions, Object};

use super::body::{BodyWriter, Break};
use super::{non_empty, Limits, ParseError};

/// Loads the PDF with lopdf and extracts its text; runs under `catch_unwind`.
pub(super) fn extract_pdf(
    bytes: &[u8],
    limits: &Limits,
) -> Result<(Option<String>, String), ParseError> {
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
    use crate::document::test_support::{parse_with_defaults, pdf_with_pages, text_page};
    use crate::document::{parse, Format};
    use lopdf::{dictionary, Stream};

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
}
