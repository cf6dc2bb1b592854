//! HTML to text: tags stripped, scripts and styles dropped, entities decoded, and
//! structure kept as Markdown the splitter understands (headings as `#` lines,
//! blocks as paragraphs).

/// The text of an HTML page, as Markdown, and its `<title>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HtmlText {
    /// The `<title>`, when the page has a non-empty one.
    pub title: Option<String>,
    /// The visible text; `<h1>`..`<h6>` become `#` headings, blocks are paragraphs.
    pub markdown: String,
}

/// Elements whose content is not text for a reader.
const SKIPPED: &[&str] = &[
    "script", "style", "noscript", "template", "svg", "head", "iframe", "object",
];

/// Elements that start and end a paragraph.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "aside",
    "nav",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "table",
    "tr",
    "blockquote",
    "pre",
    "hr",
    "figure",
    "figcaption",
    "form",
    "fieldset",
    "details",
    "summary",
    "body",
    "html",
];

/// Converts an HTML document to text.
#[must_use]
pub fn html_to_text(html: &str) -> HtmlText {
    let mut out = Output::default();
    let mut title: Option<String> = None;
    let mut skipping: Option<String> = None;
    let mut in_title = false;
    let mut pre = 0usize;
    let mut rest = html;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            if skipping.is_none() {
                out.text(&decode(rest), pre > 0);
            }
            break;
        };
        let (text, after) = rest.split_at(lt);
        if !text.is_empty() && skipping.is_none() {
            let text = decode(text);
            if in_title {
                title.get_or_insert_with(String::new).push_str(&text);
            } else {
                out.text(&text, pre > 0);
            }
        }
        if let Some(body) = after.strip_prefix("<!--") {
            rest = body.find("-->").map_or("", |end| &body[end + 3..]);
            continue;
        }
        let Some(tag) = Tag::parse(after) else {
            // A lone `<`: text.
            if skipping.is_none() {
                out.text("<", pre > 0);
            }
            rest = &after[1..];
            continue;
        };
        rest = &after[tag.len..];
        let name = tag.name.as_str();
        if let Some(skipped) = &skipping {
            if tag.closing && name == skipped {
                skipping = None;
            }
            continue;
        }
        if name == "title" {
            in_title = !tag.closing;
            continue;
        }
        if SKIPPED.contains(&name) && !tag.closing && !tag.self_closing {
            // `<head>` holds the title: read it, skip the rest.
            if name != "head" {
                skipping = Some(name.to_owned());
            }
            continue;
        }
        match name {
            "br" => out.newline(),
            "li" if !tag.closing => {
                out.newline();
                out.raw("- ");
            }
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                out.paragraph();
                if !tag.closing {
                    let level = usize::from(name.as_bytes()[1] - b'0');
                    out.raw(&"#".repeat(level));
                    out.raw(" ");
                }
            }
            "td" | "th" if !tag.closing => out.text(" ", false),
            "pre" => {
                out.paragraph();
                pre = if tag.closing {
                    pre.saturating_sub(1)
                } else {
                    pre + 1
                };
            }
            _ if BLOCKS.contains(&name) => out.paragraph(),
            _ => {}
        }
    }
    let title = title
        .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|t| !t.is_empty());
    HtmlText {
        title,
        markdown: out.finish(),
    }
}

/// A tag at the start of some text.
struct Tag {
    name: String,
    closing: bool,
    self_closing: bool,
    /// Its length in bytes, `<` to `>`.
    len: usize,
}

impl Tag {
    fn parse(text: &str) -> Option<Self> {
        let inner = text.strip_prefix('<')?;
        let (closing, inner) = match inner.strip_prefix('/') {
            Some(i) => (true, i),
            None => (false, inner),
        };
        let first = inner.chars().next()?;
        if !(first.is_ascii_alphabetic() || first == '!' || first == '?') {
            return None;
        }
        // The end: the first `>` outside quotes.
        let mut quote = None;
        let mut end = None;
        for (i, c) in text.char_indices().skip(1) {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '>') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end?;
        let name: String = inner
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        Some(Self {
            name,
            closing,
            self_closing: text[..end].ends_with('/'),
            len: end + 1,
        })
    }
}

/// The text being written, with whitespace collapsed outside `<pre>`.
#[derive(Default)]
struct Output {
    text: String,
    /// Whether a space is owed before the next word.
    space: bool,
}

impl Output {
    fn text(&mut self, text: &str, preformatted: bool) {
        if preformatted {
            self.text.push_str(text);
            self.space = false;
            return;
        }
        for (i, word) in text.split_whitespace().enumerate() {
            let at_line_start = self.text.is_empty() || self.text.ends_with('\n');
            if (i > 0 || self.space || text.starts_with(char::is_whitespace)) && !at_line_start {
                self.text.push(' ');
            }
            self.text.push_str(word);
            self.space = false;
        }
        if text.ends_with(char::is_whitespace) && !text.trim().is_empty() {
            self.space = true;
        }
    }

    fn raw(&mut self, s: &str) {
        self.text.push_str(s);
        self.space = false;
    }

    fn newline(&mut self) {
        let trimmed = self.text.trim_end_matches(' ').len();
        self.text.truncate(trimmed);
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            self.text.push('\n');
        }
        self.space = false;
    }

    fn paragraph(&mut self) {
        self.newline();
        if !self.text.is_empty() && !self.text.ends_with("\n\n") {
            self.text.push('\n');
        }
    }

    fn finish(self) -> String {
        self.text.trim().to_owned()
    }
}

/// Decodes character references: numeric ones, and the common named ones.
fn decode(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after.find(';').filter(|&e| e > 0 && e <= 10);
        let decoded = end.and_then(|e| entity(&after[..e]).map(|c| (c, e)));
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &after[e + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code);
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "hellip" => '…',
        "mdash" => '—',
        "ndash" => '–',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "laquo" => '«',
        "raquo" => '»',
        "euro" => '€',
        "pound" => '£',
        "middot" => '·',
        "bull" => '•',
        "times" => '×',
        "eacute" => 'é',
        "egrave" => 'è',
        "ecirc" => 'ê',
        "agrave" => 'à',
        "aacute" => 'á',
        "acirc" => 'â',
        "ccedil" => 'ç',
        "iacute" => 'í',
        "oacute" => 'ó',
        "uacute" => 'ú',
        "ntilde" => 'ñ',
        "auml" => 'ä',
        "ouml" => 'ö',
        "uuml" => 'ü',
        "Auml" => 'Ä',
        "Ouml" => 'Ö',
        "Uuml" => 'Ü',
        "Eacute" => 'É',
        "szlig" => 'ß',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_go_scripts_go_structure_stays() {
        let html = r#"<!DOCTYPE html><html><head><title>Acme &amp; Co
            — Status</title><style>p { color: red }</style></head>
            <body><nav><a href="/">Home</a></nav>
            <h1>Service status</h1>
            <p>All systems <b>operational</b>.<br>Last check: today.</p>
            <script>var x = "<p>not text</p>";</script>
            <h2 class="x">Incidents</h2><ul><li>None in May</li><li>One in &lt;June&gt;</li></ul>
            <!-- a comment <p>hidden</p> -->
            <p>Caf&eacute; &#233; &#xE9; &unknown; 5 &lt 6</p></body></html>"#;
        let text = html_to_text(html);
        assert_eq!(text.title.as_deref(), Some("Acme & Co — Status"));
        assert_eq!(
            text.markdown,
            "Home\n\n# Service status\n\nAll systems operational.\nLast check: today.\n\n## Incidents\n\n- None in May\n- One in <June>\n\nCafé é é &unknown; 5 &lt 6"
        );
    }

    #[test]
    fn preformatted_text_keeps_its_lines() {
        let text = html_to_text("<p>Run:</p><pre>make  build\n  make test</pre><p>Done</p>");
        assert_eq!(text.markdown, "Run:\n\nmake  build\n  make test\n\nDone");
    }

    #[test]
    fn broken_html_does_not_panic() {
        for input in [
            "<",
            "<<>>",
            "<p",
            "a < b > c",
            "<!-- open",
            "&#xFFFFFFFF;",
            "<é>",
            "</",
        ] {
            let _ = html_to_text(input);
        }
        assert_eq!(html_to_text("a < b").markdown, "a < b");
    }
}
