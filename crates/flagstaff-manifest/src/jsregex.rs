//! JavaScript regular expressions (manifest matchers are evaluated with `RegExp.test` upstream)
//! on Rust's `regex` engine.
//!
//! The syntaxes mostly agree; this translates the differences that change results: `\d` and
//! `\w` are ASCII-only in JavaScript, and `\/` is a legal JavaScript escape. Features the
//! linear-time engine cannot run (lookaround, backreferences) are reported, not approximated.

use regex::Regex;

pub fn compile(pattern: &str) -> Result<Regex, String> {
    let mut translated = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('d') => translated.push_str("[0-9]"),
                Some('D') => translated.push_str("[^0-9]"),
                Some('w') => translated.push_str("[A-Za-z0-9_]"),
                Some('W') => translated.push_str("[^A-Za-z0-9_]"),
                Some('/') => translated.push('/'),
                Some(digit @ '1'..='9') => {
                    return Err(format!(
                        "backreference `\\{digit}` is not supported; rewrite the pattern without it"
                    ));
                }
                Some(other) => {
                    translated.push('\\');
                    translated.push(other);
                }
                None => return Err("the pattern ends with a lone `\\`".into()),
            }
        } else if c == '(' && chars.peek() == Some(&'?') {
            let mut lookahead = chars.clone();
            lookahead.next();
            let next = lookahead.next();
            let after = lookahead.next();
            if matches!(next, Some('=') | Some('!'))
                || (next == Some('<') && matches!(after, Some('=') | Some('!')))
            {
                return Err(
                    "lookaround assertions are not supported; rewrite the pattern without them"
                        .into(),
                );
            }
            translated.push(c);
        } else {
            translated.push(c);
        }
    }
    Regex::new(&translated).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::compile;

    #[test]
    fn javascript_semantics() {
        assert!(
            compile(r".+ \[TEST\].+")
                .unwrap()
                .is_match("Monitor [TEST] alert")
        );
        assert!(compile("^-1").unwrap().is_match("-1 approved"));
        assert!(!compile(r"^\d$").unwrap().is_match("٣"));
        assert!(compile(r"a\/b").unwrap().is_match("a/b"));
        assert!(compile("(?=x)").is_err());
        assert!(compile(r"(a)\1").is_err());
        assert!(compile("(").is_err());
    }
}
