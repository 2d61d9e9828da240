//! The handlebars.js 4.7 grammar (`handlebars.yy`) as a recursive-descent parser, followed by
//! the `WhitespaceControl` pass and the compiler's classification of every call.

use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;

use crate::ast::{self, Base, Builtin, Call, Expr, Key, Lit, Node, Program, Target};
use crate::helpers;
use crate::lexer::{Kind, Lexer, Pos, Text, Token};
use crate::value::{is_js_space, write_js_number};
use crate::{TemplateError, TemplateErrorKind};

/// Maximum nesting of blocks, `{{else if}}` chain links and subexpressions.
pub(crate) const MAX_NESTING: usize = 64;

/// The parsed template and what the renderer needs to know about it.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub program: Program,
    /// Output size of the last render, to size the next one's buffer.
    pub output_hint: AtomicUsize,
    /// Some path climbs to a parent context (`../`): contexts must be tracked.
    pub uses_depths: bool,
    /// Some path names a block parameter (`as |x|`).
    pub uses_block_params: bool,
}

pub(crate) fn parse(name: &str, src: &str) -> Result<Compiled, TemplateError> {
    let mut parser = Parser {
        src,
        name,
        lexer: Lexer::new(src),
        lookahead: VecDeque::with_capacity(2),
        depth: 0,
        sentinel: Token {
            kind: Kind::Eof,
            start: src.len(),
            end: src.len(),
            text: Text::Span(src.len(), src.len()),
            pos: Pos::default(),
        },
    };
    parser.fill();
    let mut root = parser.parse_program()?;
    match parser.peek().kind {
        Kind::Eof => {}
        Kind::OpenEndBlock => {
            let token = parser.peek();
            let found = parser.describe(token);
            return Err(parser.error(
                token.pos,
                format!("{found} closes a block that is not open"),
            ));
        }
        Kind::Inverse | Kind::OpenInverseChain => {
            let token = parser.peek();
            let found = parser.describe(token);
            return Err(parser.error(token.pos, format!("{found} outside of a block")));
        }
        _ => return Err(parser.unexpected("end of template")),
    }
    Whitespace { src }.program(&mut root, true);
    let mut lowerer = Lowerer {
        src,
        scopes: Vec::new(),
        uses_depths: false,
        uses_block_params: false,
    };
    let program = lowerer.program(root);
    Ok(Compiled {
        program,
        output_hint: AtomicUsize::new(0),
        uses_depths: lowerer.uses_depths,
        uses_block_params: lowerer.uses_block_params,
    })
}

// ---------------------------------------------------------------------------------------------
// Parse tree (before whitespace control)

#[derive(Debug)]
struct RProgram {
    body: Vec<RNode>,
    /// The synthetic program holding an `{{else if}}` block.
    chained: bool,
    block_params: Option<Vec<Box<str>>>,
}

impl RProgram {
    fn new(body: Vec<RNode>) -> RProgram {
        RProgram {
            body,
            chained: false,
            block_params: None,
        }
    }
}

#[derive(Debug)]
enum RNode {
    Content(RContent),
    Mustache(RCall, bool, Strip),
    Comment(Strip),
    Block(Box<RBlock>),
}

#[derive(Debug)]
struct RContent {
    /// `original`: the token's value (whitespace tests look at this).
    orig: (usize, usize),
    /// `value`: what is left after stripping.
    val: (usize, usize),
    left_stripped: bool,
    right_stripped: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Strip {
    open: bool,
    close: bool,
}

#[derive(Debug)]
struct RBlock {
    call: RCall,
    program: Option<RProgram>,
    inverse: Option<RProgram>,
    open_strip: Strip,
    inverse_strip: Strip,
    close_strip: Strip,
}

#[derive(Debug)]
struct RCall {
    head: RHead,
    params: Vec<RParam>,
    hash: Vec<(Box<str>, RParam)>,
    pos: Pos,
}

#[derive(Debug)]
enum RHead {
    Path(RPath),
    Lit(Lit, Pos),
}

#[derive(Debug)]
enum RParam {
    Path(RPath),
    Lit(Lit),
    Sub(Box<RCall>),
}

#[derive(Debug)]
struct RPath {
    data: bool,
    depth: u32,
    parts: Vec<Box<str>>,
    original: String,
    pos: Pos,
}

/// An `{{else}}` / `{{else if}}` section: `inverseAndProgram` or `inverseChain`.
struct InverseSection {
    strip: Strip,
    program: RProgram,
    chain: bool,
}

/// The opening of a block (`openBlock`, `openInverse`, `openInverseChain`).
struct Open {
    call: RCall,
    block_params: Option<Vec<Box<str>>>,
    strip: Strip,
}

/// A JavaScript value of a path's `original` (literals keep their type), for `validateClose`.
#[derive(Debug, Clone, PartialEq)]
enum Original<'a> {
    Str(&'a str),
    Num(f64),
    Bool(bool),
    Undef,
    Null,
}

impl Original<'_> {
    fn display(&self) -> String {
        match self {
            Original::Str(s) => (*s).to_owned(),
            Original::Num(n) => {
                let mut s = String::new();
                write_js_number(*n, &mut s);
                s
            }
            Original::Bool(b) => b.to_string(),
            Original::Undef => "undefined".to_owned(),
            Original::Null => "null".to_owned(),
        }
    }
}

fn head_original(head: &RHead) -> Original<'_> {
    match head {
        RHead::Path(p) => Original::Str(&p.original),
        RHead::Lit(Lit::Str(s), _) => Original::Str(s),
        RHead::Lit(Lit::Num(n), _) => Original::Num(*n),
        RHead::Lit(Lit::Bool(b), _) => Original::Bool(*b),
        RHead::Lit(Lit::Undef, _) => Original::Undef,
        RHead::Lit(Lit::Null, _) => Original::Null,
    }
}

fn head_pos(head: &RHead) -> Pos {
    match head {
        RHead::Path(p) => p.pos,
        RHead::Lit(_, pos) => *pos,
    }
}

// ---------------------------------------------------------------------------------------------
// Parser

struct Parser<'s> {
    src: &'s str,
    name: &'s str,
    lexer: Lexer<'s>,
    /// The next two tokens (fewer at the end of the stream).
    lookahead: VecDeque<Token>,
    depth: usize,
    /// Stands for the missing tokens after the end of the stream: `Eof`, or `Invalid` when a
    /// lexical error ended it.
    sentinel: Token,
}

impl<'s> Parser<'s> {
    fn fill(&mut self) {
        while self.lookahead.len() < 2 {
            match self.lexer.next_token() {
                Some(token) => self.lookahead.push_back(token),
                None => {
                    if self.lexer.error.is_some() {
                        self.sentinel.kind = Kind::Invalid;
                    }
                    break;
                }
            }
        }
    }

    fn peek(&self) -> &Token {
        self.lookahead.front().unwrap_or(&self.sentinel)
    }

    fn peek_kind_at(&self, offset: usize) -> Kind {
        self.lookahead
            .get(offset)
            .map_or(self.sentinel.kind, |t| t.kind)
    }

    fn bump(&mut self) -> Token {
        let token = match self.lookahead.pop_front() {
            Some(token) => token,
            None => self.sentinel.clone(),
        };
        self.fill();
        token
    }

    fn error(&self, pos: Pos, message: impl Into<String>) -> TemplateError {
        TemplateError {
            template: self.name.to_owned(),
            line: pos.line as usize,
            column: pos.col as usize,
            kind: TemplateErrorKind::Parse,
            message: message.into(),
        }
    }

    /// The error for an unexpected current token (or the lexical error that ended the stream).
    fn unexpected(&self, expected: &str) -> TemplateError {
        if self.lookahead.is_empty()
            && let Some(e) = &self.lexer.error
        {
            return self.error(e.pos, e.message.clone());
        }
        let token = self.peek();
        let found = self.describe(token);
        self.error(token.pos, format!("expected {expected}, found {found}"))
    }

    fn describe(&self, token: &Token) -> String {
        match token.kind {
            Kind::Eof => "end of template".to_owned(),
            Kind::Content => "text".to_owned(),
            _ => {
                let raw = &self.src[token.start..token.end];
                let short: String = raw.chars().take(40).collect();
                if short.len() < raw.len() {
                    format!("`{short}…`")
                } else {
                    format!("`{short}`")
                }
            }
        }
    }

    /// Inside a mustache: the template ends (or turns to garbage with no `}}` left) before it
    /// is closed.
    fn at_unclosed_end(&self) -> bool {
        let token = self.peek();
        match token.kind {
            Kind::Eof => true,
            Kind::Invalid => !self.src[token.start..].contains("}}"),
            _ => false,
        }
    }

    fn enter(&mut self, pos: Pos) -> Result<(), TemplateError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.error(
                pos,
                format!(
                    "nesting too deep (more than {MAX_NESTING} levels of blocks and subexpressions)"
                ),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// `program: statement*` (ends before EOF, `{{else}}`, `{{else if}}` or `{{/…}}`).
    fn parse_program(&mut self) -> Result<RProgram, TemplateError> {
        let mut body = Vec::new();
        loop {
            let token = self.peek();
            match token.kind {
                Kind::Content => {
                    let token = self.bump();
                    let val = match token.text {
                        Text::Span(a, b) => (a, b),
                        Text::Owned(_) => (token.start, token.end),
                    };
                    body.push(RNode::Content(RContent {
                        orig: val,
                        val,
                        left_stripped: false,
                        right_stripped: false,
                    }));
                }
                Kind::Comment => {
                    let token = self.bump();
                    body.push(RNode::Comment(Strip {
                        open: token.strip_open(self.src),
                        close: token.strip_close(self.src),
                    }));
                }
                Kind::Open | Kind::OpenUnescaped => body.push(self.parse_mustache()?),
                Kind::OpenBlock | Kind::OpenInverse => body.push(self.parse_block()?),
                Kind::OpenRawBlock => body.push(self.parse_raw_block()?),
                Kind::OpenPartial | Kind::OpenPartialBlock => {
                    let pos = token.pos;
                    return Err(self.error(pos, "partials are not supported"));
                }
                Kind::Eof | Kind::Inverse | Kind::OpenInverseChain | Kind::OpenEndBlock => break,
                _ => return Err(self.unexpected("text or a mustache")),
            }
        }
        Ok(RProgram::new(body))
    }

    fn is_decorator(&self, token: &Token) -> bool {
        self.src[token.start..token.end].contains('*')
    }

    /// `mustache: OPEN helperName param* hash? CLOSE | OPEN_UNESCAPED … CLOSE_UNESCAPED`.
    fn parse_mustache(&mut self) -> Result<RNode, TemplateError> {
        let open = self.bump();
        if self.is_decorator(&open) {
            return Err(self.error(open.pos, "decorators are not supported"));
        }
        let raw = &self.src[open.start..open.end];
        let flag = raw.as_bytes().get(3).or(raw.as_bytes().get(2)).copied();
        let escaped = flag != Some(b'{') && flag != Some(b'&');
        let (close_kind, close_text) = if open.kind == Kind::OpenUnescaped {
            (Kind::CloseUnescaped, "`}}}`")
        } else {
            (Kind::Close, "`}}`")
        };
        let call = self.parse_call(open.pos, close_text)?;
        let close = self.expect(close_kind, close_text, open.pos)?;
        let strip = Strip {
            open: open.strip_open(self.src),
            close: close.strip_close(self.src),
        };
        Ok(RNode::Mustache(call, escaped, strip))
    }

    /// Consumes the expected closing token; an unexpected end of template is reported at the
    /// opening tag.
    fn expect(&mut self, kind: Kind, text: &str, opened: Pos) -> Result<Token, TemplateError> {
        if self.peek().kind == kind {
            return Ok(self.bump());
        }
        if self.at_unclosed_end() {
            return Err(self.error(
                opened,
                format!("unclosed mustache: expected {text} before the end of the template"),
            ));
        }
        Err(self.unexpected(text))
    }

    /// `helperName param* hash?`.
    fn parse_call(&mut self, pos: Pos, close_text: &str) -> Result<RCall, TemplateError> {
        let head = self.parse_helper_name(pos, close_text)?;
        let mut params = Vec::new();
        let mut hash = Vec::new();
        loop {
            let kind = self.peek().kind;
            if kind == Kind::Id && self.peek_kind_at(1) == Kind::Equals {
                break;
            }
            match kind {
                Kind::Id
                | Kind::Data
                | Kind::Str
                | Kind::Number
                | Kind::Boolean
                | Kind::Undefined
                | Kind::Null
                | Kind::OpenSexpr => params.push(self.parse_param(pos, close_text)?),
                _ => break,
            }
        }
        while self.peek().kind == Kind::Id && self.peek_kind_at(1) == Kind::Equals {
            let key = self.bump();
            self.bump();
            let key = segment_name(key.text(self.src)).into();
            let value = self.parse_param(pos, close_text)?;
            hash.push((key, value));
        }
        Ok(RCall {
            head,
            params,
            hash,
            pos,
        })
    }

    /// `param: helperName | sexpr`.
    fn parse_param(&mut self, opened: Pos, close_text: &str) -> Result<RParam, TemplateError> {
        if self.peek().kind == Kind::OpenSexpr {
            return Ok(RParam::Sub(Box::new(self.parse_sexpr()?)));
        }
        Ok(match self.parse_helper_name(opened, close_text)? {
            RHead::Path(p) => RParam::Path(p),
            RHead::Lit(l, _) => RParam::Lit(l),
        })
    }

    /// `sexpr: OPEN_SEXPR helperName param* hash? CLOSE_SEXPR`.
    fn parse_sexpr(&mut self) -> Result<RCall, TemplateError> {
        let open = self.bump();
        self.enter(open.pos)?;
        let call = self.parse_call(open.pos, "`)`")?;
        self.expect(Kind::CloseSexpr, "`)`", open.pos)?;
        self.leave();
        Ok(call)
    }

    /// `helperName: path | dataName | STRING | NUMBER | BOOLEAN | UNDEFINED | NULL`.
    fn parse_helper_name(&mut self, opened: Pos, close_text: &str) -> Result<RHead, TemplateError> {
        let token = self.peek().clone();
        let lit = match token.kind {
            Kind::Id => return Ok(RHead::Path(self.parse_path(false, token.pos)?)),
            Kind::Data => {
                self.bump();
                if self.peek().kind != Kind::Id {
                    return Err(self.unexpected("a data name after `@`"));
                }
                return Ok(RHead::Path(self.parse_path(true, token.pos)?));
            }
            Kind::Str => Lit::Str(token.text(self.src).into()),
            Kind::Number => Lit::Num(token.text(self.src).parse::<f64>().unwrap_or(f64::NAN)),
            Kind::Boolean => Lit::Bool(token.text(self.src) == "true"),
            Kind::Undefined => Lit::Undef,
            Kind::Null => Lit::Null,
            _ if self.at_unclosed_end() => {
                return Err(self.error(
                    opened,
                    format!(
                        "unclosed mustache: expected {close_text} before the end of the template"
                    ),
                ));
            }
            _ => return Err(self.unexpected("a path or a literal")),
        };
        self.bump();
        Ok(RHead::Lit(lit, token.pos))
    }

    /// `pathSegments: ID (SEP ID)*`, then `preparePath`.
    fn parse_path(&mut self, data: bool, pos: Pos) -> Result<RPath, TemplateError> {
        let mut original = String::from(if data { "@" } else { "" });
        let mut parts: Vec<Box<str>> = Vec::new();
        let mut depth = 0u32;
        let mut separator: Option<Token> = None;
        loop {
            let id = self.bump();
            let raw = id.text(self.src);
            let part = segment_name(raw);
            let is_literal = part.len() != raw.len();
            if let Some(sep) = &separator {
                original.push_str(sep.text(self.src));
            }
            original.push_str(part);
            if !is_literal && (part == ".." || part == "." || part == "this") {
                if !parts.is_empty() {
                    return Err(self.error(pos, format!("Invalid path: {original}")));
                }
                if part == ".." {
                    depth += 1;
                }
            } else {
                parts.push(part.into());
            }
            if self.peek().kind != Kind::Sep {
                break;
            }
            separator = Some(self.bump());
            if self.peek().kind != Kind::Id {
                return Err(self.unexpected("a path segment"));
            }
        }
        Ok(RPath {
            data,
            depth,
            parts,
            original,
            pos,
        })
    }

    /// `blockParams: OPEN_BLOCK_PARAMS ID+ CLOSE_BLOCK_PARAMS`.
    fn parse_block_params(&mut self) -> Result<Option<Vec<Box<str>>>, TemplateError> {
        if self.peek().kind != Kind::OpenBlockParams {
            return Ok(None);
        }
        self.bump();
        let mut names = Vec::new();
        while self.peek().kind == Kind::Id {
            let id = self.bump();
            names.push(segment_name(id.text(self.src)).into());
        }
        if names.is_empty() {
            return Err(self.unexpected("a block parameter name"));
        }
        if self.peek().kind != Kind::CloseBlockParams {
            return Err(self.unexpected("`|`"));
        }
        self.bump();
        Ok(Some(names))
    }

    /// `openBlock` / `openInverse` / `openInverseChain`: `OPEN… helperName param* hash? blockParams? CLOSE`.
    fn parse_open(&mut self) -> Result<Open, TemplateError> {
        let open = self.bump();
        let call = self.parse_call(open.pos, "`}}`")?;
        let block_params = self.parse_block_params()?;
        let close = self.expect(Kind::Close, "`}}`", open.pos)?;
        Ok(Open {
            call,
            block_params,
            strip: Strip {
                open: open.strip_open(self.src),
                close: close.strip_close(self.src),
            },
        })
    }

    /// `block: openBlock program inverseChain? closeBlock | openInverse program inverseAndProgram? closeBlock`.
    fn parse_block(&mut self) -> Result<RNode, TemplateError> {
        let first = self.peek().clone();
        if first.kind == Kind::OpenBlock && self.is_decorator(&first) {
            return Err(self.error(first.pos, "decorators are not supported"));
        }
        let inverted = first.kind == Kind::OpenInverse;
        self.enter(first.pos)?;
        let open = self.parse_open()?;
        let program = self.parse_program()?;
        let section = match self.peek().kind {
            Kind::Inverse => Some(self.parse_inverse_and_program()?),
            Kind::OpenInverseChain if !inverted => Some(self.parse_inverse_chain()?),
            _ => None,
        };
        let close = self.parse_close_block(&open, &first)?;
        let (close_call, close_strip) = close;
        let original = head_original(&open.call.head);
        let closing = head_original(&close_call);
        if original != closing {
            let open_pos = head_pos(&open.call.head);
            return Err(self.error(
                head_pos(&close_call),
                format!(
                    "{} doesn't match {} (the block opened at line {}, column {})",
                    original.display(),
                    closing.display(),
                    open_pos.line,
                    open_pos.col
                ),
            ));
        }
        self.leave();
        Ok(RNode::Block(Box::new(prepare_block(
            open,
            program,
            section,
            Some(close_strip),
            inverted,
        ))))
    }

    /// `closeBlock: OPEN_ENDBLOCK helperName CLOSE`.
    fn parse_close_block(
        &mut self,
        open: &Open,
        first: &Token,
    ) -> Result<(RHead, Strip), TemplateError> {
        if self.peek().kind != Kind::OpenEndBlock {
            if self.peek().kind == Kind::Eof {
                let name = head_original(&open.call.head).display();
                let opener = &self.src[first.start..first.end];
                let message = String::new()
                    + "`"
                    + opener
                    + &name
                    + "}}` is never closed: expected `{{/"
                    + &name
                    + "}}` before the end of the template";
                return Err(self.error(first.pos, message));
            }
            return Err(self.unexpected("a closing `{{/…}}`"));
        }
        let end = self.bump();
        let head = self.parse_helper_name(end.pos, "`}}`")?;
        let close = self.expect(Kind::Close, "`}}`", end.pos)?;
        Ok((
            head,
            Strip {
                open: end.strip_open(self.src),
                close: close.strip_close(self.src),
            },
        ))
    }

    /// `inverseAndProgram: INVERSE program`.
    fn parse_inverse_and_program(&mut self) -> Result<InverseSection, TemplateError> {
        let token = self.bump();
        let strip = Strip {
            open: token.strip_open(self.src),
            close: token.strip_close(self.src),
        };
        let program = self.parse_program()?;
        Ok(InverseSection {
            strip,
            program,
            chain: false,
        })
    }

    /// `inverseChain: openInverseChain program inverseChain? | inverseAndProgram`.
    fn parse_inverse_chain(&mut self) -> Result<InverseSection, TemplateError> {
        let pos = self.peek().pos;
        self.enter(pos)?;
        let open = self.parse_open()?;
        let program = self.parse_program()?;
        let next = match self.peek().kind {
            Kind::Inverse => Some(self.parse_inverse_and_program()?),
            Kind::OpenInverseChain => Some(self.parse_inverse_chain()?),
            _ => None,
        };
        self.leave();
        let strip = open.strip;
        let next_strip = next.as_ref().map(|n| n.strip);
        let inner = prepare_block(open, program, next, next_strip, false);
        let mut chained = RProgram::new(vec![RNode::Block(Box::new(inner))]);
        chained.chained = true;
        Ok(InverseSection {
            strip,
            program: chained,
            chain: true,
        })
    }

    /// `rawBlock: openRawBlock content* END_RAW_BLOCK`.
    fn parse_raw_block(&mut self) -> Result<RNode, TemplateError> {
        let open = self.bump();
        self.enter(open.pos)?;
        let call = self.parse_call(open.pos, "`}}}}`")?;
        self.expect(Kind::CloseRawBlock, "`}}}}`", open.pos)?;
        let mut body = Vec::new();
        while self.peek().kind == Kind::Content {
            let token = self.bump();
            let span = (token.start, token.end);
            body.push(RNode::Content(RContent {
                orig: span,
                val: span,
                left_stripped: false,
                right_stripped: false,
            }));
        }
        if self.peek().kind != Kind::EndRawBlock {
            if self.peek().kind == Kind::Eof {
                return Err(self.error(open.pos, "raw block is never closed"));
            }
            return Err(self.unexpected("raw block content"));
        }
        let end = self.bump();
        let name = end.text(self.src);
        let original = head_original(&call.head);
        if original != Original::Str(name) {
            return Err(self.error(
                head_pos(&call.head),
                format!("{} doesn't match {name}", original.display()),
            ));
        }
        self.leave();
        Ok(RNode::Block(Box::new(RBlock {
            call,
            program: Some(RProgram::new(body)),
            inverse: None,
            open_strip: Strip::default(),
            inverse_strip: Strip::default(),
            close_strip: Strip::default(),
        })))
    }
}

/// `yy.id`: a `[segment literal]` loses its brackets (unless it spans a line break).
fn segment_name(raw: &str) -> &str {
    if raw.len() >= 2
        && raw.starts_with('[')
        && raw.ends_with(']')
        && !raw[1..raw.len() - 1]
            .chars()
            .any(|c| matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}'))
    {
        &raw[1..raw.len() - 1]
    } else {
        raw
    }
}

/// `yy.prepareBlock`.
fn prepare_block(
    open: Open,
    mut program: RProgram,
    section: Option<InverseSection>,
    close_strip: Option<Strip>,
    inverted: bool,
) -> RBlock {
    program.block_params = open.block_params;
    let mut inverse = None;
    let mut inverse_strip = Strip::default();
    if let Some(mut section) = section {
        if section.chain
            && let Some(RNode::Block(first)) = section.program.body.first_mut()
        {
            first.close_strip = close_strip.unwrap_or_default();
        }
        inverse_strip = section.strip;
        inverse = Some(section.program);
    }
    let (program, inverse) = if inverted {
        (inverse, Some(program))
    } else {
        (Some(program), inverse)
    };
    RBlock {
        call: open.call,
        program,
        inverse,
        open_strip: open.strip,
        inverse_strip,
        close_strip: close_strip.unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------------------------
// WhitespaceControl

struct Whitespace<'s> {
    src: &'s str,
}

#[derive(Default)]
struct StripInfo {
    open: bool,
    close: bool,
    open_standalone: bool,
    close_standalone: bool,
    inline_standalone: bool,
}

impl Whitespace<'_> {
    fn orig(&self, c: &RContent) -> &str {
        &self.src[c.orig.0..c.orig.1]
    }

    fn program(&self, program: &mut RProgram, is_root: bool) {
        let body = &mut program.body;
        for i in 0..body.len() {
            let strip = match &mut body[i] {
                RNode::Content(_) => continue,
                RNode::Mustache(_, _, strip) => StripInfo {
                    open: strip.open,
                    close: strip.close,
                    ..StripInfo::default()
                },
                RNode::Comment(strip) => StripInfo {
                    open: strip.open,
                    close: strip.close,
                    inline_standalone: true,
                    ..StripInfo::default()
                },
                RNode::Block(block) => self.block(block),
            };
            let prev_ws = self.is_prev_whitespace(body, Some(i), is_root);
            let next_ws = self.is_next_whitespace(body, Some(i), is_root);
            let open_standalone = strip.open_standalone && prev_ws;
            let close_standalone = strip.close_standalone && next_ws;
            let inline_standalone = strip.inline_standalone && prev_ws && next_ws;
            if strip.close {
                self.omit_right(body, Some(i), true);
            }
            if strip.open {
                self.omit_left(body, Some(i), true);
            }
            if inline_standalone {
                self.omit_right(body, Some(i), false);
                self.omit_left(body, Some(i), false);
            }
            if open_standalone {
                if let RNode::Block(block) = &mut body[i]
                    && let Some(p) = block.program.as_mut().or(block.inverse.as_mut())
                {
                    self.omit_right(&mut p.body, None, false);
                }
                self.omit_left(body, Some(i), false);
            }
            if close_standalone {
                self.omit_right(body, Some(i), false);
                if let RNode::Block(block) = &mut body[i]
                    && let Some(p) = block.inverse.as_mut().or(block.program.as_mut())
                {
                    self.omit_left(&mut p.body, None, false);
                }
            }
        }
    }

    fn block(&self, block: &mut RBlock) -> StripInfo {
        if let Some(p) = block.program.as_mut() {
            self.program(p, false);
        }
        if let Some(p) = block.inverse.as_mut() {
            self.program(p, false);
        }
        let has_inverse = block.program.is_some() && block.inverse.is_some();
        let chained = has_inverse && block.inverse.as_ref().is_some_and(|p| p.chained);

        let open_standalone = self.is_next_whitespace(&main_program(block).body, None, false);
        let close_standalone = {
            let target = if has_inverse {
                first_inverse(block, chained)
            } else {
                Some(main_program(block))
            };
            target.is_some_and(|p| self.is_prev_whitespace(&p.body, None, false))
        };
        let strip = StripInfo {
            open: block.open_strip.open,
            close: block.close_strip.close,
            open_standalone,
            close_standalone,
            inline_standalone: false,
        };

        if block.open_strip.close {
            self.omit_right(&mut main_program_mut(block).body, None, true);
        }
        if has_inverse {
            if block.inverse_strip.open {
                self.omit_left(&mut main_program_mut(block).body, None, true);
            }
            if block.inverse_strip.close
                && let Some(p) = first_inverse_mut(block, chained)
            {
                self.omit_right(&mut p.body, None, true);
            }
            if block.close_strip.open
                && let Some(p) = last_inverse_mut(block)
            {
                self.omit_left(&mut p.body, None, true);
            }
            let prev = self.is_prev_whitespace(&main_program(block).body, None, false);
            let next = first_inverse(block, chained)
                .is_some_and(|p| self.is_next_whitespace(&p.body, None, false));
            if prev && next {
                self.omit_left(&mut main_program_mut(block).body, None, false);
                if let Some(p) = first_inverse_mut(block, chained) {
                    self.omit_right(&mut p.body, None, false);
                }
            }
        } else if block.close_strip.open {
            self.omit_left(&mut main_program_mut(block).body, None, true);
        }
        strip
    }

    fn is_prev_whitespace(&self, body: &[RNode], i: Option<usize>, is_root: bool) -> bool {
        let i = i.unwrap_or(body.len());
        if i == 0 {
            return is_root;
        }
        let RNode::Content(prev) = &body[i - 1] else {
            return false;
        };
        let text = self.orig(prev);
        let trimmed = text.trim_end_matches(is_js_space);
        let trailing = &text[trimmed.len()..];
        if trailing.contains('\n') {
            return true;
        }
        let has_sibling = i >= 2;
        !has_sibling && is_root && trimmed.is_empty()
    }

    fn is_next_whitespace(&self, body: &[RNode], i: Option<usize>, is_root: bool) -> bool {
        let next_index = i.map_or(0, |i| i + 1);
        let Some(next) = body.get(next_index) else {
            return is_root;
        };
        let RNode::Content(next) = next else {
            return false;
        };
        let text = self.orig(next);
        let trimmed = text.trim_start_matches(is_js_space);
        let leading = &text[..text.len() - trimmed.len()];
        if leading.contains('\n') {
            return true;
        }
        let has_sibling = next_index + 1 < body.len();
        !has_sibling && is_root && trimmed.is_empty()
    }

    /// `omitRight`: strip the start of the content node after `i` (or the first node).
    fn omit_right(&self, body: &mut [RNode], i: Option<usize>, multiple: bool) {
        let index = i.map_or(0, |i| i + 1);
        let Some(RNode::Content(c)) = body.get_mut(index) else {
            return;
        };
        if !multiple && c.right_stripped {
            return;
        }
        let value = &self.src[c.val.0..c.val.1];
        let stripped = if multiple {
            value.trim_start_matches(is_js_space)
        } else {
            strip_line_start(value)
        };
        let removed = value.len() - stripped.len();
        c.val.0 += removed;
        c.right_stripped = removed > 0;
    }

    /// `omitLeft`: strip the end of the content node before `i` (or the last node).
    fn omit_left(&self, body: &mut [RNode], i: Option<usize>, multiple: bool) -> bool {
        let index = match i {
            None if body.is_empty() => return false,
            None => body.len() - 1,
            Some(0) => return false,
            Some(i) => i - 1,
        };
        let Some(RNode::Content(c)) = body.get_mut(index) else {
            return false;
        };
        if !multiple && c.left_stripped {
            return false;
        }
        let value = &self.src[c.val.0..c.val.1];
        let stripped = if multiple {
            value.trim_end_matches(is_js_space)
        } else {
            value.trim_end_matches([' ', '\t'])
        };
        let removed = value.len() - stripped.len();
        c.val.1 -= removed;
        c.left_stripped = removed > 0;
        c.left_stripped
    }
}

/// `/^[ \t]*\r?\n?/` removed.
fn strip_line_start(value: &str) -> &str {
    let rest = value.trim_start_matches([' ', '\t']);
    let rest = rest.strip_prefix('\r').unwrap_or(rest);
    rest.strip_prefix('\n').unwrap_or(rest)
}

/// `block.program || block.inverse`.
fn main_program(block: &RBlock) -> &RProgram {
    block
        .program
        .as_ref()
        .or(block.inverse.as_ref())
        .expect("a block has a program or an inverse")
}

fn main_program_mut(block: &mut RBlock) -> &mut RProgram {
    match (&mut block.program, &mut block.inverse) {
        (Some(program), _) => program,
        (None, Some(inverse)) => inverse,
        (None, None) => unreachable!("a block has a program or an inverse"),
    }
}

/// `firstInverse`: the inverse, or for an `{{else if}}` chain the first link's program.
fn first_inverse(block: &RBlock, chained: bool) -> Option<&RProgram> {
    let inverse = block.inverse.as_ref()?;
    if chained {
        match inverse.body.first() {
            Some(RNode::Block(b)) => b.program.as_ref(),
            _ => None,
        }
    } else {
        Some(inverse)
    }
}

fn first_inverse_mut(block: &mut RBlock, chained: bool) -> Option<&mut RProgram> {
    let inverse = block.inverse.as_mut()?;
    if chained {
        match inverse.body.first_mut() {
            Some(RNode::Block(b)) => b.program.as_mut(),
            _ => None,
        }
    } else {
        Some(inverse)
    }
}

/// `lastInverse`: follows `.body[last].program` while the program is chained.
fn last_inverse_mut(block: &mut RBlock) -> Option<&mut RProgram> {
    let mut current = block.inverse.as_mut()?;
    while current.chained {
        let next = match current.body.last_mut() {
            Some(RNode::Block(b)) => b.program.as_mut(),
            _ => None,
        };
        current = next?;
    }
    Some(current)
}

// ---------------------------------------------------------------------------------------------
// Compiler: classify calls, resolve block parameters, build the final AST.

struct Lowerer<'s> {
    src: &'s str,
    /// Declared block parameters of every enclosing program (innermost last).
    scopes: Vec<Option<Vec<Box<str>>>>,
    uses_depths: bool,
    uses_block_params: bool,
}

impl Lowerer<'_> {
    fn program(&mut self, program: RProgram) -> Program {
        self.scopes.push(program.block_params);
        let mut nodes: Vec<Node> = Vec::with_capacity(program.body.len());
        let mut text = String::new();
        for node in program.body {
            match node {
                RNode::Content(c) => text.push_str(&self.src[c.val.0..c.val.1]),
                RNode::Comment(_) => {}
                RNode::Mustache(call, escaped, _) => {
                    flush_text(&mut text, &mut nodes);
                    let call = self.call(call, Site::Mustache);
                    nodes.push(Node::Mustache {
                        call: Box::new(call),
                        escaped,
                    });
                }
                RNode::Block(block) => {
                    flush_text(&mut text, &mut nodes);
                    nodes.push(Node::Block(Box::new(self.block(*block))));
                }
            }
        }
        flush_text(&mut text, &mut nodes);
        self.scopes.pop();
        Program { nodes }
    }

    fn block(&mut self, block: RBlock) -> ast::Block {
        let program = block.program.map(|p| self.program(p));
        let inverse = block.inverse.map(|p| self.program(p));
        ast::Block {
            call: self.call(block.call, Site::Block),
            program,
            inverse,
        }
    }

    fn block_param_index(&self, name: &str) -> Option<(u32, u32)> {
        for (level, scope) in self.scopes.iter().rev().enumerate() {
            if let Some(names) = scope
                && let Some(index) = names.iter().position(|n| &**n == name)
            {
                return Some((level as u32, index as u32));
            }
        }
        None
    }

    fn call(&mut self, call: RCall, site: Site) -> Call {
        let path = match call.head {
            RHead::Path(p) => p,
            // transformLiteralToPath
            RHead::Lit(lit, pos) => {
                let original = match &lit {
                    Lit::Str(s) => s.to_string(),
                    Lit::Num(n) => {
                        let mut s = String::new();
                        write_js_number(*n, &mut s);
                        s
                    }
                    Lit::Bool(b) => b.to_string(),
                    Lit::Undef => "undefined".to_owned(),
                    Lit::Null => "null".to_owned(),
                };
                RPath {
                    data: false,
                    depth: 0,
                    parts: vec![original.clone().into()],
                    original,
                    pos,
                }
            }
        };
        let is_simple = path.parts.len() == 1 && !is_scoped(&path.original) && path.depth == 0;
        let first = path.parts.first().map(|s| &**s);
        let is_block_param =
            is_simple && first.is_some_and(|n| self.block_param_index(n).is_some());
        let has_args = !call.params.is_empty() || !call.hash.is_empty();
        let mut is_helper = !is_block_param && (site == Site::Sub || has_args);
        let is_eligible = !is_block_param && (is_helper || is_simple);
        let known = first.and_then(Builtin::from_name);
        if is_eligible && !is_helper && known.is_some() {
            is_helper = true;
        }
        let params = call.params.into_iter().map(|p| self.param(p)).collect();
        let hash = call
            .hash
            .into_iter()
            .map(|(k, v)| (k, self.param(v)))
            .collect();
        let registered = if is_simple {
            first.and_then(helpers::find)
        } else {
            None
        };
        let target = if is_helper {
            match known {
                Some(builtin) => Target::Known(builtin),
                None => Target::Helper {
                    helper: registered,
                    path: self.path(path),
                },
            }
        } else if is_eligible {
            Target::Ambiguous {
                helper: registered,
                path: self.path(path),
            }
        } else {
            Target::Simple(self.path(path))
        };
        Call {
            target,
            params,
            hash,
            pos: call.pos,
        }
    }

    fn param(&mut self, param: RParam) -> Expr {
        match param {
            RParam::Path(p) => Expr::Path(self.path(p)),
            RParam::Lit(l) => Expr::Lit(l),
            RParam::Sub(call) => Expr::Sub(Box::new(self.call(*call, Site::Sub))),
        }
    }

    /// The compiler's `PathExpression`.
    fn path(&mut self, path: RPath) -> ast::Path {
        let first = path.parts.first().map(|s| &**s);
        let block_param = if path.depth == 0 && !is_scoped(&path.original) {
            first.and_then(|n| self.block_param_index(n))
        } else {
            None
        };
        // `!name`: no segments, or an empty first one (`[]`, `""`), is the context itself.
        let is_context = first.is_none_or(str::is_empty);
        let base = if let Some((level, index)) = block_param {
            self.uses_block_params = true;
            Base::BlockParam { level, index }
        } else if is_context {
            if path.depth > 0 {
                self.uses_depths = true;
            }
            return ast::Path {
                base: Base::Context(path.depth),
                parts: Box::default(),
                original: path.original.into(),
                pos: path.pos,
            };
        } else if !path.data {
            if path.depth > 0 {
                self.uses_depths = true;
            }
            Base::Context(path.depth)
        } else {
            Base::Data(path.depth)
        };
        ast::Path {
            base,
            parts: path.parts.into_iter().map(Key::from_name).collect(),
            original: path.original.into(),
            pos: path.pos,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Site {
    Mustache,
    Block,
    Sub,
}

fn flush_text(text: &mut String, nodes: &mut Vec<Node>) {
    if !text.is_empty() {
        nodes.push(Node::Text(std::mem::take(text).into_boxed_str()));
    }
}

/// `AST.helpers.scopedId`: `/^\.|this\b/`.
fn is_scoped(original: &str) -> bool {
    if original.starts_with('.') {
        return true;
    }
    let bytes = original.as_bytes();
    let mut from = 0;
    while let Some(found) = original[from..].find("this") {
        let end = from + found + 4;
        if !bytes
            .get(end)
            .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_')
        {
            return true;
        }
        from = from + found + 1;
    }
    false
}
