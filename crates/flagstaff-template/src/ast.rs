//! The compiled template: whitespace control applied, helpers classified, block parameters and
//! parent paths resolved. Built once by the parser, walked by the renderer.

use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

use crate::helpers::Helper;
use crate::lexer::Pos;

#[derive(Debug, Clone, Default)]
pub(crate) struct Program {
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Text(Box<str>),
    Mustache { call: Box<Call>, escaped: bool },
    Block(Box<Block>),
}

#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub call: Call,
    /// `options.fn` (absent: `container.noop`).
    pub program: Option<Program>,
    /// `options.inverse` (absent: `container.noop`).
    pub inverse: Option<Program>,
}

/// A mustache, block opening or subexpression: what is called, with what.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub target: Target,
    pub params: Vec<Expr>,
    pub hash: Vec<(Box<str>, Expr)>,
    /// Position of the opening `{{` (or `(` of a subexpression).
    pub pos: Pos,
}

/// handlebars.js `classifySexpr`, decided at compile time.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A plain value lookup (`simpleSexpr`); in strict mode the last segment must exist.
    Simple(Path),
    /// `{{name}}` without arguments: a registered helper if there is one, else a lookup.
    Ambiguous { helper: Option<Helper>, path: Path },
    /// A built-in helper (`knownHelpers`), called by the first segment of the path.
    Known(Builtin),
    /// A call with arguments: the registered helper (simple names only), else whatever the
    /// path resolves to in the context (never a function here), else `helperMissing`.
    Helper { helper: Option<Helper>, path: Path },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    If,
    Unless,
    Each,
    With,
    Log,
    Lookup,
    HelperMissing,
    BlockHelperMissing,
}

impl Builtin {
    pub(crate) fn from_name(name: &str) -> Option<Builtin> {
        Some(match name {
            "if" => Builtin::If,
            "unless" => Builtin::Unless,
            "each" => Builtin::Each,
            "with" => Builtin::With,
            "log" => Builtin::Log,
            "lookup" => Builtin::Lookup,
            "helperMissing" => Builtin::HelperMissing,
            "blockHelperMissing" => Builtin::BlockHelperMissing,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Path(Path),
    Lit(Lit),
    Sub(Box<Call>),
}

#[derive(Debug, Clone)]
pub(crate) enum Lit {
    Str(Box<str>),
    Num(f64),
    Bool(bool),
    Undef,
    Null,
}

#[derive(Debug, Clone)]
pub(crate) struct Path {
    pub base: Base,
    /// Segments after the base (for block parameters, the first is the parameter's name).
    pub parts: Box<[Key]>,
    /// The path as written (`original` in handlebars.js), for messages.
    pub original: Box<str>,
    pub pos: Pos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Base {
    /// The context `depth` levels up (`this`, `..`, `../..`).
    Context(u32),
    /// A data frame `depth` levels up (`@index`, `@../index`).
    Data(u32),
    /// Block parameter `index` of the program `level` levels up.
    BlockParam { level: u32, index: u32 },
}

#[derive(Debug)]
pub(crate) struct Key {
    pub name: Box<str>,
    /// The name as an array index, when it is one.
    pub index: Option<u32>,
    /// Where the key was found in the last object looked up here (an inline cache: objects
    /// of the same shape keep their keys at the same position).
    pub hint: AtomicU32,
}

impl Clone for Key {
    fn clone(&self) -> Key {
        Key {
            name: self.name.clone(),
            index: self.index,
            hint: AtomicU32::new(self.hint.load(Ordering::Relaxed)),
        }
    }
}

impl Key {
    pub(crate) fn from_name(name: Box<str>) -> Key {
        Key {
            index: crate::value::array_index(&name),
            name,
            hint: AtomicU32::new(0),
        }
    }

    pub(crate) fn new(name: &str) -> Key {
        Key {
            name: name.into(),
            index: crate::value::array_index(name),
            hint: AtomicU32::new(0),
        }
    }

    /// `object[name]` for an own property of a JSON object.
    #[inline]
    pub(crate) fn get<'v>(&self, map: &'v serde_json::Map<String, Value>) -> Option<&'v Value> {
        let len = map.len();
        if len > LINEAR_LOOKUP_MAX {
            return map.get(&*self.name);
        }
        let name = self.name.as_bytes();
        let hint = self.hint.load(Ordering::Relaxed) as usize;
        if hint < len
            && let Some((k, v)) = map.iter().nth(hint)
            && bytes_eq(k.as_bytes(), name)
        {
            return Some(v);
        }
        for (i, (k, v)) in map.iter().enumerate() {
            if bytes_eq(k.as_bytes(), name) {
                self.hint.store(i as u32, Ordering::Relaxed);
                return Some(v);
            }
        }
        None
    }
}

/// Objects up to this size are searched linearly (cheaper than hashing the key).
const LINEAR_LOOKUP_MAX: usize = 32;

#[inline]
fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.first() == b.first() && a == b
}
