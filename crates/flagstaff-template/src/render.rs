//! The tree-walking renderer: handlebars.js 4.7.7 runtime semantics over the compiled AST.

use std::cell::Cell;
use std::sync::atomic::Ordering;

use serde_json::Value;
use typed_arena::Arena;

use crate::ast::{Base, Block, Builtin, Call, Expr, Key, Lit, Node, Path, Program, Target};
use crate::helpers::{self, Catalogue, Helper, HelperArg, HelperEnv, Produced};
use crate::lexer::Pos;
use crate::parser::Compiled;
use crate::value::{
    ARRAY_PROTOTYPE, JsError, OBJECT_PROTOTYPE, Prim, Val, js_object_keys, js_string,
    string_to_number, to_primitive, utf16_len, utf16_unit_at, write_go_string, write_js_number,
    write_js_string,
};
use crate::{Compat, RenderLimits, RenderOptions, TemplateError, TemplateErrorKind};

pub(crate) fn render(
    name: &str,
    compiled: &Compiled,
    context: &Value,
    options: RenderOptions,
    limits: RenderLimits,
) -> Result<String, TemplateError> {
    // Helpers may render templates themselves (`edgeGridAuth` renders its path argument,
    // which can come from the context): bound that recursion.
    let Some(_nested) = NestedRender::enter() else {
        return Err(TemplateError {
            template: name.to_owned(),
            line: 1,
            column: 1,
            kind: TemplateErrorKind::Render,
            message: format!(
                "templates rendered from helpers nest more than {MAX_NESTED_RENDERS} deep"
            ),
        });
    };
    let strings = Arena::new();
    let root = Val::from_json(context);
    let mut renderer = Renderer {
        name,
        strings: &strings,
        root_json: context,
        strict: options.strict,
        compat: options.compat,
        go: options.compat == Compat::Go,
        uses_depths: compiled.uses_depths,
        uses_block_params: compiled.uses_block_params,
        out: String::with_capacity(
            compiled
                .output_hint
                .load(Ordering::Relaxed)
                .min(limits.max_output_bytes),
        ),
        depths: Vec::new(),
        frames: vec![Frame {
            root,
            iteration: None,
            parent: None,
        }],
        block_params: Vec::new(),
        steps: 0,
        limits,
    };
    if renderer.uses_depths {
        renderer.depths.push(root);
    }
    match renderer.nodes(&compiled.program.nodes, &root, 0) {
        Ok(()) => {
            let len = renderer.out.len();
            compiled.output_hint.store(len + len / 8, Ordering::Relaxed);
            Ok(renderer.out)
        }
        Err(fail) => Err(TemplateError {
            template: name.to_owned(),
            line: fail.pos.line as usize,
            column: fail.pos.col as usize,
            kind: fail.kind,
            message: fail.message,
        }),
    }
}

/// Evaluated helper parameters (no allocation for up to four).
struct Args<'a> {
    inline: [Val<'a>; 4],
    len: usize,
    spill: Vec<Val<'a>>,
}

impl<'a> Args<'a> {
    fn as_slice(&self) -> &[Val<'a>] {
        if self.len <= self.inline.len() {
            &self.inline[..self.len]
        } else {
            &self.spill
        }
    }
}

/// A render error with the position of the offending mustache or path.
/// How deeply renders may nest (a helper rendering a template while rendering one).
const MAX_NESTED_RENDERS: u32 = 8;

thread_local! {
    static NESTED_RENDERS: Cell<u32> = const { Cell::new(0) };
}

/// One level of render nesting on this thread, released on drop (also when unwinding).
struct NestedRender;

impl NestedRender {
    fn enter() -> Option<NestedRender> {
        NESTED_RENDERS.with(|depth| {
            let current = depth.get();
            if current >= MAX_NESTED_RENDERS {
                return None;
            }
            depth.set(current + 1);
            Some(NestedRender)
        })
    }
}

impl Drop for NestedRender {
    fn drop(&mut self) {
        NESTED_RENDERS.with(|depth| depth.set(depth.get().saturating_sub(1)));
    }
}

/// (Boxed: results stay small on the hot, successful path.)
type Fail = Box<Failure>;

struct Failure {
    kind: TemplateErrorKind,
    message: String,
    pos: Pos,
}

#[cold]
fn at(error: JsError, pos: Pos) -> Fail {
    Box::new(Failure {
        kind: error.kind,
        message: error.message,
        pos,
    })
}

#[cold]
fn render_error(message: impl Into<String>, pos: Pos) -> Fail {
    at(JsError::render(message), pos)
}

/// A handlebars.js data frame (`@root`, `@index`, …).
struct Frame<'a> {
    root: Val<'a>,
    iteration: Option<Iteration<'a>>,
    /// `_parent`: the frame this one was created from (`createFrame`).
    parent: Option<usize>,
}

#[derive(Clone)]
struct Iteration<'a> {
    key: Val<'a>,
    index: f64,
    first: bool,
    last: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A helper parameter: no strict check of the last segment.
    Param,
    /// A mustache or block value (`path.strict`).
    Callee,
    /// The fallback lookup of a helper call (`path.strict` and `path.falsy`).
    HelperCallee,
}

struct Renderer<'a> {
    name: &'a str,
    /// Strings made while rendering (helper results).
    strings: &'a Arena<String>,
    root_json: &'a Value,
    strict: bool,
    compat: Compat,
    go: bool,
    uses_depths: bool,
    uses_block_params: bool,
    out: String,
    /// handlebars.js `depths` (innermost last), tracked only when a path uses `../`.
    depths: Vec<Val<'a>>,
    frames: Vec<Frame<'a>>,
    /// One entry per program invocation (innermost last), when block parameters are used.
    block_params: Vec<Option<[Val<'a>; 2]>>,
    steps: u64,
    limits: RenderLimits,
}

impl<'a> Renderer<'a> {
    fn tick(&mut self, pos: Pos) -> Result<(), Fail> {
        self.steps += 1;
        if self.steps > self.limits.max_steps {
            return Err(render_error(
                format!(
                    "render aborted: more than {} evaluation steps",
                    self.limits.max_steps
                ),
                pos,
            ));
        }
        Ok(())
    }

    fn check_output(&self, pos: Pos) -> Result<(), Fail> {
        if self.out.len() > self.limits.max_output_bytes {
            return Err(render_error(
                format!(
                    "render aborted: output exceeds {} bytes",
                    self.limits.max_output_bytes
                ),
                pos,
            ));
        }
        Ok(())
    }

    fn nodes(&mut self, nodes: &'a [Node], this: &Val<'a>, frame: usize) -> Result<(), Fail> {
        for node in nodes {
            match node {
                Node::Text(text) => self.out.push_str(text),
                Node::Mustache { call, escaped } => {
                    self.tick(call.pos)?;
                    let value = self.eval_call(call, this, frame)?;
                    let escaped = *escaped && !self.returns_safe_string(call);
                    self.print(&value, escaped).map_err(|e| at(e, call.pos))?;
                    self.check_output(call.pos)?;
                }
                Node::Block(block) => {
                    self.tick(block.call.pos)?;
                    self.block(block, this, frame)?;
                    self.check_output(block.call.pos)?;
                }
            }
        }
        Ok(())
    }

    /// Invokes a program (`options.fn` / `options.inverse`) with a context; absent programs are
    /// `container.noop`.
    fn run(
        &mut self,
        program: Option<&'a Program>,
        context: Val<'a>,
        frame: usize,
        block_params: Option<[Val<'a>; 2]>,
        pos: Pos,
    ) -> Result<(), Fail> {
        let Some(program) = program else {
            return Ok(());
        };
        self.tick(pos)?;
        let pushed = if self.uses_depths {
            let top = self.depths.last().cloned().unwrap_or(Val::Undef);
            let same = (matches!(context, Val::NullCtx) && matches!(top, Val::Null))
                || loose_eq(&context, &top).map_err(|e| at(e, pos))?;
            if !same {
                self.depths.push(context);
            }
            !same
        } else {
            false
        };
        if self.uses_block_params {
            self.block_params.push(block_params);
        }
        let result = self.nodes(&program.nodes, &context, frame);
        if self.uses_block_params {
            self.block_params.pop();
        }
        if pushed {
            self.depths.pop();
        }
        result
    }

    // -----------------------------------------------------------------------------------------
    // Values

    fn eval_expr(&mut self, expr: &'a Expr, this: &Val<'a>, frame: usize) -> Result<Val<'a>, Fail> {
        match expr {
            Expr::Path(path) => self.resolve(path, this, frame, Mode::Param),
            Expr::Lit(lit) => Ok(match lit {
                Lit::Str(s) => Val::Str(s),
                Lit::Num(n) => Val::Num(*n),
                Lit::Bool(b) => Val::Bool(*b),
                Lit::Undef => Val::Undef,
                Lit::Null => Val::Null,
            }),
            Expr::Sub(call) => self.eval_call(call, this, frame),
        }
    }

    fn eval_params(
        &mut self,
        call: &'a Call,
        this: &Val<'a>,
        frame: usize,
    ) -> Result<Args<'a>, Fail> {
        let mut args = Args {
            inline: [const { Val::Undef }; 4],
            len: call.params.len(),
            spill: Vec::new(),
        };
        if args.len <= args.inline.len() {
            for (slot, param) in args.inline.iter_mut().zip(&call.params) {
                *slot = self.eval_expr(param, this, frame)?;
            }
        } else {
            args.spill.reserve(args.len);
            for param in &call.params {
                let value = self.eval_expr(param, this, frame)?;
                args.spill.push(value);
            }
        }
        Ok(args)
    }

    /// Evaluates the hash; returns the value of `includeZero` (the only pair a helper reads).
    #[inline]
    fn eval_hash(&mut self, call: &'a Call, this: &Val<'a>, frame: usize) -> Result<Val<'a>, Fail> {
        let mut include_zero = Val::Undef;
        if call.hash.is_empty() {
            return Ok(include_zero);
        }
        for (key, value) in &call.hash {
            let value = self.eval_expr(value, this, frame)?;
            if &**key == "includeZero" {
                include_zero = value;
            }
        }
        Ok(include_zero)
    }

    /// Whether a mustache calls a helper whose result is a `SafeString`.
    fn returns_safe_string(&self, call: &Call) -> bool {
        match &call.target {
            Target::Ambiguous { helper, .. } | Target::Helper { helper, .. } => matches!(
                self.available(helper),
                Some(Helper::Extension(extension)) if extension.safe_string
            ),
            Target::Simple(_) | Target::Known(_) => false,
        }
    }

    fn available(&self, helper: &Option<Helper>) -> Option<Helper> {
        match helper {
            Some(Helper::Extension(e)) if !(e.available)(self.compat) => None,
            other => *other,
        }
    }

    /// A mustache or subexpression value.
    fn eval_call(&mut self, call: &'a Call, this: &Val<'a>, frame: usize) -> Result<Val<'a>, Fail> {
        match &call.target {
            Target::Simple(path) => self.resolve(path, this, frame, Mode::Callee),
            Target::Ambiguous { helper, path } => match self.available(helper) {
                Some(helper) => self.call_registered(helper, call, None, this, frame),
                None => self.resolve(path, this, frame, Mode::Callee),
            },
            Target::Known(builtin) => self.builtin(*builtin, call, None, this, frame),
            Target::Helper { helper, path } => match self.available(helper) {
                Some(helper) => self.call_registered(helper, call, None, this, frame),
                None => self.missing_helper(call, path, this, frame),
            },
        }
    }

    /// A call whose helper is not registered: the context value (never callable) or
    /// `helperMissing`.
    fn missing_helper(
        &mut self,
        call: &'a Call,
        path: &'a Path,
        this: &Val<'a>,
        frame: usize,
    ) -> Result<Val<'a>, Fail> {
        let callee = match self.resolve(path, this, frame, Mode::HelperCallee) {
            Ok(v) => v,
            Err(mut fail) => {
                if self.strict
                    && !call.params.is_empty()
                    && fail.kind == TemplateErrorKind::MissingPath
                {
                    fail.kind = TemplateErrorKind::MissingHelper;
                }
                return Err(fail);
            }
        };
        self.eval_params(call, this, frame)?;
        self.eval_hash(call, this, frame)?;
        if callee.js_truthy() || self.strict {
            let message = if callee.is_nullish() {
                format!(
                    "Cannot read properties of {} (reading 'call')",
                    if matches!(callee, Val::Null) {
                        "null"
                    } else {
                        "undefined"
                    }
                )
            } else {
                format!("{} is not a function", path.original)
            };
            return Err(render_error(message, call.pos));
        }
        if call.params.is_empty() {
            return Ok(Val::Undef);
        }
        Err(at(
            JsError {
                kind: TemplateErrorKind::MissingHelper,
                message: format!("Missing helper: \"{}\"", path.original),
            },
            call.pos,
        ))
    }

    /// Calls a registered (catalogue or extension) helper. With `block`, block helpers render
    /// into the output and the returned value is appended by the caller.
    fn call_registered(
        &mut self,
        helper: Helper,
        call: &'a Call,
        block: Option<&'a Block>,
        this: &Val<'a>,
        frame: usize,
    ) -> Result<Val<'a>, Fail> {
        let args = self.eval_params(call, this, frame)?;
        let params = args.as_slice();
        if let Helper::Catalogue(_) = helper {
            self.eval_hash(call, this, frame)?;
        }
        match helper {
            Helper::Catalogue(c @ (Catalogue::Equal | Catalogue::EqualWithElse)) => {
                let Some(block) = block else {
                    return self.produce(helpers::call_value(c, params, self.compat), call.pos);
                };
                self.equal(c, block, params, this, frame)?;
                Ok(Val::Undef)
            }
            Helper::Catalogue(c) => {
                self.produce(helpers::call_value(c, params, self.compat), call.pos)
            }
            Helper::Extension(extension) => {
                let args: Vec<HelperArg> = params
                    .iter()
                    .map(|v| v.to_json().map_or(HelperArg::Undefined, HelperArg::Value))
                    .collect();
                let mut hash_args = Vec::with_capacity(call.hash.len());
                for (key, value) in &call.hash {
                    let value = self.eval_expr(value, this, frame)?;
                    hash_args.push((
                        &**key,
                        value
                            .to_json()
                            .map_or(HelperArg::Undefined, HelperArg::Value),
                    ));
                }
                let env = HelperEnv {
                    compat: self.compat,
                    strict: self.strict,
                    template: self.name,
                    root: self.root_json,
                };
                let result = (extension.call)(&args, &hash_args, &env)
                    .map_err(|message| render_error(message, call.pos))?;
                Ok(match result {
                    HelperArg::Undefined => Val::Undef,
                    HelperArg::Value(Value::Null) => Val::Null,
                    HelperArg::Value(Value::Bool(b)) => Val::Bool(b),
                    HelperArg::Value(Value::Number(n)) => Val::Num(crate::value::number_to_f64(&n)),
                    HelperArg::Value(Value::String(s)) => Val::Str(self.strings.alloc(s)),
                    HelperArg::Value(_) => {
                        return Err(render_error(
                            format!("helper \"{}\" returned an array or object", extension.name),
                            call.pos,
                        ));
                    }
                })
            }
        }
    }

    /// A value helper's result as a value (strings go to the render's arena).
    fn produce(&self, result: Result<Produced, JsError>, pos: Pos) -> Result<Val<'a>, Fail> {
        match result {
            Ok(Produced::Str(s)) => Ok(Val::Str(self.strings.alloc(s))),
            Ok(Produced::Num(n)) => Ok(Val::Num(n)),
            Err(e) => Err(at(e, pos)),
        }
    }

    /// `{{#equal a b}}` / `{{#equalWithElse a b}}`.
    fn equal(
        &mut self,
        helper: Catalogue,
        block: &'a Block,
        params: &[Val<'a>],
        this: &Val<'a>,
        frame: usize,
    ) -> Result<(), Fail> {
        let pos = block.call.pos;
        let receiver = call_context(this);
        if helper == Catalogue::Equal && self.go {
            if params.len() != 2 {
                return Err(render_error(
                    format!(
                        "Helper 'equal' called with wrong number of arguments, needed 2 but got {}",
                        params.len()
                    ),
                    pos,
                ));
            }
            let (mut a, mut b) = (String::new(), String::new());
            write_go_string(&params[0], &mut a);
            write_go_string(&params[1], &mut b);
            if a == b {
                self.run(block.program.as_ref(), receiver, frame, None, pos)?;
            }
            return Ok(());
        }
        match params.len() {
            2 => {
                let program = if params[0].strict_eq(&params[1]) {
                    block.program.as_ref()
                } else {
                    block.inverse.as_ref()
                };
                self.run(program, receiver, frame, None, pos)
            }
            0 | 1 => Err(render_error(
                "Cannot read properties of undefined (reading 'inverse')",
                pos,
            )),
            _ => Err(render_error(
                if params[0].strict_eq(&params[1]) {
                    "options.fn is not a function"
                } else {
                    "options.inverse is not a function"
                },
                pos,
            )),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Blocks

    fn block(&mut self, block: &'a Block, this: &Val<'a>, frame: usize) -> Result<(), Fail> {
        let call = &block.call;
        let value = match &call.target {
            Target::Simple(path) => {
                let value = self.resolve(path, this, frame, Mode::Callee)?;
                return self.block_helper_missing(value, block, this, frame);
            }
            Target::Ambiguous { helper, path } => match self.available(helper) {
                Some(helper) => self.call_registered(helper, call, Some(block), this, frame)?,
                None => {
                    let value = self.resolve(path, this, frame, Mode::Callee)?;
                    return self.block_helper_missing(value, block, this, frame);
                }
            },
            Target::Known(builtin) => self.builtin(*builtin, call, Some(block), this, frame)?,
            Target::Helper { helper, path } => match self.available(helper) {
                Some(helper) => self.call_registered(helper, call, Some(block), this, frame)?,
                None => self.missing_helper(call, path, this, frame)?,
            },
        };
        // A helper's return value is appended without escaping.
        self.print(&value, false).map_err(|e| at(e, call.pos))
    }

    /// `blockHelperMissing`: `{{#value}}` sections.
    fn block_helper_missing(
        &mut self,
        value: Val<'a>,
        block: &'a Block,
        this: &Val<'a>,
        frame: usize,
    ) -> Result<(), Fail> {
        let pos = block.call.pos;
        if self.go && !value.go_truthy() {
            return self.run(block.inverse.as_ref(), *this, frame, None, pos);
        }
        match value {
            Val::Bool(true) => self.run(block.program.as_ref(), *this, frame, None, pos),
            Val::Bool(false) | Val::Undef | Val::Null => {
                self.run(block.inverse.as_ref(), *this, frame, None, pos)
            }
            Val::Arr(items) if !items.is_empty() => self.each(Val::Arr(items), block, this, frame),
            Val::Arr(_) => self.run(block.inverse.as_ref(), *this, frame, None, pos),
            other => self.run(block.program.as_ref(), other, frame, None, pos),
        }
    }

    /// The built-in helpers, as blocks (`block` given) or as values.
    fn builtin(
        &mut self,
        builtin: Builtin,
        call: &'a Call,
        block: Option<&'a Block>,
        this: &Val<'a>,
        frame: usize,
    ) -> Result<Val<'a>, Fail> {
        let pos = call.pos;
        if matches!(
            builtin,
            Builtin::HelperMissing | Builtin::BlockHelperMissing
        ) {
            // Moved to `container.hooks` by the runtime: `helpers.helperMissing` is undefined.
            self.eval_params(call, this, frame)?;
            self.eval_hash(call, this, frame)?;
            return Err(render_error(
                "Cannot read properties of undefined (reading 'call')",
                pos,
            ));
        }
        let args = self.eval_params(call, this, frame)?;
        let params = args.as_slice();
        let include_zero = self.eval_hash(call, this, frame)?;
        match builtin {
            Builtin::If | Builtin::Unless => {
                let name = if builtin == Builtin::If {
                    "if"
                } else {
                    "unless"
                };
                if params.len() != 1 {
                    return Err(render_error(
                        format!("#{name} requires exactly one argument"),
                        pos,
                    ));
                }
                let value = &params[0];
                let truthy = if self.go {
                    (include_zero.go_truthy() && matches!(value, Val::Num(n) if *n == 0.0))
                        || value.go_truthy()
                } else {
                    !((!include_zero.js_truthy() && !value.js_truthy()) || value.js_is_empty())
                };
                let Some(block) = block else {
                    let chosen = if truthy == (builtin == Builtin::If) {
                        "fn"
                    } else {
                        "inverse"
                    };
                    return Err(render_error(
                        format!("options.{chosen} is not a function"),
                        pos,
                    ));
                };
                let program = if truthy == (builtin == Builtin::If) {
                    block.program.as_ref()
                } else {
                    block.inverse.as_ref()
                };
                self.run(program, call_context(this), frame, None, pos)?;
                Ok(Val::Undef)
            }
            Builtin::With => {
                if params.len() != 1 {
                    return Err(render_error("#with requires exactly one argument", pos));
                }
                let value = params[0];
                let render_body = if self.go {
                    value.go_truthy()
                } else {
                    !value.js_is_empty()
                };
                let Some(block) = block else {
                    return Err(render_error(
                        if render_body {
                            "fn is not a function"
                        } else {
                            "options.inverse is not a function"
                        },
                        pos,
                    ));
                };
                if render_body {
                    self.run(
                        block.program.as_ref(),
                        value,
                        frame,
                        Some([value, Val::Undef]),
                        pos,
                    )?;
                } else {
                    self.run(block.inverse.as_ref(), call_context(this), frame, None, pos)?;
                }
                Ok(Val::Undef)
            }
            Builtin::Each => {
                let context = match params.len() {
                    0 => return Err(render_error("Must pass iterator to #each", pos)),
                    1 => params[0],
                    _ => {
                        return Err(render_error(
                            if params[1].js_truthy() {
                                "fn is not a function"
                            } else {
                                "Must pass iterator to #each"
                            },
                            pos,
                        ));
                    }
                };
                let Some(block) = block else {
                    return Err(render_error(
                        if has_entries(&context, &self.frames) {
                            "fn is not a function"
                        } else {
                            "inverse is not a function"
                        },
                        pos,
                    ));
                };
                self.each(context, block, this, frame)?;
                Ok(Val::Undef)
            }
            Builtin::Log => Ok(Val::Undef),
            Builtin::Lookup => {
                let object = helpers::js_arg(params, 0);
                if !object.js_truthy() {
                    return Ok(object);
                }
                if params.len() != 2 {
                    return Err(render_error(
                        "Cannot read properties of undefined (reading 'lookupProperty')",
                        pos,
                    ));
                }
                let key = property_key(&params[1]).map_err(|e| at(e, pos))?;
                Ok(self.get_prop(&object, &Key::new(&key)))
            }
            Builtin::HelperMissing | Builtin::BlockHelperMissing => Ok(Val::Undef),
        }
    }

    /// The `each` helper with a block.
    fn each(
        &mut self,
        context: Val<'a>,
        block: &'a Block,
        this: &Val<'a>,
        frame: usize,
    ) -> Result<(), Fail> {
        let pos = block.call.pos;
        let program = block.program.as_ref();
        match &context {
            Val::Arr(items) if !items.is_empty() => {
                let new_frame = self.push_frame(frame);
                let last = items.len() - 1;
                for (i, item) in items.iter().enumerate() {
                    let key = Val::Num(i as f64);
                    self.iterate(new_frame, program, key, i, last, Val::from_json(item), pos)?;
                }
                self.frames.truncate(new_frame);
            }
            Val::Obj(map) if !map.is_empty() => {
                let new_frame = self.push_frame(frame);
                let last = map.len() - 1;
                if crate::value::has_index_keys(map) {
                    for (i, (key, value)) in js_object_keys(map).into_iter().enumerate() {
                        self.iterate(
                            new_frame,
                            program,
                            Val::Str(key),
                            i,
                            last,
                            Val::from_json(value),
                            pos,
                        )?;
                    }
                } else {
                    for (i, (key, value)) in map.iter().enumerate() {
                        self.iterate(
                            new_frame,
                            program,
                            Val::Str(key),
                            i,
                            last,
                            Val::from_json(value),
                            pos,
                        )?;
                    }
                }
                self.frames.truncate(new_frame);
            }
            Val::Frame(index) => {
                let entries = self.frame_entries(*index);
                let new_frame = self.push_frame(frame);
                let last = entries.len() - 1;
                for (i, (key, value)) in entries.into_iter().enumerate() {
                    self.iterate(new_frame, program, key, i, last, value, pos)?;
                }
                self.frames.truncate(new_frame);
            }
            _ => self.run(block.inverse.as_ref(), call_context(this), frame, None, pos)?,
        }
        Ok(())
    }

    /// One iteration of `each`: set `@key`/`@index`/`@first`/`@last`, render `options.fn`.
    #[allow(clippy::too_many_arguments)]
    fn iterate(
        &mut self,
        frame: usize,
        program: Option<&'a Program>,
        key: Val<'a>,
        index: usize,
        last: usize,
        value: Val<'a>,
        pos: Pos,
    ) -> Result<(), Fail> {
        self.frames[frame].iteration = Some(Iteration {
            key,
            index: index as f64,
            first: index == 0,
            last: index == last,
        });
        self.run(program, value, frame, Some([value, key]), pos)?;
        self.check_output(pos)
    }

    /// `createFrame(data)`.
    fn push_frame(&mut self, parent: usize) -> usize {
        let root = self.frames[parent].root;
        self.frames.push(Frame {
            root,
            iteration: None,
            parent: Some(parent),
        });
        self.frames.len() - 1
    }

    /// The own properties of a data frame in insertion order (for `{{#each @_parent}}`).
    fn frame_entries(&self, index: usize) -> Vec<(Val<'a>, Val<'a>)> {
        let frame = &self.frames[index];
        let mut entries = vec![(Val::Str("root"), frame.root)];
        if let Some(parent) = frame.parent {
            entries.push((Val::Str("_parent"), Val::Frame(parent)));
        }
        if let Some(it) = &frame.iteration {
            entries.push((Val::Str("key"), it.key));
            entries.push((Val::Str("index"), Val::Num(it.index)));
            entries.push((Val::Str("first"), Val::Bool(it.first)));
            entries.push((Val::Str("last"), Val::Bool(it.last)));
        }
        entries
    }

    // -----------------------------------------------------------------------------------------
    // Paths

    fn resolve(
        &mut self,
        path: &'a Path,
        this: &Val<'a>,
        frame: usize,
        mode: Mode,
    ) -> Result<Val<'a>, Fail> {
        let terminal = self.strict && mode != Mode::Param;
        match path.base {
            Base::Context(depth) => {
                let base = if depth == 0 {
                    *this
                } else {
                    let len = self.depths.len();
                    (depth as usize)
                        .checked_add(1)
                        .and_then(|d| len.checked_sub(d))
                        .map_or(Val::Undef, |i| self.depths[i])
                };
                if path.parts.is_empty() {
                    return Ok(base);
                }
                self.walk(
                    base,
                    &path.parts,
                    mode == Mode::HelperCallee,
                    terminal,
                    path.pos,
                )
            }
            Base::Data(depth) => {
                let mut current = Some(frame);
                for _ in 0..depth {
                    current = current.and_then(|f| self.frames[f].parent);
                }
                let base = current.map_or(Val::Undef, Val::Frame);
                self.walk(base, &path.parts, true, terminal, path.pos)
            }
            Base::BlockParam { level, index } => {
                let len = self.block_params.len();
                let base = (level as usize)
                    .checked_add(1)
                    .and_then(|l| len.checked_sub(l))
                    .and_then(|i| self.block_params[i].as_ref())
                    .and_then(|values| values.get(index as usize).cloned())
                    .unwrap_or(Val::Undef);
                if self.strict {
                    // handlebars.js 4.7.7's `strictLookup` restarts at the parameter's own name.
                    self.walk(base, &path.parts, false, false, path.pos)
                } else {
                    self.walk(base, &path.parts[1..], false, false, path.pos)
                }
            }
        }
    }

    /// `resolvePath` (non-strict: stop at null/undefined, or at any falsy value with `falsy`)
    /// and `strictLookup` (strict: no guards; with `terminal`, the last segment must exist).
    fn walk(
        &self,
        base: Val<'a>,
        parts: &'a [Key],
        falsy: bool,
        terminal: bool,
        pos: Pos,
    ) -> Result<Val<'a>, Fail> {
        let mut current = base;
        if !self.strict {
            for key in parts {
                let stop = if falsy {
                    !current.js_truthy()
                } else {
                    current.is_nullish()
                };
                if stop {
                    return Ok(current);
                }
                current = self.get_prop(&current, key);
            }
            return Ok(current);
        }
        let Some((last, init)) = parts.split_last() else {
            return Ok(current);
        };
        let unchecked = if terminal { init } else { parts };
        for key in unchecked {
            if current.is_nullish() {
                return Err(at(
                    JsError::missing(format!(
                        "Cannot read properties of {} (reading '{}')",
                        if matches!(current, Val::Null) {
                            "null"
                        } else {
                            "undefined"
                        },
                        key.name
                    )),
                    pos,
                ));
            }
            current = self.get_prop(&current, key);
        }
        if !terminal {
            return Ok(current);
        }
        // container.strict(obj, name)
        let described = || js_string(&current).unwrap_or_else(|e| e.message);
        if !current.js_truthy() {
            return Err(at(
                JsError::missing(format!("\"{}\" not defined in {}", last.name, described())),
                pos,
            ));
        }
        match self.has_property(&current, last) {
            Some(true) => Ok(self.get_prop(&current, last)),
            Some(false) => Err(at(
                JsError::missing(format!("\"{}\" not defined in {}", last.name, described())),
                pos,
            )),
            None => Err(at(
                JsError::missing(format!(
                    "Cannot use 'in' operator to search for '{}' in {}",
                    last.name,
                    described()
                )),
                pos,
            )),
        }
    }

    /// `lookupProperty(parent, name)`: own properties only.
    #[inline]
    fn get_prop(&self, parent: &Val<'a>, key: &Key) -> Val<'a> {
        match parent {
            Val::Obj(map) => key.get(map).map_or(Val::Undef, Val::from_json),
            Val::Arr(items) => match key.index {
                Some(i) => items.get(i as usize).map_or(Val::Undef, Val::from_json),
                None if &*key.name == "length" => Val::Num(items.len() as f64),
                None => Val::Undef,
            },
            Val::Str(s) => string_prop(s, key, |range| Val::Str(&s[range.0..range.1])),
            Val::Frame(index) => {
                let frame = &self.frames[*index];
                match (&*key.name, &frame.iteration) {
                    ("root", _) => frame.root,
                    ("_parent", _) => frame.parent.map_or(Val::Undef, Val::Frame),
                    ("key", Some(it)) => it.key,
                    ("index", Some(it)) => Val::Num(it.index),
                    ("first", Some(it)) => Val::Bool(it.first),
                    ("last", Some(it)) => Val::Bool(it.last),
                    _ => Val::Undef,
                }
            }
            _ => Val::Undef,
        }
    }

    /// The `in` operator (`None`: a primitive, which throws a TypeError).
    fn has_property(&self, parent: &Val<'a>, key: &Key) -> Option<bool> {
        let name = &*key.name;
        let inherited = OBJECT_PROTOTYPE.contains(&name);
        Some(match parent {
            Val::Obj(map) => map.contains_key(name) || inherited,
            Val::Arr(items) => {
                key.index.is_some_and(|i| (i as usize) < items.len())
                    || ARRAY_PROTOTYPE.contains(&name)
                    || inherited
            }
            Val::Frame(index) => {
                let frame = &self.frames[*index];
                inherited
                    || name == "root"
                    || (name == "_parent" && frame.parent.is_some())
                    || (frame.iteration.is_some()
                        && matches!(name, "key" | "index" | "first" | "last"))
            }
            Val::NullCtx | Val::Options => inherited,
            Val::Undef | Val::Null | Val::Bool(_) | Val::Num(_) | Val::Str(_) => {
                return None;
            }
        })
    }

    // -----------------------------------------------------------------------------------------
    // Output

    /// Appends a value: `{{ }}` (`escaped`, `escapeExpression`) or `{{{ }}}` / block results.
    fn print(&mut self, value: &Val<'a>, escaped: bool) -> Result<(), JsError> {
        if self.go {
            match value {
                Val::Str(s) => self.push_go(s, escaped),
                _ => {
                    let mut s = String::new();
                    write_go_string(value, &mut s);
                    self.push_go(&s, escaped);
                }
            }
            return Ok(());
        }
        match value {
            Val::Undef | Val::Null => {}
            Val::Str(s) => self.push_js(s, escaped),
            Val::Num(n) => write_js_number(*n, &mut self.out),
            Val::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            other => {
                if escaped
                    && let Val::Obj(map) = other
                    && map
                        .get("toHTML")
                        .is_some_and(|v| Val::from_json(v).js_truthy())
                {
                    return Err(JsError::render("string.toHTML is not a function"));
                }
                if escaped {
                    let mut s = String::new();
                    write_js_string(other, &mut s)?;
                    self.push_js(&s, true);
                } else {
                    write_js_string(other, &mut self.out)?;
                }
            }
        }
        Ok(())
    }

    fn push_js(&mut self, s: &str, escaped: bool) {
        if escaped {
            escape_into(&mut self.out, s, false);
        } else {
            self.out.push_str(s);
        }
    }

    fn push_go(&mut self, s: &str, escaped: bool) {
        if escaped {
            escape_into(&mut self.out, s, true);
        } else {
            self.out.push_str(s);
        }
    }
}

/// The `this` handlebars.js gives a helper: the context, or `nullContext` for null/undefined.
#[inline]
fn call_context<'a>(this: &Val<'a>) -> Val<'a> {
    if this.is_nullish() {
        Val::NullCtx
    } else {
        *this
    }
}

/// Whether `each` would iterate at least once.
fn has_entries(value: &Val<'_>, _frames: &[Frame<'_>]) -> bool {
    match value {
        Val::Arr(a) => !a.is_empty(),
        Val::Obj(o) => !o.is_empty(),
        Val::Frame(_) => true,
        _ => false,
    }
}

/// `length` and index properties of a string (UTF-16 code units).
fn string_prop<'a>(s: &str, key: &Key, slice: impl FnOnce((usize, usize)) -> Val<'a>) -> Val<'a> {
    if let Some(index) = key.index {
        return match utf16_unit_at(s, index as usize) {
            Some(Ok(range)) => slice(range),
            Some(Err(())) => Val::Str("\u{FFFD}"),
            None => Val::Undef,
        };
    }
    if &*key.name == "length" {
        return Val::Num(utf16_len(s) as f64);
    }
    Val::Undef
}

/// `ToPropertyKey` for the `lookup` helper.
fn property_key(value: &Val<'_>) -> Result<String, JsError> {
    js_string(value)
}

/// JavaScript `==`.
fn loose_eq(a: &Val<'_>, b: &Val<'_>) -> Result<bool, JsError> {
    if a.is_nullish() || b.is_nullish() {
        return Ok(a.is_nullish() && b.is_nullish());
    }
    if a.is_object_like() && b.is_object_like() {
        return Ok(a.strict_eq(b));
    }
    let x = to_primitive(a)?;
    let y = to_primitive(b)?;
    Ok(prim_loose_eq(&x, &y))
}

fn prim_loose_eq(x: &Prim<'_>, y: &Prim<'_>) -> bool {
    match (x, y) {
        (Prim::Num(a), Prim::Num(b)) => a == b,
        (Prim::Str(a), Prim::Str(b)) => a == b,
        (Prim::Bool(a), Prim::Bool(b)) => a == b,
        (Prim::Bool(a), other) => prim_loose_eq(&Prim::Num(f64::from(u8::from(*a))), other),
        (other, Prim::Bool(b)) => prim_loose_eq(other, &Prim::Num(f64::from(u8::from(*b)))),
        (Prim::Num(n), Prim::Str(s)) | (Prim::Str(s), Prim::Num(n)) => *n == string_to_number(s),
        _ => false,
    }
}

/// Replacement of each byte that `escapeExpression` changes (index into the strings below).
const JS_ESCAPES: [&str; 8] = [
    "", "&amp;", "&lt;", "&gt;", "&quot;", "&#x27;", "&#x60;", "&#x3D;",
];
const GO_ESCAPES: [&str; 6] = ["", "&amp;", "&apos;", "&lt;", "&gt;", "&quot;"];

const fn escape_table(go: bool) -> [u8; 256] {
    let mut table = [0u8; 256];
    if go {
        table[b'&' as usize] = 1;
        table[b'\'' as usize] = 2;
        table[b'<' as usize] = 3;
        table[b'>' as usize] = 4;
        table[b'"' as usize] = 5;
    } else {
        table[b'&' as usize] = 1;
        table[b'<' as usize] = 2;
        table[b'>' as usize] = 3;
        table[b'"' as usize] = 4;
        table[b'\'' as usize] = 5;
        table[b'`' as usize] = 6;
        table[b'=' as usize] = 7;
    }
    table
}

static JS_TABLE: [u8; 256] = escape_table(false);
static GO_TABLE: [u8; 256] = escape_table(true);

#[inline]
fn escape_into(out: &mut String, s: &str, go: bool) {
    let (table, replacements): (&[u8; 256], &[&str]) = if go {
        (&GO_TABLE, &GO_ESCAPES)
    } else {
        (&JS_TABLE, &JS_ESCAPES)
    };
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let r = table[b as usize];
        if r != 0 {
            out.push_str(&s[start..i]);
            out.push_str(replacements[r as usize]);
            start = i + 1;
        }
    }
    out.push_str(&s[start..]);
}
