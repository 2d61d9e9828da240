//! The handlebars.js 4.7 lexer (`handlebars.l`), rule for rule and in the same order.
//!
//! States: `Initial` (content), `Mu` (inside a mustache), `Emu` (content after an escaped
//! `\{{`), `Com` (a `{{!-- --}}` comment) and `Raw` (inside a `{{{{raw}}}}` block, nestable).

use crate::value::is_js_space;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Content,
    Comment,
    OpenRawBlock,
    CloseRawBlock,
    EndRawBlock,
    OpenSexpr,
    CloseSexpr,
    OpenPartial,
    OpenPartialBlock,
    OpenBlock,
    OpenEndBlock,
    Inverse,
    OpenInverse,
    OpenInverseChain,
    OpenUnescaped,
    Open,
    Equals,
    Id,
    Sep,
    Close,
    CloseUnescaped,
    Str,
    Number,
    Boolean,
    Undefined,
    Null,
    Data,
    OpenBlockParams,
    CloseBlockParams,
    Invalid,
    Eof,
}

/// A 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pos {
    pub line: u32,
    pub col: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub kind: Kind,
    /// The matched source span.
    pub start: usize,
    pub end: usize,
    /// The token's value (`yytext` after the lexer action): a span of the source unless the
    /// action rewrote it (string and segment-literal unescaping).
    pub text: Text,
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub(crate) enum Text {
    Span(usize, usize),
    Owned(Box<str>),
}

impl Token {
    pub(crate) fn text<'s>(&'s self, src: &'s str) -> &'s str {
        match &self.text {
            Text::Span(a, b) => &src[*a..*b],
            Text::Owned(s) => s,
        }
    }

    /// `stripFlags(open, close)`: `~` right after the opening `{{` / right before the closing `}}`.
    pub(crate) fn strip_open(&self, src: &str) -> bool {
        src.as_bytes().get(self.start + 2) == Some(&b'~')
    }

    pub(crate) fn strip_close(&self, src: &str) -> bool {
        self.end >= self.start + 3 && src.as_bytes()[self.end - 3] == b'~'
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LexError {
    pub pos: Pos,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Initial,
    Mu,
    Emu,
    Com,
    Raw,
}

/// Tokenizes a whole template (tests; the parser pulls tokens from a [`Lexer`]).
#[cfg(test)]
pub(crate) fn tokenize(src: &str) -> (Vec<Token>, Option<LexError>) {
    let mut lexer = Lexer::new(src);
    let mut tokens = Vec::new();
    while let Some(token) = lexer.next_token() {
        tokens.push(token);
    }
    (tokens, lexer.error.take())
}

#[derive(Debug, Default)]
struct Cursor {
    offset: usize,
    line: u32,
    col: u32,
    prev_cr: bool,
}

/// The lexer, pulled one token at a time. A lexical error ends the stream (`next_token`
/// returns `None` and [`Lexer::error`] says why), so the parser reports an earlier syntax
/// error first, like jison does.
pub(crate) struct Lexer<'s> {
    src: &'s str,
    b: &'s [u8],
    p: usize,
    states: Vec<State>,
    /// Tokens produced by the last step (at most one).
    tokens: Vec<Token>,
    cursor: Cursor,
    done: bool,
    pub error: Option<LexError>,
}

impl<'s> Lexer<'s> {
    pub(crate) fn new(src: &'s str) -> Lexer<'s> {
        Lexer {
            src,
            b: src.as_bytes(),
            p: 0,
            states: vec![State::Initial],
            tokens: Vec::with_capacity(1),
            cursor: Cursor::default(),
            done: false,
            error: None,
        }
    }

    /// The next token; `None` after `Eof`, after an INVALID token (the grammar never accepts
    /// one, and stopping keeps pathological inputs linear) or on a lexical error.
    pub(crate) fn next_token(&mut self) -> Option<Token> {
        loop {
            if let Some(token) = self.tokens.pop() {
                if token.kind == Kind::Invalid {
                    self.done = true;
                }
                return Some(token);
            }
            if self.done {
                return None;
            }
            if self.p >= self.b.len() {
                let end = self.b.len();
                self.push_span(Kind::Eof, end, end);
                self.done = true;
                continue;
            }
            let step = match self.state() {
                State::Initial => self.lex_initial(),
                State::Emu => self.lex_emu(),
                State::Com => self.lex_com(),
                State::Raw => self.lex_raw(),
                State::Mu => {
                    self.lex_mu();
                    Ok(())
                }
            };
            if let Err(error) = step {
                self.error = Some(error);
                self.done = true;
            }
        }
    }

    fn state(&self) -> State {
        *self.states.last().unwrap_or(&State::Initial)
    }

    fn pop_state(&mut self) {
        if self.states.len() > 1 {
            self.states.pop();
        } else {
            self.states[0] = State::Initial;
        }
    }

    /// Position of a byte offset; offsets must be requested in increasing order.
    fn pos_at(&mut self, offset: usize) -> Pos {
        let c = &mut self.cursor;
        if c.line == 0 {
            c.line = 1;
            c.col = 0;
        }
        let end = offset.min(self.b.len());
        while c.offset < end {
            let byte = self.b[c.offset];
            match byte {
                b'\n' => {
                    if !c.prev_cr {
                        c.line += 1;
                    }
                    c.col = 0;
                    c.prev_cr = false;
                }
                b'\r' => {
                    c.line += 1;
                    c.col = 0;
                    c.prev_cr = true;
                }
                _ => {
                    if byte & 0xC0 != 0x80 {
                        c.col += 1;
                    }
                    c.prev_cr = false;
                }
            }
            c.offset += 1;
        }
        Pos {
            line: c.line,
            col: c.col + 1,
        }
    }

    fn push(&mut self, kind: Kind, start: usize, end: usize, text: Text) {
        let pos = self.pos_at(start);
        self.tokens.push(Token {
            kind,
            start,
            end,
            text,
            pos,
        });
    }

    fn push_span(&mut self, kind: Kind, start: usize, end: usize) {
        self.push(kind, start, end, Text::Span(start, end));
    }

    fn error(&mut self, offset: usize) -> LexError {
        let pos = self.pos_at(offset);
        let snippet: String = self.src[offset..].chars().take(20).collect();
        LexError {
            pos,
            message: format!("Lexical error: unrecognized text {snippet:?}"),
        }
    }

    fn find(&self, from: usize, needle: &[u8]) -> Option<usize> {
        let hay = self.b.get(from..)?;
        hay.windows(needle.len())
            .position(|w| w == needle)
            .map(|i| i + from)
    }

    /// Next `{{` at or after `from`, or `None` if a NUL byte or the end comes first.
    fn find_mustache_before_nul(&self, from: usize) -> Result<usize, Option<usize>> {
        let mut i = from;
        let b = self.b;
        while i < b.len() {
            match b[i] {
                0 => return Err(Some(i)),
                b'{' if b.get(i + 1) == Some(&b'{') => return Ok(i),
                _ => i += 1,
            }
        }
        Err(None)
    }

    /// Rules 0, 1 and 44 of the INITIAL state.
    fn lex_initial(&mut self) -> Result<(), LexError> {
        let p = self.p;
        match self.find_mustache_before_nul(p) {
            Ok(q) => {
                // [^\x00]*?/("{{")
                let text = &self.b[p..q];
                let (value_end, next) = if text.ends_with(b"\\\\") {
                    (q - 1, State::Mu)
                } else if text.ends_with(b"\\") {
                    (q - 1, State::Emu)
                } else {
                    (q, State::Mu)
                };
                self.states.push(next);
                self.p = q;
                if value_end > p {
                    self.push(Kind::Content, p, q, Text::Span(p, value_end));
                }
                Ok(())
            }
            Err(nul) => {
                // [^\x00]+
                let end = nul.unwrap_or(self.b.len());
                if end == p {
                    return Err(self.error(p));
                }
                self.p = end;
                self.push_span(Kind::Content, p, end);
                Ok(())
            }
        }
    }

    /// Rule 2: `[^\x00]{2,}?/("{{"|"\\{{"|"\\\\{{"|<<EOF>>)`.
    fn lex_emu(&mut self) -> Result<(), LexError> {
        let p = self.p;
        let b = self.b;
        let mut r = p;
        let mut count = 0usize;
        loop {
            if r >= b.len() {
                if count >= 2 {
                    break;
                }
                return Err(self.error(p));
            }
            if count >= 2
                && (b[r..].starts_with(b"{{")
                    || b[r..].starts_with(b"\\{{")
                    || b[r..].starts_with(b"\\\\{{"))
            {
                break;
            }
            if b[r] == 0 {
                return Err(self.error(p));
            }
            r += utf8_width(b[r]);
            count += 1;
        }
        self.pop_state();
        self.p = r;
        self.push_span(Kind::Content, p, r);
        Ok(())
    }

    /// Rule 6: `[\s\S]*?"--"{RIGHT_STRIP}?"}}"`.
    fn lex_com(&mut self) -> Result<(), LexError> {
        let p = self.p;
        let mut i = p;
        let end = loop {
            let Some(dash) = self.find(i, b"--") else {
                return Err(self.error(p));
            };
            let rest = &self.b[dash + 2..];
            if rest.starts_with(b"}}") {
                break dash + 4;
            }
            if rest.starts_with(b"~}}") {
                break dash + 5;
            }
            i = dash + 1;
        };
        self.pop_state();
        self.p = end;
        self.push_span(Kind::Comment, p, end);
        Ok(())
    }

    /// Rules 3, 4 and 5 of the raw-block state.
    fn lex_raw(&mut self) -> Result<(), LexError> {
        let p = self.p;
        let b = self.b;
        if b[p..].starts_with(b"{{{{") {
            // "{{{{"/[^/]
            if b.get(p + 4).is_some_and(|&c| c != b'/') {
                self.states.push(State::Raw);
                self.p = p + 4;
                self.push_span(Kind::Content, p, p + 4);
                return Ok(());
            }
            // "{{{{/"{ID}/[=}\s\/.]"}}}}"
            if b.get(p + 4) == Some(&b'/') {
                let name_start = p + 5;
                let name_end = self.id_run(name_start);
                if name_end > name_start && b[name_end..].starts_with(b"}}}}") {
                    let end = name_end + 4;
                    self.pop_state();
                    self.p = end;
                    if self.state() == State::Raw {
                        self.push_span(Kind::Content, p, end);
                    } else {
                        self.push(Kind::EndRawBlock, p, end, Text::Span(name_start, name_end));
                    }
                    return Ok(());
                }
            }
        }
        // [^\x00]+?/("{{{{")
        let mut i = p;
        loop {
            if i >= b.len() || b[i] == 0 {
                return Err(self.error(p));
            }
            i += utf8_width(b[i]);
            if b[i..].starts_with(b"{{{{") {
                break;
            }
        }
        self.p = i;
        self.push_span(Kind::Content, p, i);
        Ok(())
    }

    fn char_at(&self, i: usize) -> Option<char> {
        self.src.get(i..).and_then(|s| s.chars().next())
    }

    /// End of the run of `{ID}` characters starting at `i`.
    fn id_run(&self, mut i: usize) -> usize {
        while let Some(c) = self.char_at(i) {
            if !is_id_char(c) {
                break;
            }
            i += c.len_utf8();
        }
        i
    }

    fn skip_space(&self, mut i: usize) -> usize {
        while let Some(c) = self.char_at(i) {
            if !is_js_space(c) {
                break;
            }
            i += c.len_utf8();
        }
        i
    }

    fn lookahead(&self, i: usize, pred: fn(char) -> bool) -> bool {
        self.char_at(i).is_some_and(pred)
    }

    /// Rules 7–43 of the `mu` state, in order.
    fn lex_mu(&mut self) {
        let p = self.p;
        let b = self.b;
        let rest = &b[p..];
        let c = rest[0];

        // 7, 8: ( )
        if c == b'(' {
            return self.emit(Kind::OpenSexpr, p, p + 1);
        }
        if c == b')' {
            return self.emit(Kind::CloseSexpr, p, p + 1);
        }
        // 9, 10: {{{{ }}}}
        if rest.starts_with(b"{{{{") {
            return self.emit(Kind::OpenRawBlock, p, p + 4);
        }
        if rest.starts_with(b"}}}}") {
            self.pop_state();
            self.states.push(State::Raw);
            return self.emit(Kind::CloseRawBlock, p, p + 4);
        }
        if rest.starts_with(b"{{") {
            self.lex_open(p);
            return;
        }
        // 24: =
        if c == b'=' {
            return self.emit(Kind::Equals, p, p + 1);
        }
        // 25, 26, 27: .. . SEP
        if rest.starts_with(b"..") {
            return self.emit(Kind::Id, p, p + 2);
        }
        if c == b'.' && self.lookahead(p + 1, is_id_lookahead) {
            return self.emit(Kind::Id, p, p + 1);
        }
        if c == b'.' || c == b'/' {
            return self.emit(Kind::Sep, p, p + 1);
        }
        // 28: whitespace
        let after_space = self.skip_space(p);
        if after_space > p {
            self.p = after_space;
            return;
        }
        // 29, 30: }~}} ~}}
        if c == b'}' {
            let tilde = usize::from(rest.get(1) == Some(&b'~'));
            if rest[1 + tilde..].starts_with(b"}}") {
                self.pop_state();
                return self.emit(Kind::CloseUnescaped, p, p + 3 + tilde);
            }
        }
        {
            let tilde = usize::from(c == b'~');
            if rest[tilde..].starts_with(b"}}") {
                self.pop_state();
                return self.emit(Kind::Close, p, p + 2 + tilde);
            }
        }
        // 31, 32: strings
        if (c == b'"' || c == b'\'')
            && let Some(end) = scan_delimited(b, p, c, c)
        {
            {
                let inner = &self.src[p + 1..end - 1];
                let escaped = [b'\\', c];
                let text = if inner.as_bytes().windows(2).any(|w| w == escaped) {
                    let needle = if c == b'"' { "\\\"" } else { "\\'" };
                    Text::Owned(
                        inner
                            .replace(needle, if c == b'"' { "\"" } else { "'" })
                            .into(),
                    )
                } else {
                    Text::Span(p + 1, end - 1)
                };
                self.p = end;
                self.push(Kind::Str, p, end, text);
                return;
            }
        }
        // 33: @
        if c == b'@' {
            return self.emit(Kind::Data, p, p + 1);
        }
        // 34–37: keywords followed by {LITERAL_LOOKAHEAD}
        for (word, kind) in [
            (&b"true"[..], Kind::Boolean),
            (b"false", Kind::Boolean),
            (b"undefined", Kind::Undefined),
            (b"null", Kind::Null),
        ] {
            if rest.starts_with(word) && self.lookahead(p + word.len(), is_literal_lookahead) {
                return self.emit(kind, p, p + word.len());
            }
        }
        // 38: -?[0-9]+(?:\.[0-9]+)?/{LITERAL_LOOKAHEAD}
        if let Some(end) = self.number_end(p) {
            return self.emit(Kind::Number, p, end);
        }
        // 39: as\s+|
        if rest.starts_with(b"as") {
            let after = self.skip_space(p + 2);
            if after > p + 2 && b.get(after) == Some(&b'|') {
                return self.emit(Kind::OpenBlockParams, p, after + 1);
            }
        }
        // 40: |
        if c == b'|' {
            return self.emit(Kind::CloseBlockParams, p, p + 1);
        }
        // 41: {ID}/{LOOKAHEAD}
        let id_end = self.id_run(p);
        if id_end > p && self.lookahead(id_end, is_id_lookahead) {
            return self.emit(Kind::Id, p, id_end);
        }
        // 42: '[' ('\\]' | [^\]])* ']'
        if c == b'['
            && let Some(end) = scan_delimited(b, p, b'[', b']')
        {
            {
                let raw = &self.src[p..end];
                let text = if raw.contains('\\') {
                    Text::Owned(unescape_segment(raw).into())
                } else {
                    Text::Span(p, end)
                };
                self.p = end;
                self.push(Kind::Id, p, end, text);
                return;
            }
        }
        // 43: . (any character)
        let width = self.char_at(p).map_or(1, char::len_utf8);
        self.emit(Kind::Invalid, p, p + width);
    }

    fn emit(&mut self, kind: Kind, start: usize, end: usize) {
        self.p = end;
        self.push_span(kind, start, end);
    }

    /// Rules 11–23: everything starting with `{{` inside a mustache.
    fn lex_open(&mut self, p: usize) {
        let b = self.b;
        let r = p + 2 + usize::from(b.get(p + 2) == Some(&b'~'));
        let at = |i: usize| b.get(i).copied();
        match at(r) {
            Some(b'>') => return self.emit(Kind::OpenPartial, p, r + 1),
            Some(b'#') if at(r + 1) == Some(b'>') => {
                return self.emit(Kind::OpenPartialBlock, p, r + 2);
            }
            Some(b'#') => {
                let end = r + 1 + usize::from(at(r + 1) == Some(b'*'));
                return self.emit(Kind::OpenBlock, p, end);
            }
            Some(b'/') => return self.emit(Kind::OpenEndBlock, p, r + 1),
            Some(b'^') => {
                // 15: "{{"~?"^"\s*~?"}}"
                let mut i = self.skip_space(r + 1);
                if at(i) == Some(b'~') {
                    i += 1;
                }
                if b[i.min(b.len())..].starts_with(b"}}") {
                    self.pop_state();
                    return self.emit(Kind::Inverse, p, i + 2);
                }
            }
            _ => {}
        }
        // 16: "{{"~?\s*"else"\s*~?"}}"
        let else_at = self.skip_space(r);
        if b[else_at..].starts_with(b"else") {
            let mut i = self.skip_space(else_at + 4);
            if at(i) == Some(b'~') {
                i += 1;
            }
            if b[i.min(b.len())..].starts_with(b"}}") {
                self.pop_state();
                return self.emit(Kind::Inverse, p, i + 2);
            }
        }
        // 17: "{{"~?"^"
        if at(r) == Some(b'^') {
            return self.emit(Kind::OpenInverse, p, r + 1);
        }
        // 18: "{{"~?\s*"else"\b
        if b[else_at..].starts_with(b"else")
            && !at(else_at + 4).is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
        {
            return self.emit(Kind::OpenInverseChain, p, else_at + 4);
        }
        match at(r) {
            // 19, 20
            Some(b'{') => return self.emit(Kind::OpenUnescaped, p, r + 1),
            Some(b'&') => return self.emit(Kind::Open, p, r + 1),
            Some(b'!') => {
                // 21: "{{"~?"!--" re-lexed in the `com` state
                if b[r + 1..].starts_with(b"--") {
                    self.pop_state();
                    self.states.push(State::Com);
                    return;
                }
                // 22: "{{"~?"!"[\s\S]*?"}}"
                if let Some(close) = self.find(r + 1, b"}}") {
                    self.pop_state();
                    return self.emit(Kind::Comment, p, close + 2);
                }
            }
            _ => {}
        }
        // 23: "{{"~?"*"?
        let end = r + usize::from(at(r) == Some(b'*'));
        self.emit(Kind::Open, p, end);
    }

    fn number_end(&self, p: usize) -> Option<usize> {
        let b = self.b;
        let mut i = p;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        let digits_start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == digits_start {
            return None;
        }
        if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            let mut j = i + 1;
            while b.get(j).is_some_and(u8::is_ascii_digit) {
                j += 1;
            }
            return self.lookahead(j, is_literal_lookahead).then_some(j);
        }
        self.lookahead(i, is_literal_lookahead).then_some(i)
    }
}

fn utf8_width(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// `{ID}`: anything but whitespace and ``!"#%&'()*+,./;<=>@[\]^`{|}~``.
pub(crate) fn is_id_char(c: char) -> bool {
    if c.is_ascii() {
        !(matches!(c, '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' ')
            || matches!(
                c,
                '!' | '"'
                    | '#'
                    | '%'..=','
                    | '.'
                    | '/'
                    | ';'..='>'
                    | '@'
                    | '['..='^'
                    | '`'
                    | '{'..='~'
            ))
    } else {
        !is_js_space(c)
    }
}

/// `{LOOKAHEAD}`: `[=~}\s\/.)|]`.
fn is_id_lookahead(c: char) -> bool {
    matches!(c, '=' | '~' | '}' | '/' | '.' | ')' | '|') || is_js_space(c)
}

/// `{LITERAL_LOOKAHEAD}`: `[~}\s)]`.
fn is_literal_lookahead(c: char) -> bool {
    matches!(c, '~' | '}' | ')') || is_js_space(c)
}

/// Matches `open ( '\' close | [^close] )* close` with JavaScript backtracking semantics:
/// the token ends at the first unescaped `close`; failing that, at the last escaped one.
/// Returns the end offset (after the closing delimiter).
fn scan_delimited(b: &[u8], p: usize, open: u8, close: u8) -> Option<usize> {
    debug_assert_eq!(b[p], open);
    let mut i = p + 1;
    let mut last_escaped: Option<usize> = None;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&close) {
            last_escaped = Some(i + 1);
            i += 2;
            continue;
        }
        if b[i] == close {
            return Some(i + 1);
        }
        i += 1;
    }
    last_escaped.map(|q| q + 1)
}

/// `yytext.replace(/\\([\\\]])/g, '$1')` for a segment literal.
fn unescape_segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && matches!(chars.peek(), Some('\\' | ']')) {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Kind> {
        let (tokens, err) = tokenize(src);
        assert!(err.is_none(), "{err:?}");
        tokens.iter().map(|t| t.kind).collect()
    }

    #[test]
    fn basic_tokens() {
        use Kind::*;
        assert_eq!(
            kinds("a {{foo.bar}} b"),
            vec![Content, Open, Id, Sep, Id, Close, Content, Eof]
        );
        assert_eq!(
            kinds("{{#if x}}y{{else}}z{{/if}}"),
            vec![
                OpenBlock,
                Id,
                Id,
                Close,
                Content,
                Inverse,
                Content,
                OpenEndBlock,
                Id,
                Close,
                Eof
            ]
        );
        assert_eq!(
            kinds("{{else if x}}"),
            vec![OpenInverseChain, Id, Id, Close, Eof]
        );
        assert_eq!(kinds("{{elsewhere}}"), vec![Open, Id, Close, Eof]);
        assert_eq!(
            kinds("{{{x}}}{{& y}}"),
            vec![OpenUnescaped, Id, CloseUnescaped, Open, Id, Close, Eof]
        );
        assert_eq!(kinds("{{!-- a }} --}}x"), vec![Comment, Content, Eof]);
        assert_eq!(kinds("{{! a }}"), vec![Comment, Eof]);
        assert_eq!(
            kinds("{{f 'a\\'b' 1.5 -2 true null undefined}}"),
            vec![
                Open, Id, Str, Number, Number, Boolean, Null, Undefined, Close, Eof
            ]
        );
        assert_eq!(
            kinds("{{x.[0]}}{{[a b]}}"),
            vec![Open, Id, Sep, Id, Close, Open, Id, Close, Eof]
        );
        assert_eq!(
            kinds("{{#each x as |a b|}}{{/each}}"),
            vec![
                OpenBlock,
                Id,
                Id,
                OpenBlockParams,
                Id,
                Id,
                CloseBlockParams,
                Close,
                OpenEndBlock,
                Id,
                Close,
                Eof
            ]
        );
    }

    #[test]
    fn escaped_mustaches() {
        let src = "a\\{{b}} {{c}}";
        let (tokens, _) = tokenize(src);
        let texts: Vec<_> = tokens
            .iter()
            .map(|t| (t.kind, t.text(src).to_owned()))
            .collect();
        assert_eq!(texts[0], (Kind::Content, "a".to_owned()));
        assert_eq!(texts[1], (Kind::Content, "{{b}} ".to_owned()));
        assert_eq!(texts[2].0, Kind::Open);
        let src = "a\\\\{{b}}";
        let (tokens, _) = tokenize(src);
        assert_eq!(tokens[0].text(src), "a\\");
        assert_eq!(tokens[1].kind, Kind::Open);
    }

    #[test]
    fn string_backtracking() {
        let src = "{{f \"a\\\"}}";
        let (tokens, _) = tokenize(src);
        assert_eq!(tokens[2].kind, Kind::Str);
        assert_eq!(tokens[2].text(src), "a\\");
    }

    #[test]
    fn positions() {
        let src = "a\nbc {{x}}\r\n{{y}}";
        let (tokens, _) = tokenize(src);
        assert_eq!(tokens[1].pos, Pos { line: 2, col: 4 });
        assert_eq!(tokens[5].pos, Pos { line: 3, col: 1 });
    }

    #[test]
    fn lexical_errors() {
        assert!(tokenize("a\0b").1.is_some());
        assert!(tokenize("{{!-- never closed").1.is_some());
    }
}
