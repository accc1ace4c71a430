//! Redis' glob patterns (`KEYS`, `SCAN MATCH`, `CONFIG GET`): `*`, `?`, `[abc]`, `[^a-z]`, and `\`
//! to quote the next character. Here because two crates need the same rule: the key-value
//! engine's SCAN and the Redis protocol's CONFIG GET.

/// Whether `text` matches `pattern`, like Redis' `stringmatchlen`. Runs in O(len(pattern) ×
/// len(text)) at worst: a `*` is retried from one remembered position instead of recursing, so
/// patterns like `*a*a*a*b` cannot blow up.
pub fn glob_match(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    let (mut p, mut t) = (0, 0);
    // The `*` to fall back to on a mismatch: where the pattern resumes after it, and the text
    // position it has swallowed up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            if pattern[p] == b'*' {
                while p < pattern.len() && pattern[p] == b'*' {
                    p += 1;
                }
                if p == pattern.len() {
                    return true;
                }
                star = Some((p, t));
                continue;
            }
            let (matched, next) = match_one(pattern, p, text[t], nocase);
            if matched {
                p = next;
                t += 1;
                continue;
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches one text character against the pattern element at `p` (not a `*`); returns whether it
/// matched and where the next element starts.
fn match_one(pattern: &[u8], p: usize, c: u8, nocase: bool) -> (bool, usize) {
    let eq = |a: u8, b: u8| if nocase { a.eq_ignore_ascii_case(&b) } else { a == b };
    match pattern[p] {
        b'?' => (true, p + 1),
        b'\\' if p + 1 < pattern.len() => (eq(pattern[p + 1], c), p + 2),
        b'[' => {
            let mut i = p + 1;
            let negate = pattern.get(i) == Some(&b'^');
            if negate {
                i += 1;
            }
            let mut matched = false;
            // An unclosed class runs to the end of the pattern, as in Redis.
            while i < pattern.len() && pattern[i] != b']' {
                if pattern[i] == b'\\' && i + 1 < pattern.len() {
                    matched |= eq(pattern[i + 1], c);
                    i += 2;
                } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
                    let (mut lo, mut hi) = (pattern[i], pattern[i + 2]);
                    if lo > hi {
                        std::mem::swap(&mut lo, &mut hi);
                    }
                    let in_range = |x: u8| (lo..=hi).contains(&x);
                    matched |= in_range(c)
                        || (nocase && (in_range(c.to_ascii_lowercase()) || in_range(c.to_ascii_uppercase())));
                    i += 3;
                } else {
                    matched |= eq(pattern[i], c);
                    i += 1;
                }
            }
            (matched != negate, (i + 1).min(pattern.len()))
        }
        other => (eq(other, c), p + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    fn m(pattern: &str, text: &str) -> bool {
        glob_match(pattern.as_bytes(), text.as_bytes(), false)
    }

    #[test]
    fn wildcards() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("user:*", "user:42"));
        assert!(!m("user:*", "users:42"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("*a*b", "xxaxxb"));
        assert!(!m("*a*b", "xxaxxbc"));
        assert!(m("a*b*c", "abbbc"));
        assert!(!m("", "a"));
        assert!(m("", ""));
        assert!(m("**", "x"));
        assert!(m("*llo", "hello"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("*a", "aaa"));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"));
        assert!(!m("h[a-b]llo", "hcllo"));
        assert!(m(r"a\*b", "a*b"));
        assert!(!m(r"a\*b", "axb"));
        assert!(m(r"[\]]", "]"));
        assert!(m("[abc", "b"));
        assert!(glob_match(b"SAVE", b"save", true));
        assert!(glob_match(b"[A-C]x", b"bx", true));
        assert!(!glob_match(b"SAVE", b"save", false));
    }

    #[test]
    fn binary_safe() {
        assert!(glob_match(b"a*\xff", b"a\x00\x01\xff", false));
        assert!(!glob_match(b"a?", b"a\x00\x01", false));
    }

    #[test]
    fn pathological_patterns_are_fast() {
        let text = "a".repeat(10_000);
        let pattern = "*a".repeat(50) + "b";
        let start = std::time::Instant::now();
        assert!(!m(&pattern, &text));
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }
}
