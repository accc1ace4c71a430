//! Redis's glob patterns (`KEYS`, `SCAN MATCH`): `*`, `?`, `[abc]`, `[^a-z]`, `\x`.

/// Whether `s` matches the Redis glob `pattern`, byte for byte (binary-safe, case-sensitive).
pub fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    // Where to resume after the last `*`: (pattern after it, input position it absorbed up to).
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p < pattern.len() {
            if pattern[p] == b'*' {
                while p < pattern.len() && pattern[p] == b'*' {
                    p += 1;
                }
                if p == pattern.len() {
                    return true;
                }
                star = Some((p, i));
                continue;
            }
            if i < s.len()
                && let Some(next) = match_one(pattern, p, s[i])
            {
                p = next;
                i += 1;
                continue;
            }
        } else if i == s.len() {
            return true;
        }
        // Mismatch: let the last star absorb one more byte, if there is one to absorb.
        match star {
            Some((sp, si)) if si < s.len() => {
                star = Some((sp, si + 1));
                p = sp;
                i = si + 1;
            }
            _ => return false,
        }
    }
}

/// Matches one non-star pattern element at `p` against `c`: the pattern position after it.
fn match_one(pattern: &[u8], p: usize, c: u8) -> Option<usize> {
    match pattern[p] {
        b'?' => Some(p + 1),
        b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == c).then_some(p + 2),
        b'[' => {
            let mut q = p + 1;
            let negate = q < pattern.len() && pattern[q] == b'^';
            if negate {
                q += 1;
            }
            let mut matched = false;
            // As Redis does, an unclosed class runs to the end of the pattern.
            while q < pattern.len() && pattern[q] != b']' {
                if pattern[q] == b'\\' && q + 1 < pattern.len() {
                    matched |= pattern[q + 1] == c;
                    q += 2;
                } else if q + 2 < pattern.len() && pattern[q + 1] == b'-' && pattern[q + 2] != b']' {
                    let (a, b) = (pattern[q].min(pattern[q + 2]), pattern[q].max(pattern[q + 2]));
                    matched |= (a..=b).contains(&c);
                    q += 3;
                } else {
                    matched |= pattern[q] == c;
                    q += 1;
                }
            }
            let next = if q < pattern.len() { q + 1 } else { q };
            (matched != negate).then_some(next)
        }
        lit => (lit == c).then_some(p + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    fn m(p: &str, s: &str) -> bool {
        glob_match(p.as_bytes(), s.as_bytes())
    }

    #[test]
    fn stars_and_questions() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("user:*", "user:1"));
        assert!(!m("user:*", "use"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("*llo", "hello"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("a**c", "abc"));
        assert!(!m("", "a"));
        assert!(m("", ""));
        assert!(m("*a", "aaa"));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"), "reversed ranges are swapped");
        assert!(!m("h[a-b]llo", "hcllo"));
        assert!(m(r"h\*llo", "h*llo"));
        assert!(!m(r"h\*llo", "hello"));
        assert!(m(r"[\]]", "]"));
        assert!(m("[abc", "a"), "an unclosed class runs to the end");
    }

    #[test]
    fn binary_safe() {
        assert!(glob_match(b"a*\xff", b"a\x00\x01\xff"));
        assert!(!glob_match(b"a?", b"a\x00\x01"));
    }
}
