//! Scrubbing secret values out of text a function wrote to its logs.

use std::borrow::Cow;
use std::fmt;

use crate::wipe_vec;

/// Values shorter than this are left alone: a secret "on" or "123" would turn ordinary log text
/// into a mess of markers while protecting next to nothing.
const MIN_REDACTED_BYTES: usize = 4;

/// Replaces every occurrence of a secret's value in a log line by `[secret:NAME]`.
///
/// Where occurrences overlap (one value contains or runs into another) the whole overlapping
/// stretch becomes one marker named after the longest value in it, so no byte of either value is
/// left in the output. A value that is not UTF-8 cannot occur whole in a `&str`; its UTF-8 runs
/// (4 bytes or longer) are redacted instead, since those are what a lossily decoded log shows.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so the index of a pattern orders by preference.
    patterns: Vec<Pattern>,
}

#[derive(Clone)]
struct Pattern {
    name: String,
    text: String,
    marker: String,
}

impl Drop for Pattern {
    fn drop(&mut self) {
        wipe_vec(&mut std::mem::take(&mut self.text).into_bytes());
    }
}

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = (String, Vec<u8>)>) -> Redactor {
        let mut patterns = Vec::new();
        let mut add = |name: &str, text: String| {
            if text.len() >= MIN_REDACTED_BYTES {
                patterns.push(Pattern { name: name.to_owned(), text, marker: format!("[secret:{name}]") });
            } else {
                wipe_vec(&mut text.into_bytes());
            }
        };
        for (name, value) in secrets {
            match String::from_utf8(value) {
                Ok(text) => add(&name, text),
                Err(e) => {
                    let mut bytes = e.into_bytes();
                    for chunk in bytes.utf8_chunks() {
                        add(&name, chunk.valid().to_owned());
                    }
                    wipe_vec(&mut bytes);
                }
            }
        }
        // Stable, so equal lengths keep the caller's order.
        patterns.sort_by_key(|p| std::cmp::Reverse(p.text.len()));
        Redactor { patterns }
    }

    /// True when there is nothing to redact (no secrets, or all of them too short).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// `line` with every secret value replaced; borrowed, without allocating, when no value occurs.
    pub fn redact<'a>(&self, line: &'a str) -> Cow<'a, str> {
        // (start, end, pattern index). Vec::new does not allocate until the first hit.
        let mut hits: Vec<(usize, usize, usize)> = Vec::new();
        for (index, pattern) in self.patterns.iter().enumerate() {
            let step = pattern.text.chars().next().map_or(1, char::len_utf8);
            let mut from = 0;
            // Overlapping occurrences of one value ("aaaa" twice in "aaaaa") are all found, so
            // the merged stretch covers both.
            while let Some(at) = line[from..].find(pattern.text.as_str()) {
                let start = from + at;
                hits.push((start, start + pattern.text.len(), index));
                from = start + step;
            }
        }
        if hits.is_empty() {
            return Cow::Borrowed(line);
        }
        hits.sort_unstable();

        let mut out = String::with_capacity(line.len());
        let mut copied = 0;
        let mut hits = hits.into_iter();
        let Some((mut start, mut end, mut best)) = hits.next() else {
            return Cow::Borrowed(line);
        };
        for (s, e, index) in hits {
            if s < end {
                end = end.max(e);
                best = best.min(index);
            } else {
                out.push_str(&line[copied..start]);
                out.push_str(&self.patterns[best].marker);
                copied = end;
                (start, end, best) = (s, e, index);
            }
        }
        out.push_str(&line[copied..start]);
        out.push_str(&self.patterns[best].marker);
        out.push_str(&line[end..]);
        Cow::Owned(out)
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names are not secret and help when checking what a function's logs are scrubbed of.
        f.debug_struct("Redactor")
            .field("names", &self.patterns.iter().map(|p| p.name.as_str()).collect::<Vec<_>>())
            .finish()
    }
}
