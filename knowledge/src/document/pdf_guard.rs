//! The guard around PDF parsing: the header and encryption checks, the inflation budget that
//! every compressed stream is measured against before lopdf sees the file, and the
//! `catch_unwind` that turns a panicking parser into an error for that file only.

use std::cell::Cell;
use std::io::{self, Read};
use std::panic::{self, AssertUnwindSafe};

use flate2::read::ZlibDecoder;

use super::pdf::extract_pdf;
use super::{find, rfind, Limits, ParseError};

/// Most filter layers followed when measuring one stream (lopdf allows 16).
const MAX_FLATE_LAYERS: usize = 16;

/// Extracts a PDF's Info title and its text, page by page.
pub(super) fn parse_pdf(
    bytes: &[u8],
    limits: &Limits,
) -> Result<(Option<String>, String), ParseError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::parse;
    use crate::document::test_support::{parse_with_defaults, pdf_with_pages, text_page};
    use crate::document::types::MIB;
    use flate2::write::ZlibEncoder;
    use flate2::Compression;
    use lopdf::{dictionary, Object, Stream};
    use std::io::Write;

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
}
