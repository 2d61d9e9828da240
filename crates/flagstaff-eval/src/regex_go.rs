//! Regular expressions for the `matches` operator.
//!
//! LaunchDarkly evaluates `matches` with Go's RE2 (`regexp.Compile`, unanchored search). The
//! Rust `regex` crate has nearly the same syntax; the differences that change results on
//! ordinary patterns are bridged here:
//!
//! - Go's Perl classes `\d \w \s \b` (and negations) are ASCII-only; Rust's are Unicode. They are
//!   rewritten to explicit ASCII classes.
//! - In Go a `[` inside a bracket class is a literal (except `[:name:]`); Rust would start a
//!   nested class. It is escaped. Likewise `&&` and `~~`, which are set operators in Rust.
//!
//! Patterns Rust still rejects (or Go would) simply never match, as an invalid regex does in
//! LaunchDarkly.

use regex::Regex;

/// Compiles a Go-syntax pattern, or `None` if it is invalid.
pub fn compile(pattern: &str) -> Option<Regex> {
    Regex::new(&translate(pattern)).ok()
}

const DIGIT: &str = "0-9";
const WORD: &str = "0-9A-Za-z_";
const SPACE: &str = "\\t\\n\\x0C\\r ";

/// Rewrites a Go pattern into an equivalent Rust pattern (see the module documentation).
pub fn translate(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut in_class = false;
    let mut class_start = 0; // index just after '[' or '[^'
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            let e = chars[i + 1];
            let ascii = match e {
                'd' => Some((DIGIT, false)),
                'D' => Some((DIGIT, true)),
                'w' => Some((WORD, false)),
                'W' => Some((WORD, true)),
                's' => Some((SPACE, false)),
                'S' => Some((SPACE, true)),
                _ => None,
            };
            match (ascii, in_class) {
                (Some((set, false)), true) => out.push_str(set),
                (Some((set, neg)), _) => {
                    out.push('[');
                    if neg {
                        out.push('^');
                    }
                    out.push_str(set);
                    out.push(']');
                }
                (None, false) if e == 'b' || e == 'B' => {
                    out.push_str("(?-u:\\");
                    out.push(e);
                    out.push(')');
                }
                (None, _) => {
                    out.push(c);
                    out.push(e);
                }
            }
            i += 2;
            continue;
        }
        if in_class {
            match c {
                ']' if i > class_start => {
                    in_class = false;
                    out.push(c);
                }
                '[' if chars.get(i + 1) == Some(&':') => {
                    // A POSIX class such as [:alpha:]: copy through its closing ":]".
                    let mut j = i + 2;
                    while j + 1 < chars.len() && !(chars[j] == ':' && chars[j + 1] == ']') {
                        j += 1;
                    }
                    let end = (j + 2).min(chars.len());
                    out.extend(&chars[i..end]);
                    i = end;
                    continue;
                }
                '[' => out.push_str("\\["),
                '&' | '~' if chars.get(i + 1) == Some(&c) => {
                    out.push('\\');
                    out.push(c);
                }
                _ => out.push(c),
            }
            i += 1;
            continue;
        }
        if c == '[' {
            in_class = true;
            out.push(c);
            i += 1;
            if chars.get(i) == Some(&'^') {
                out.push('^');
                i += 1;
            }
            class_start = i;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        compile(p).expect(p).is_match(s)
    }

    #[test]
    fn ascii_perl_classes() {
        assert!(m(r"^\d+$", "123"));
        assert!(!m(r"^\d+$", "١٢٣"));
        assert!(!m(r"^\w+$", "héllo"));
        assert!(m(r"^\W$", "é"));
        assert!(m(r"^[\d\s]+$", "1 2\t3"));
        assert!(m(r"^[^\d]+$", "abc"));
        assert!(m(r"^[a\D]+$", "xyz"));
        assert!(m(r"\bfoo\b", "a foo b"));
        assert!(m(r"^\\d$", r"\d"));
    }

    #[test]
    fn go_class_literals() {
        assert!(m(r"^[[]$", "["));
        assert!(m(r"^[]a]+$", "]a"));
        assert!(m(r"^[[:alpha:]]+$", "abc"));
        assert!(m(r"^[a&&b]+$", "&"));
        assert!(m("^[A-Za-z]+", "matchThisName"));
        assert!(!m("^[A-Za-z]+", "_Don't match This Name"));
        assert!(compile("(").is_none());
    }
}
