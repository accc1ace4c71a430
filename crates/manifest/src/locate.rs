//! Turning byte offsets into what a user can act on: a line and column, and the dotted path of
//! the key there.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// 1-based line and column (in characters, as editors count them) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.bytes().filter(|b| *b == b'\n').count() + 1;
    (line, before[line_start..].chars().count() + 1)
}

/// A key as it would be written in a dotted path: bare when TOML allows it, quoted otherwise.
pub(crate) fn key(k: &str) -> String {
    if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        k.to_string()
    } else {
        format!("{k:?}")
    }
}

/// The path (`functions.hello.memory`, `routes[1]`) of the innermost key or value whose span
/// holds `offset`, or else (a syntax error past the end of what parsed) of the last key before
/// it on the same line. Every node is searched rather than only the containers whose span
/// holds the offset, because a table opened by a `[header]` is not one contiguous span.
pub(crate) fn path_at(root: &DeTable<'_>, text: &str, offset: usize) -> Option<String> {
    let mut found = Found::default();
    search_table(root, offset, "", &mut found);
    if found.inner.is_some() {
        return found.inner.map(|(_, path)| path);
    }
    let (start, path) = found.before?;
    let same_line = text.get(start..offset).is_some_and(|between| !between.contains('\n'));
    same_line.then_some(path)
}

#[derive(Default)]
struct Found {
    /// The smallest span holding the offset, by length.
    inner: Option<(usize, String)>,
    /// The key starting last at or before the offset, by start.
    before: Option<(usize, String)>,
}

fn consider(span: Range<usize>, offset: usize, path: &str, found: &mut Found) {
    // An empty span (an error at the end of a value) still names the value it ends.
    let holds = span.contains(&offset) || (span.is_empty() && span.start == offset);
    if holds && found.inner.as_ref().is_none_or(|(len, _)| span.len() <= *len) {
        found.inner = Some((span.len(), path.to_string()));
    }
}

fn search_table(table: &DeTable<'_>, offset: usize, prefix: &str, found: &mut Found) {
    for (k, v) in table {
        let path =
            if prefix.is_empty() { key(k.get_ref()) } else { format!("{prefix}.{}", key(k.get_ref())) };
        let start = k.span().start;
        if start <= offset && found.before.as_ref().is_none_or(|(s, _)| start >= *s) {
            found.before = Some((start, path.clone()));
        }
        consider(k.span(), offset, &path, found);
        search_value(v, offset, &path, found);
    }
}

fn search_value(v: &Spanned<DeValue<'_>>, offset: usize, path: &str, found: &mut Found) {
    consider(v.span(), offset, path, found);
    match v.get_ref() {
        DeValue::Table(t) => search_table(t, offset, path, found),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                search_value(item, offset, &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}
