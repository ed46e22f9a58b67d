//! Digest exports: Markdown, self-contained HTML (inline CSS and SVG charts,
//! no script, no external resource) and JSON. Every string from the talk or
//! the documents is escaped.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Digest, Insight, InsightKind};

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Html,
    Json,
}

impl Format {
    /// `md`/`markdown`, `html` or `json`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "md" | "markdown" => Some(Self::Markdown),
            "html" => Some(Self::Html),
            "json" => Some(Self::Json),
            _ => None,
        }
    }

    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Markdown => "text/markdown; charset=utf-8",
            Format::Html => "text/html; charset=utf-8",
            Format::Json => "application/json",
        }
    }

    /// File extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Markdown => "md",
            Format::Html => "html",
            Format::Json => "json",
        }
    }
}

/// Render `d` as `format`.
pub fn render(d: &Digest, format: Format) -> String {
    match format {
        Format::Markdown => markdown(d),
        Format::Html => html(d),
        Format::Json => serde_json::to_string_pretty(&json(d)).unwrap_or_default(),
    }
}

/// The JSON form, with the charts as SVG alongside the data.
pub fn json(d: &Digest) -> serde_json::Value {
    let mut v = serde_json::to_value(d).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "charts".into(),
            serde_json::json!({
                "activity_svg": activity_svg(d),
                "trend_svg": trend_svg(d),
            }),
        );
    }
    v
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => {}
            c => out.push(c),
        }
    }
    out
}

/// Markdown-safe text: no raw HTML, links or emphasis from the talk.
fn md_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn period_line(d: &Digest) -> String {
    format!(
        "{} to {}",
        d.period.from.format("%Y-%m-%d %H:%M UTC"),
        d.period.to.format("%Y-%m-%d %H:%M UTC")
    )
}

fn kinds(d: &Digest) -> [(&'static str, &'static str, Vec<&Insight>); 2] {
    [
        (
            "risk",
            "Risks",
            d.insights
                .iter()
                .filter(|i| i.kind == InsightKind::Risk)
                .collect(),
        ),
        (
            "opportunity",
            "Opportunities",
            d.insights
                .iter()
                .filter(|i| i.kind == InsightKind::Opportunity)
                .collect(),
        ),
    ]
}

fn markdown(d: &Digest) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Warroom digest: {}", period_line(d));
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Label **{}**{} · version {} · {} messages read, {} threads, {} facts stated · summaries: {}",
        md_text(&d.label),
        if d.redacted { " (redacted for your clearance)" } else { "" },
        d.version,
        d.stats.messages,
        d.stats.threads,
        d.stats.facts,
        md_text(&d.summarizer)
    );
    for (_, heading, list) in kinds(d) {
        let _ = writeln!(s, "\n## {heading}\n");
        if list.is_empty() {
            let _ = writeln!(s, "None found this period.");
        }
        for i in list {
            let _ = writeln!(s, "### {}. {}\n", i.rank, md_text(&i.title));
            if i.redacted {
                let _ = writeln!(s, "_Above your clearance._\n");
                continue;
            }
            let _ = writeln!(
                s,
                "- **Departments:** {} · **confidence** {:.2} · **trend** {} · **label** {}",
                md_text(&i.departments.join(", ")),
                i.confidence,
                md_text(&i.trend),
                md_text(&i.label)
            );
            if !i.confidence_reason.is_empty() {
                let _ = writeln!(s, "- **Confidence:** {}", md_text(&i.confidence_reason));
            }
            let _ = writeln!(s, "- **Summary:** {}", md_text(&i.summary));
            let _ = writeln!(s, "- **Why it matters:** {}", md_text(&i.why));
            let _ = writeln!(s, "- **Evidence:**");
            for e in &i.evidence {
                let _ = writeln!(
                    s,
                    "  - {} in #{} ({}), {}: \"{}\" (message `{}`)",
                    md_text(&e.author_name),
                    md_text(&e.channel),
                    e.author_department
                        .as_deref()
                        .map(md_text)
                        .unwrap_or_default(),
                    e.posted_at.format("%Y-%m-%d %H:%M"),
                    md_text(&e.excerpt),
                    md_text(&e.message_id)
                );
                for c in &e.citations {
                    let _ = writeln!(
                        s,
                        "    - cites {} ({}, {}): \"{}\"",
                        md_text(&c.document_path),
                        md_text(&c.department),
                        md_text(&c.label),
                        md_text(&c.quote)
                    );
                }
            }
            let _ = writeln!(s);
        }
    }
    if !d.faded.is_empty() {
        let _ = writeln!(s, "\n## No longer found\n");
        for f in &d.faded {
            let _ = writeln!(s, "- {} ({})", md_text(&f.title), md_text(f.kind.as_str()));
        }
    }
    let _ = writeln!(s, "\n## Activity by channel\n");
    let _ = writeln!(s, "| channel | department | messages |\n|---|---|---|");
    for ((ch, dept), n) in activity_totals(d) {
        let _ = writeln!(s, "| {} | {} | {} |", md_text(&ch), md_text(&dept), n);
    }
    s
}

fn activity_totals(d: &Digest) -> BTreeMap<(String, String), u64> {
    let mut m = BTreeMap::new();
    for a in &d.activity {
        *m.entry((a.channel.clone(), a.department.clone()))
            .or_default() += a.messages;
    }
    m
}

const PALETTE: &[&str] = &[
    "#4f7cff", "#f2994a", "#27ae60", "#eb5757", "#9b51e0", "#2d9cdb", "#f2c94c", "#6fcf97",
    "#bb6bd9", "#56ccf2", "#828282", "#219653",
];

/// Stacked horizontal bars: messages per channel, split by department.
pub fn activity_svg(d: &Digest) -> String {
    let totals = activity_totals(d);
    let mut channels: BTreeMap<String, u64> = BTreeMap::new();
    let mut depts: Vec<String> = Vec::new();
    for ((ch, dept), n) in &totals {
        *channels.entry(ch.clone()).or_default() += n;
        if !depts.contains(dept) {
            depts.push(dept.clone());
        }
    }
    depts.sort();
    let mut order: Vec<(String, u64)> = channels.into_iter().collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    order.truncate(12);
    let max = order.iter().map(|c| c.1).max().unwrap_or(1).max(1) as f64;
    let (w, left, bar_w) = (640.0, 150.0, 440.0);
    let legend_rows = depts.len().div_ceil(4);
    let h = 30.0 + order.len() as f64 * 26.0 + 20.0 + legend_rows as f64 * 18.0;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="Messages by channel and department" font-family="system-ui, sans-serif" font-size="12"><text x="0" y="16" font-weight="600">Messages by channel and department</text>"#
    );
    if order.is_empty() {
        s.push_str(r##"<text x="0" y="44" fill="#666">No messages in this period.</text>"##);
    }
    for (row, (ch, total)) in order.iter().enumerate() {
        let y = 30.0 + row as f64 * 26.0;
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" text-anchor="end" fill="#333">#{}</text>"##,
            left - 8.0,
            y + 14.0,
            esc(&truncate(ch, 20))
        );
        let mut x = left;
        for (di, dept) in depts.iter().enumerate() {
            let n = totals
                .get(&(ch.clone(), dept.clone()))
                .copied()
                .unwrap_or(0);
            if n == 0 {
                continue;
            }
            let bw = n as f64 / max * bar_w;
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{bw:.1}" height="18" fill="{}"><title>{}: {} messages</title></rect>"#,
                PALETTE[di % PALETTE.len()],
                esc(dept),
                n
            );
            x += bw;
        }
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{}" fill="#333">{}</text>"##,
            x + 6.0,
            y + 14.0,
            total
        );
    }
    let ly = 30.0 + order.len() as f64 * 26.0 + 14.0;
    for (di, dept) in depts.iter().enumerate() {
        let x = (di % 4) as f64 * 160.0;
        let y = ly + (di / 4) as f64 * 18.0;
        let _ = write!(
            s,
            r##"<rect x="{x}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}" fill="#333">{}</text>"##,
            y - 9.0,
            PALETTE[di % PALETTE.len()],
            x + 14.0,
            y,
            esc(&truncate(dept, 20))
        );
    }
    s.push_str("</svg>");
    s
}

/// Grouped bars: risks and opportunities per digest week.
pub fn trend_svg(d: &Digest) -> String {
    let weeks: Vec<_> = d.weeks.iter().rev().take(8).rev().collect();
    let max = weeks
        .iter()
        .map(|w| w.risks.max(w.opportunities))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let (w, h, base, top) = (640.0, 220.0, 180.0, 30.0);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="Insights by kind across weeks" font-family="system-ui, sans-serif" font-size="12"><text x="0" y="16" font-weight="600">Insights by kind across weeks</text>"#
    );
    let _ = write!(
        s,
        r##"<line x1="40" y1="{base}" x2="{}" y2="{base}" stroke="#bbb"/>"##,
        w - 10.0
    );
    let slot = (w - 60.0) / weeks.len().max(1) as f64;
    for (i, wk) in weeks.iter().enumerate() {
        let x0 = 50.0 + i as f64 * slot;
        for (j, (n, color, name)) in [
            (wk.risks, "#eb5757", "risks"),
            (wk.opportunities, "#27ae60", "opportunities"),
        ]
        .iter()
        .enumerate()
        {
            let bh = *n as f64 / max * (base - top);
            let x = x0 + j as f64 * 22.0;
            let _ = write!(
                s,
                r##"<rect x="{x:.1}" y="{:.1}" width="20" height="{bh:.1}" fill="{color}"><title>{n} {name}</title></rect><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#333">{n}</text>"##,
                base - bh,
                x + 10.0,
                base - bh - 4.0
            );
        }
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#555">{}</text>"##,
            x0 + 21.0,
            base + 16.0,
            wk.period_to.format("%b %d")
        );
    }
    let _ = write!(
        s,
        r##"<rect x="{}" y="6" width="10" height="10" fill="#eb5757"/><text x="{}" y="15">risks</text><rect x="{}" y="6" width="10" height="10" fill="#27ae60"/><text x="{}" y="15">opportunities</text></svg>"##,
        w - 200.0,
        w - 186.0,
        w - 130.0,
        w - 116.0
    );
    s
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

fn html(d: &Digest) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src 'none'"><title>Warroom digest {}</title><style>{CSS}</style></head><body><main>"#,
        esc(&period_line(d))
    );
    let _ = write!(
        s,
        r#"<header><h1>Warroom digest</h1><p class="meta">{} · version {} · <span class="chip">{}</span>{} · {} messages, {} threads, {} facts · summaries: {}</p></header>"#,
        esc(&period_line(d)),
        d.version,
        esc(&d.label),
        if d.redacted {
            " · <strong>redacted for your clearance</strong>"
        } else {
            ""
        },
        d.stats.messages,
        d.stats.threads,
        d.stats.facts,
        esc(&d.summarizer)
    );
    let _ = write!(
        s,
        r#"<section class="charts"><figure>{}</figure><figure>{}</figure></section>"#,
        activity_svg(d),
        trend_svg(d)
    );
    for (kind, heading, list) in kinds(d) {
        let _ = write!(s, r#"<section><h2 class="{kind}">{heading}</h2>"#);
        if list.is_empty() {
            s.push_str("<p class=\"meta\">None found this period.</p>");
        }
        for i in list {
            let _ = write!(
                s,
                r#"<article class="insight {kind}"><h3><span class="rank">{}</span> {}</h3>"#,
                i.rank,
                esc(&i.title)
            );
            if i.redacted {
                s.push_str("<p class=\"meta\">Above your clearance.</p></article>");
                continue;
            }
            let _ = write!(
                s,
                r#"<p class="meta">{} · <span title="{}">confidence {:.2}</span> · {} · <span class="chip">{}</span></p><p>{}</p><p class="why"><strong>Why it matters.</strong> {}</p><details><summary>Evidence ({} messages)</summary><ul>"#,
                esc(&i.departments.join(" × ")),
                esc(&i.confidence_reason),
                i.confidence,
                esc(&i.trend),
                esc(&i.label),
                esc(&i.summary),
                esc(&i.why),
                i.evidence.len()
            );
            for e in &i.evidence {
                let _ = write!(
                    s,
                    r#"<li><strong>{}</strong> ({}) in #{} · {}<blockquote>{}</blockquote>"#,
                    esc(&e.author_name),
                    esc(e.author_department.as_deref().unwrap_or("")),
                    esc(&e.channel),
                    e.posted_at.format("%Y-%m-%d %H:%M"),
                    esc(&e.excerpt)
                );
                for c in &e.citations {
                    let _ = write!(
                        s,
                        r#"<p class="cite">cites <code>{}</code> <span class="chip">{}</span>: “{}”</p>"#,
                        esc(&c.document_path),
                        esc(&c.label),
                        esc(&c.quote)
                    );
                }
                let _ = write!(
                    s,
                    r#"<p class="meta">message {}</p></li>"#,
                    esc(&e.message_id)
                );
            }
            s.push_str("</ul></details></article>");
        }
        s.push_str("</section>");
    }
    if !d.faded.is_empty() {
        s.push_str("<section><h2>No longer found</h2><ul>");
        for f in &d.faded {
            let _ = write!(s, "<li>{} ({})</li>", esc(&f.title), esc(f.kind.as_str()));
        }
        s.push_str("</ul></section>");
    }
    s.push_str("</main></body></html>");
    s
}

const CSS: &str = "body{margin:0;background:#f6f7f9;color:#1d2330;font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif}main{max-width:900px;margin:0 auto;padding:32px 20px}h1{margin:0 0 4px;font-size:28px}h2{margin-top:36px;border-bottom:2px solid #dde1e8;padding-bottom:6px}h2.risk{color:#b42318}h2.opportunity{color:#1b7a43}.meta{color:#5b6475;font-size:13px}.chip{display:inline-block;padding:0 8px;border-radius:10px;background:#e8ecf4;font-size:12px}.insight{background:#fff;border-radius:10px;padding:16px 20px;margin:14px 0;box-shadow:0 1px 3px rgba(0,0,0,.08);border-left:4px solid #ccc}.insight.risk{border-left-color:#eb5757}.insight.opportunity{border-left-color:#27ae60}.rank{display:inline-block;min-width:26px;color:#5b6475}h3{margin:0 0 6px;font-size:17px}blockquote{margin:6px 0;padding:4px 12px;border-left:3px solid #dde1e8;color:#333}.cite{font-size:13px;color:#444;margin:2px 0 2px 12px}.charts{display:grid;gap:16px}figure{margin:0;background:#fff;border-radius:10px;padding:12px;overflow-x:auto}svg{max-width:100%;height:auto}details summary{cursor:pointer;color:#2d5bd7}ul{padding-left:18px}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(esc("<script>&\"'"), "&lt;script&gt;&amp;&quot;&#39;");
        assert_eq!(md_text("[x](http://e) <b>"), "\\[x\\](http://e) \\<b\\>");
        assert_eq!(Format::parse("MD"), Some(Format::Markdown));
        assert_eq!(Format::parse("pdf"), None);
    }
}
