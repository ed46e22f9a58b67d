//! YAML front matter at the top of a Markdown file: splitting it from the body and reading its
//! fields into a [`FrontMatter`], with errors that name the file line.

use serde_yaml::{Mapping, Value};

use super::{non_empty, FrontMatter, ParseError};

/// Splits YAML front matter (between a first line `---` and the next `---` line) from the body.
pub(super) fn split_front_matter(text: &str) -> Result<(FrontMatter, &str), ParseError> {
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

#[cfg(test)]
mod tests {
    use crate::document::test_support::{code_of, md};
    use crate::document::{Format, FrontMatter, ParseError};

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
}
