//! Splitting a document into passages: on headings, then paragraphs, with a size cap
//! and an overlap between neighbouring passages of one section.

use colloquy_core::NewPassage;

/// How documents are cut into passages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitConfig {
    /// Longest passage, in characters. Paragraphs are packed together up to it; a
    /// longer paragraph is cut at sentence ends (or spaces). Default 1,000.
    pub max_chars: usize,
    /// How many characters of the end of a passage are repeated at the start of the
    /// next one of the same section, so a fact cut in two is whole in one of them.
    /// Default 150.
    pub overlap_chars: usize,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            max_chars: 1_000,
            overlap_chars: 150,
        }
    }
}

/// A document cut into passages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Split {
    /// The title the text gives itself: front matter `title:`, else the first
    /// level-1 heading.
    pub title: Option<String>,
    /// The passages, in order.
    pub passages: Vec<NewPassage>,
}

/// Between the parts of a heading path.
pub const HEADING_SEPARATOR: &str = " › ";

/// Splits Markdown: sections start at ATX headings (`#` to `######`, not inside code
/// fences); each passage records the path of headings below the title it is under.
#[must_use]
pub fn split_markdown(text: &str, config: &SplitConfig) -> Split {
    let (front_title, body) = front_matter(text);
    let mut title = front_title;
    let mut headings: Vec<(usize, String)> = Vec::new();
    let mut section: Vec<String> = Vec::new();
    let mut paragraph = String::new();
    let mut fence: Option<&str> = None;
    let mut seen_h1 = false;
    let mut out = Vec::new();
    let flush_paragraph = |paragraph: &mut String, section: &mut Vec<String>| {
        let p = paragraph.trim();
        if !p.is_empty() {
            section.push(p.to_owned());
        }
        paragraph.clear();
    };
    for line in body.lines() {
        let trimmed = line.trim_start();
        if let Some(marker) = fence {
            paragraph.push_str(line);
            paragraph.push('\n');
            if trimmed.starts_with(marker) {
                fence = None;
                flush_paragraph(&mut paragraph, &mut section);
            }
            continue;
        }
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            flush_paragraph(&mut paragraph, &mut section);
            fence = Some(if trimmed.starts_with("```") {
                "```"
            } else {
                "~~~"
            });
            paragraph.push_str(line);
            paragraph.push('\n');
            continue;
        }
        if let Some((level, heading)) = atx_heading(trimmed) {
            flush_paragraph(&mut paragraph, &mut section);
            pack(&section, heading_path(&headings), config, &mut out);
            section.clear();
            if level == 1 && !seen_h1 {
                // The first level-1 heading names the document, not a section.
                seen_h1 = true;
                title.get_or_insert(heading);
                headings.clear();
                continue;
            }
            headings.retain(|(l, _)| *l < level);
            headings.push((level, heading));
            continue;
        }
        if trimmed.is_empty() {
            flush_paragraph(&mut paragraph, &mut section);
        } else {
            paragraph.push_str(line.trim_end());
            paragraph.push('\n');
        }
    }
    flush_paragraph(&mut paragraph, &mut section);
    pack(&section, heading_path(&headings), config, &mut out);
    Split {
        title,
        passages: out,
    }
}

/// Splits plain text: paragraphs (blank-line separated), no headings.
#[must_use]
pub fn split_plain(text: &str, config: &SplitConfig) -> Split {
    let paragraphs: Vec<String> = text
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    let mut out = Vec::new();
    pack(&paragraphs, None, config, &mut out);
    Split {
        title: None,
        passages: out,
    }
}

/// `title:` of a leading `---` front-matter block, and the text after the block.
fn front_matter(text: &str) -> (Option<String>, &str) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    else {
        return (None, text);
    };
    let Some(end) = rest.find("\n---") else {
        return (None, text);
    };
    let block = &rest[..end];
    let after = &rest[end + 4..];
    let after = after.find('\n').map_or("", |n| &after[n + 1..]);
    let title = block.lines().find_map(|l| {
        l.strip_prefix("title:")
            .map(|t| t.trim().trim_matches(['"', '\'']).to_owned())
            .filter(|t| !t.is_empty())
    });
    (title, after)
}

/// `(level, text)` of an ATX heading line.
fn atx_heading(line: &str) -> Option<(usize, String)> {
    let level = line.chars().take_while(|c| *c == '#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &line[level..];
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    let text = rest.trim().trim_end_matches('#').trim();
    (!text.is_empty()).then(|| (level, text.to_owned()))
}

fn heading_path(headings: &[(usize, String)]) -> Option<String> {
    (!headings.is_empty()).then(|| {
        headings
            .iter()
            .map(|(_, h)| h.as_str())
            .collect::<Vec<_>>()
            .join(HEADING_SEPARATOR)
    })
}

fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// Packs a section's paragraphs into passages of at most `max_chars`, each after the
/// first starting with the end of the one before.
fn pack(
    paragraphs: &[String],
    heading: Option<String>,
    config: &SplitConfig,
    out: &mut Vec<NewPassage>,
) {
    let max = config.max_chars.max(1);
    let pieces = paragraphs.iter().flat_map(|p| cut_long(p, max));
    let mut buffer = String::new();
    let mut fresh = false; // whether `buffer` holds more than the overlap
    for piece in pieces {
        let joined = char_len(&buffer) + 2 + char_len(&piece);
        if !buffer.is_empty() && joined > max {
            if fresh {
                out.push(NewPassage {
                    heading: heading.clone(),
                    text: buffer.clone(),
                });
            }
            let tail = overlap_tail(&buffer, config.overlap_chars);
            buffer = if char_len(&tail) + 2 + char_len(&piece) <= max && !tail.is_empty() {
                format!("{tail}\n\n{piece}")
            } else {
                piece
            };
        } else if buffer.is_empty() {
            buffer = piece;
        } else {
            buffer.push_str("\n\n");
            buffer.push_str(&piece);
        }
        fresh = true;
    }
    if fresh && !buffer.trim().is_empty() {
        out.push(NewPassage {
            heading,
            text: buffer,
        });
    }
}

/// The last `n` characters of `text`, starting at a word.
fn overlap_tail(text: &str, n: usize) -> String {
    let len = char_len(text);
    if n == 0 || len <= n {
        return if n == 0 {
            String::new()
        } else {
            text.to_owned()
        };
    }
    let start = text
        .char_indices()
        .nth(len - n)
        .map_or(text.len(), |(i, _)| i);
    let tail = &text[start..];
    match tail.find(char::is_whitespace) {
        Some(space) => tail[space..].trim_start().to_owned(),
        None => tail.to_owned(),
    }
}

/// `paragraph` in pieces of at most `max` characters, cut after sentence ends where
/// possible, else at whitespace, else anywhere.
fn cut_long(paragraph: &str, max: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut rest = paragraph.trim();
    while char_len(rest) > max {
        let limit = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
        let window = &rest[..limit];
        let sentence = window
            .rmatch_indices(['.', '!', '?', '。'])
            .map(|(i, m)| i + m.len())
            .find(|&end| end > limit / 3 && rest[end..].starts_with(char::is_whitespace));
        let cut = sentence
            .or_else(|| window.rfind(char::is_whitespace).filter(|&i| i > 0))
            .unwrap_or(limit);
        pieces.push(rest[..cut].trim().to_owned());
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() {
        pieces.push(rest.to_owned());
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(split: &Split) -> Vec<&str> {
        split.passages.iter().map(|p| p.text.as_str()).collect()
    }

    #[test]
    fn headings_make_sections_and_the_first_h1_is_the_title() {
        let md = "# Acme Pricing\n\nIntro.\n\n## Plans\n\nTeam is 40.\n\n### Team\n\nSSO included.\n\n## FAQ\n\nAsk us.\n";
        let split = split_markdown(md, &SplitConfig::default());
        assert_eq!(split.title.as_deref(), Some("Acme Pricing"));
        assert_eq!(
            texts(&split),
            ["Intro.", "Team is 40.", "SSO included.", "Ask us."]
        );
        let headings: Vec<Option<&str>> = split
            .passages
            .iter()
            .map(|p| p.heading.as_deref())
            .collect();
        assert_eq!(
            headings,
            [None, Some("Plans"), Some("Plans › Team"), Some("FAQ")]
        );
    }

    #[test]
    fn code_fences_are_not_headings_and_stay_whole() {
        let md = "# T\n\n```sh\n# not a heading\n\necho hi\n```\n\nAfter.\n";
        let split = split_markdown(md, &SplitConfig::default());
        assert_eq!(split.passages.len(), 1);
        assert!(split.passages[0]
            .text
            .contains("# not a heading\n\necho hi"));
        assert!(split.passages[0].text.ends_with("After."));
    }

    #[test]
    fn front_matter_gives_the_title() {
        let md = "---\ntitle: \"Refund policy\"\nslug: refunds\n---\n# Refunds\n\nText.\n\n## Rules\n\nMore.\n\n# Second top\n\nLast.\n";
        let split = split_markdown(md, &SplitConfig::default());
        assert_eq!(split.title.as_deref(), Some("Refund policy"));
        let headings: Vec<Option<&str>> = split
            .passages
            .iter()
            .map(|p| p.heading.as_deref())
            .collect();
        assert_eq!(headings, [None, Some("Rules"), Some("Second top")]);
    }

    #[test]
    fn passages_respect_the_cap_and_overlap() {
        let config = SplitConfig {
            max_chars: 120,
            overlap_chars: 30,
        };
        let paragraphs: Vec<String> = (0..12)
            .map(|i| format!("Paragraph number {i} says something useful."))
            .collect();
        let split = split_plain(&paragraphs.join("\n\n"), &config);
        assert!(split.passages.len() > 3);
        for p in &split.passages {
            assert!(p.text.chars().count() <= 120, "{:?}", p.text);
        }
        for pair in split.passages.windows(2) {
            let tail: String = pair[0]
                .text
                .chars()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            assert!(pair[1].text.contains(&tail), "{pair:?}");
        }
        for p in &paragraphs {
            assert!(
                split.passages.iter().any(|s| s.text.contains(p.as_str())),
                "{p} lost"
            );
        }
    }

    #[test]
    fn a_long_paragraph_is_cut_at_sentences() {
        let config = SplitConfig {
            max_chars: 100,
            overlap_chars: 0,
        };
        let long = "Sentence one is here and it is fine. ".repeat(10);
        let split = split_plain(&long, &config);
        for p in &split.passages {
            assert!(p.text.chars().count() <= 100);
            assert!(p.text.ends_with('.'), "{:?}", p.text);
        }
        let unbroken = "x".repeat(250);
        let split = split_plain(&unbroken, &config);
        assert_eq!(split.passages.len(), 3);
    }

    #[test]
    fn multibyte_text_is_cut_on_char_boundaries() {
        let config = SplitConfig {
            max_chars: 50,
            overlap_chars: 10,
        };
        let text = "Ünïcödé wörds ärë fïnë. ".repeat(20);
        let split = split_plain(&text, &config);
        assert!(split.passages.len() > 1);
        assert!(split.passages.iter().all(|p| p.text.chars().count() <= 50));
    }

    #[test]
    fn empty_input_gives_no_passages() {
        assert!(split_markdown("", &SplitConfig::default())
            .passages
            .is_empty());
        assert!(split_markdown("# Only a title\n", &SplitConfig::default())
            .passages
            .is_empty());
        assert!(split_plain("  \n\n ", &SplitConfig::default())
            .passages
            .is_empty());
    }
}
