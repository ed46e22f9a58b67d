//! Helpers the document tests share: parsing with default limits, and PDFs built in memory.

use lopdf::content::{Content, Operation};
use lopdf::{dictionary, Document, Object, Stream};

use super::{parse, Limits, ParseError, ParsedDocument};

pub(super) fn parse_with_defaults(path: &str, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
    parse(path, bytes, &Limits::default())
}

pub(super) fn md(source: &str) -> Result<ParsedDocument, ParseError> {
    parse_with_defaults("notes/Team Handbook.md", source.as_bytes())
}

pub(super) fn code_of(result: Result<ParsedDocument, ParseError>) -> &'static str {
    result.expect_err("parsing should fail").code()
}

/// A PDF with one page per entry; each page's content stream is stored as given.
pub(super) fn pdf_with_pages(contents: Vec<Stream>, title: Option<&str>) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "Encoding" => "WinAnsiEncoding",
    });
    let resources_id = doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font_id } });
    let kids: Vec<Object> = contents
        .into_iter()
        .map(|stream| {
            let content_id = doc.add_object(stream);
            doc.add_object(
                dictionary! { "Type" => "Page", "Parent" => pages_id, "Contents" => content_id },
            )
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

pub(super) fn text_page(lines: &[(f32, &str)]) -> Stream {
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
