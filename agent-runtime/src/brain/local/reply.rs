//! Cleaning a local model's raw output down to the message it meant to
//! write.

/// Sentences a local reply keeps, at most.
const MAX_SENTENCES: usize = 3;

/// Small models echo the prompt's format; keep only the message: the first
/// paragraph, without quote markers, speaker labels, an echoed topic or
/// "Output:"-style headers, cut to whole sentences (at most [`MAX_SENTENCES`]).
pub(super) fn clean_reply(text: &str, name: &str, topic: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for line in text.lines() {
        let line = line.trim().trim_start_matches(['>', ' ']);
        let line = strip_speaker(line, name);
        let is_header = line.ends_with(':') && line.split_whitespace().count() <= 3;
        let is_topic = line
            .trim_end_matches('.')
            .eq_ignore_ascii_case(topic.trim());
        if line.is_empty() || is_header || is_topic {
            if !kept.is_empty() && line.is_empty() {
                break;
            }
            continue;
        }
        kept.push(line);
    }
    let joined = kept.join(" ");
    let ends: Vec<usize> = joined
        .char_indices()
        .filter(|&(i, c)| {
            matches!(c, '.' | '!' | '?')
                && joined[i + 1..]
                    .chars()
                    .next()
                    .is_none_or(char::is_whitespace)
        })
        .map(|(i, _)| i + 1)
        .collect();
    // Whole sentences only (a reply cut by the token limit loses its tail),
    // unless there is no sentence end at all.
    let cut = ends
        .get(MAX_SENTENCES - 1)
        .or(ends.last())
        .copied()
        .unwrap_or(joined.len());
    joined[..cut].trim().to_string()
}

/// `line` without leading "Name:", "@handle:" or "A:" labels.
fn strip_speaker<'a>(mut line: &'a str, name: &str) -> &'a str {
    for _ in 0..3 {
        let rest = strip_one_speaker(line, name);
        if rest.len() == line.len() {
            break;
        }
        line = rest;
    }
    line
}

fn strip_one_speaker<'a>(line: &'a str, name: &str) -> &'a str {
    if let Some(rest) = line.strip_prefix(name).and_then(|r| r.strip_prefix(':')) {
        return rest.trim_start();
    }
    match line.split_once(':') {
        Some((label, rest))
            if !rest.is_empty()
                && label.len() <= 24
                && (label.starts_with('@') || label.split_whitespace().count() == 1)
                && !label.chars().any(|c| c.is_ascii_digit()) =>
        {
            rest.trim_start()
        }
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_is_cleaned_of_echoed_format() {
        let raw = "> firmware delay\nOutput:\n> @bob: Ada Berg: It slips to 11 March. Two boards \
                   failed. We retest Monday. Then more.\n\nIgnored paragraph.";
        assert_eq!(
            clean_reply(raw, "Ada Berg", "firmware delay"),
            "It slips to 11 March. Two boards failed. We retest Monday."
        );
        assert_eq!(clean_reply("Done. And then the", "X", "t"), "Done.");
        assert_eq!(clean_reply("no sentence end", "X", "t"), "no sentence end");
        assert_eq!(
            clean_reply("Ratio 2:1 holds.", "X", "t"),
            "Ratio 2:1 holds."
        );
    }
}
