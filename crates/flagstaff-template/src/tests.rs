//! Engine tests. Expected outputs are handlebars.js 4.7.7's (checked against it) unless a test
//! says it is about `Compat::Go`.

use serde_json::{Value, json};

use crate::{
    Compat, RenderLimits, RenderOptions, Template, TemplateError, TemplateErrorKind,
    is_json_template_name, json_escape_context,
};

fn render_with(
    src: &str,
    ctx: &Value,
    strict: bool,
    compat: Compat,
) -> Result<String, TemplateError> {
    Template::parse("t.hbs", src)?.render(ctx, RenderOptions { strict, compat })
}

/// handlebars.js, non-strict.
fn js(src: &str, ctx: &Value) -> String {
    render_with(src, ctx, false, Compat::Js).unwrap_or_else(|e| panic!("{src:?}: {e}"))
}

/// Go compatibility, non-strict.
fn go(src: &str, ctx: &Value) -> String {
    render_with(src, ctx, false, Compat::Go).unwrap_or_else(|e| panic!("{src:?}: {e}"))
}

fn strict(src: &str, ctx: &Value) -> Result<String, TemplateError> {
    render_with(src, ctx, true, Compat::Js)
}

fn js_err(src: &str, ctx: &Value) -> TemplateError {
    render_with(src, ctx, false, Compat::Js).expect_err(src)
}

fn parse_err(src: &str) -> TemplateError {
    let e = Template::parse("t.hbs", src).expect_err(src);
    assert_eq!(e.kind, TemplateErrorKind::Parse, "{e}");
    e
}

fn ctx() -> Value {
    json!({
        "title": "Flag <b>\"x\"</b> & 'y' `z` = w",
        "kind": "flag",
        "zero": 0,
        "one": 1,
        "empty": "",
        "no": false,
        "yes": true,
        "nothing": null,
        "emptyObj": {},
        "emptyArr": [],
        "tags": ["a", "b", "c"],
        "nested": [1, [2, [3, null]], {"k": 1}],
        "project": {"key": "default", "name": "The big project",
                    "environment": {"key": "production", "name": "Production"}},
        "props": {"b": 1, "a": 2, "c": 3},
        "numbered": {"b": "B", "10": "ten", "2": "two"},
        "members": [{"name": "Ann", "roles": ["admin", "writer"]}, {"name": "Bob", "roles": []}],
        "base-url": "https://example.com",
        "timestamp": {"milliseconds": 1_580_777_685_650_i64},
    })
}

// ---------------------------------------------------------------------------------------------
// Output and escaping

#[test]
fn escapes_like_handlebars_js() {
    assert_eq!(
        js("{{title}}", &ctx()),
        "Flag &lt;b&gt;&quot;x&quot;&lt;/b&gt; &amp; &#x27;y&#x27; &#x60;z&#x60; &#x3D; w"
    );
    assert_eq!(js("{{{title}}}", &ctx()), "Flag <b>\"x\"</b> & 'y' `z` = w");
    assert_eq!(js("{{& title}}", &ctx()), "Flag <b>\"x\"</b> & 'y' `z` = w");
    assert_eq!(
        js("{{~{title}~}}", &ctx()),
        "Flag <b>\"x\"</b> & 'y' `z` = w"
    );
}

#[test]
fn escapes_like_raymond_in_go_mode() {
    assert_eq!(
        go("{{title}}", &ctx()),
        "Flag &lt;b&gt;&quot;x&quot;&lt;/b&gt; &amp; &apos;y&apos; `z` = w"
    );
    assert_eq!(go("{{{title}}}", &ctx()), "Flag <b>\"x\"</b> & 'y' `z` = w");
}

#[test]
fn prints_values_like_javascript() {
    let c = json!({
        "big": 1e21, "sum": 0.30000000000000004, "negzero": -0.0, "tiny": 1.5e-7, "int": 1_580_777_685_650_i64,
        "huge": 12_345_678_901_234_567_890_u64, "arr": ["a", 1, null, true, ["x", "y"], {"k": 1}],
        "obj": {"a": 1}, "t": true, "f": false, "n": null
    });
    assert_eq!(js("{{big}}", &c), "1e+21");
    assert_eq!(js("{{sum}}", &c), "0.30000000000000004");
    assert_eq!(js("{{negzero}}", &c), "0");
    assert_eq!(js("{{tiny}}", &c), "1.5e-7");
    assert_eq!(js("{{int}}", &c), "1580777685650");
    assert_eq!(js("{{huge}}", &c), "12345678901234567000");
    assert_eq!(js("{{arr}}", &c), "a,1,,true,x,y,[object Object]");
    assert_eq!(
        js("{{obj}}|{{t}}|{{f}}|{{n}}|{{missing}}", &c),
        "[object Object]|true|false||"
    );
    // Go: numbers without exponent, arrays concatenated, maps as Go prints them.
    assert_eq!(
        go("{{big}}|{{tiny}}|{{negzero}}", &c),
        "1000000000000000000000|0.00000015|-0"
    );
    assert_eq!(go("{{arr}}", &c), "a1truexymap[k:%!s(float64=1)]");
    assert_eq!(go("{{obj}}", &c), "map[a:%!s(float64=1)]");
}

#[test]
fn objects_that_break_javascript_string_conversion() {
    let c = json!({"html": {"toHTML": 1}, "str": {"toString": "x"}, "list": [{"toString": 1}]});
    assert_eq!(
        js_err("{{html}}", &c).message,
        "string.toHTML is not a function"
    );
    assert_eq!(js("{{{html}}}", &c), "[object Object]");
    assert_eq!(
        js_err("{{{str}}}", &c).message,
        "Cannot convert object to primitive value"
    );
    assert_eq!(js_err("{{list}}", &c).kind, TemplateErrorKind::Render);
}

// ---------------------------------------------------------------------------------------------
// Paths

#[test]
fn paths() {
    let c = ctx();
    assert_eq!(
        js("{{project.name}}|{{project/key}}", &c),
        "The big project|default"
    );
    assert_eq!(
        js("{{this.kind}}|{{./kind}}|{{this/kind}}", &c),
        "flag|flag|flag"
    );
    assert_eq!(
        js(
            "{{tags.[1]}}|{{tags.length}}|{{kind.length}}|{{kind.[0]}}",
            &c
        ),
        "b|3|4|f"
    );
    assert_eq!(
        js("{{[base-url]}}|{{base-url}}", &c),
        "https://example.com|https://example.com"
    );
    assert_eq!(js("{{ project.environment.key }}", &c), "production");
    assert_eq!(
        js(
            "{{#with project}}{{../kind}}:{{environment.name}}{{/with}}",
            &c
        ),
        "flag:Production"
    );
    assert_eq!(js("{{#each tags}}{{../kind}}{{/each}}", &c), "flagflagflag");
    assert_eq!(
        js(
            "{{#each tags}}{{#if ../yes}}{{../../kind}}{{/if}}{{/each}}",
            &c
        ),
        ""
    );
    assert_eq!(
        js("{{#each tags}}{{#if true}}{{../kind}}{{/if}}{{/each}}", &c),
        "flagflagflag"
    );
    assert_eq!(js("{{\"kind\"}}{{'kind'}}", &c), "flagflag");
    assert_eq!(
        js("{{project.missing.deeper}}|{{nothing.x}}|{{zero.x}}", &c),
        "||"
    );
    assert_eq!(js("{{project.constructor}}|{{tags.map}}", &c), "|");
    assert_eq!(parse_err("{{foo.this}}").message, "Invalid path: foo.this");
    assert_eq!(js("{{foo.[this]}}", &json!({"foo": {"this": "T"}})), "T");
}

#[test]
fn data_variables() {
    let c = ctx();
    assert_eq!(
        js(
            "{{#each tags}}[{{@index}}{{@key}}{{@first}}{{@last}}{{this}}]{{/each}}",
            &c
        ),
        "[00truefalsea][11falsefalseb][22falsetruec]"
    );
    assert_eq!(
        js(
            "{{#each props}}{{@key}}={{this}}{{#unless @last}},{{/unless}}{{/each}}",
            &c
        ),
        "b=1,a=2,c=3"
    );
    // Object.keys order: integer keys first.
    assert_eq!(js("{{#each numbered}}{{@key}}{{/each}}", &c), "210b");
    assert_eq!(
        js("{{@root.kind}}|{{#each tags}}{{@root.kind}}{{/each}}", &c),
        "flag|flagflagflag"
    );
    assert_eq!(
        js(
            "{{#each members}}{{#each roles}}{{@../index}}{{@index}} {{/each}}{{/each}}",
            &c
        ),
        "00 01 "
    );
    assert_eq!(js("{{@index}}|{{@first.x}}", &c), "|");
}

#[test]
fn comments_and_escaped_mustaches() {
    let c = ctx();
    assert_eq!(js("a{{! no }}b{{!-- {{kind}} --}}c", &c), "abc");
    assert_eq!(js("\\{{kind}} {{kind}}", &c), "{{kind}} flag");
    assert_eq!(js("\\\\{{kind}}", &c), "\\flag");
    assert_eq!(js("{{!--}}x", &c), "x");
}

#[test]
fn literals_and_hash_arguments() {
    let c = ctx();
    assert_eq!(js("{{#equal kind 'flag'}}yes{{/equal}}", &c), "yes");
    assert_eq!(
        js(
            "{{#equal one 1}}1{{/equal}}{{#equal yes true}}t{{/equal}}",
            &c
        ),
        "1t"
    );
    assert_eq!(
        js(
            "{{#equal nothing null}}n{{/equal}}{{#equal missing undefined}}u{{/equal}}",
            &c
        ),
        "nu"
    );
    assert_eq!(js("{{#if kind unused=1 other='x'}}ok{{/if}}", &c), "ok");
    assert_eq!(js("{{log kind level='warn'}}|{{#log}}x{{/log}}", &c), "|");
}

// ---------------------------------------------------------------------------------------------
// Block helpers

#[test]
fn if_unless_else() {
    let c = ctx();
    assert_eq!(js("{{#if kind}}A{{else}}B{{/if}}", &c), "A");
    assert_eq!(
        js(
            "{{#if zero}}A{{else}}B{{/if}}{{#if zero includeZero=true}}A{{else}}B{{/if}}",
            &c
        ),
        "BA"
    );
    assert_eq!(js("{{#if empty}}A{{^}}B{{/if}}", &c), "B");
    assert_eq!(
        js(
            "{{#if emptyArr}}A{{else}}B{{/if}}{{#if emptyObj}}A{{else}}B{{/if}}",
            &c
        ),
        "BA"
    );
    assert_eq!(
        js(
            "{{#unless no}}U{{else}}X{{/unless}}{{#unless yes}}U{{else}}X{{/unless}}",
            &c
        ),
        "UX"
    );
    assert_eq!(
        js(
            "{{#if no}}1{{else if zero}}2{{else if kind}}3{{else}}4{{/if}}",
            &c
        ),
        "3"
    );
    assert_eq!(
        js("{{#if no}}1{{else unless yes}}2{{else}}3{{/if}}", &c),
        "3"
    );
    // Go: `{}` is false.
    assert_eq!(go("{{#if emptyObj}}A{{else}}B{{/if}}", &c), "B");
    assert_eq!(
        go("{{#if zero includeZero=true}}A{{else}}B{{/if}}", &c),
        "A"
    );
    assert_eq!(
        js_err("{{#if}}x{{/if}}", &c).message,
        "#if requires exactly one argument"
    );
    assert_eq!(
        js_err("{{#unless a b}}x{{/unless}}", &c).message,
        "#unless requires exactly one argument"
    );
}

#[test]
fn each_and_with() {
    let c = ctx();
    assert_eq!(js("{{#each tags}}{{this}},{{/each}}", &c), "a,b,c,");
    assert_eq!(
        js(
            "{{#each emptyArr}}x{{else}}none{{/each}}{{#each emptyObj}}x{{else}}none{{/each}}",
            &c
        ),
        "nonenone"
    );
    assert_eq!(
        js("{{#each kind}}x{{else}}not iterable{{/each}}", &c),
        "not iterable"
    );
    assert_eq!(
        js(
            "{{#each members}}{{name}}:{{#each roles}}{{this}}{{else}}-{{/each}};{{/each}}",
            &c
        ),
        "Ann:adminwriter;Bob:-;"
    );
    assert_eq!(
        js("{{#each tags as |tag i|}}{{i}}{{tag}}{{/each}}", &c),
        "0a1b2c"
    );
    assert_eq!(
        js(
            "{{#with project}}{{key}}{{else}}none{{/with}}{{#with missing}}x{{else}}none{{/with}}",
            &c
        ),
        "defaultnone"
    );
    assert_eq!(
        js(
            "{{#with zero}}[{{this}}]{{/with}}{{#with project as |p|}}{{p.name}}{{/with}}",
            &c
        ),
        "[0]The big project"
    );
    assert_eq!(
        js_err("{{#each}}x{{/each}}", &c).message,
        "Must pass iterator to #each"
    );
    assert_eq!(
        js_err("{{#with}}x{{/with}}", &c).message,
        "#with requires exactly one argument"
    );
}

#[test]
fn sections_and_inverse_sections() {
    let c = ctx();
    // blockHelperMissing: arrays iterate, objects become the context, true keeps it.
    assert_eq!(js("{{#tags}}<{{this}}>{{/tags}}", &c), "<a><b><c>");
    assert_eq!(
        js("{{#project}}{{name}}{{/project}}", &c),
        "The big project"
    );
    assert_eq!(
        js("{{#yes}}{{kind}}{{/yes}}{{#no}}x{{else}}not{{/no}}", &c),
        "flagnot"
    );
    assert_eq!(js("{{#zero}}[{{this}}]{{/zero}}", &c), "[0]");
    assert_eq!(
        js(
            "{{^no}}A{{/no}}{{^emptyArr}}B{{/emptyArr}}{{^zero}}C{{/zero}}{{^missing}}D{{/missing}}",
            &c
        ),
        "ABD"
    );
    assert_eq!(
        js(
            "{{#project.environment}}{{key}}{{/project.environment}}",
            &c
        ),
        "production"
    );
}

#[test]
fn lookup_helper() {
    let c = ctx();
    assert_eq!(
        js(
            "{{lookup tags 1}}|{{lookup project 'key'}}|{{lookup zero 'x'}}",
            &c
        ),
        "b|default|0"
    );
    assert_eq!(
        js(
            "{{#with (lookup project 'environment')}}{{name}}{{/with}}",
            &c
        ),
        "Production"
    );
    assert_eq!(
        js("{{#each tags}}{{lookup ../project 'name'}}{{/each}}", &c),
        "The big projectThe big projectThe big project"
    );
}

// ---------------------------------------------------------------------------------------------
// Whitespace control

#[test]
fn standalone_lines_are_removed() {
    let c = ctx();
    assert_eq!(
        js("a\n  {{#if yes}}\n  b\n  {{/if}}\nc\n", &c),
        "a\n  b\nc\n"
    );
    assert_eq!(js("{{#if no}}\n  x\n{{else}}\n  y\n{{/if}}\n", &c), "  y\n");
    assert_eq!(
        js("{{#each tags}}\n- {{this}}\n{{/each}}\n", &c),
        "- a\n- b\n- c\n"
    );
    assert_eq!(js("a\n  {{! comment }}\nb", &c), "a\nb");
    assert_eq!(
        js("a\r\n  {{#if yes}}\r\n  b\r\n  {{/if}}\r\nc", &c),
        "a\r\n  b\r\nc"
    );
    // Not standalone: other content on the line.
    assert_eq!(js("a {{#if yes}}\nb\n{{/if}} c", &c), "a \nb\n c");
    // A standalone `{{#unless}}` whose body is empty leaves its indentation-only lines: the
    // datadog templates rely on this.
    assert_eq!(
        js(
            "[\n        {{#unless yes}}x{{/unless}}\n        \"k\"\n]",
            &c
        ),
        "[\n        \n        \"k\"\n]"
    );
}

#[test]
fn tilde_strips_whitespace() {
    let c = ctx();
    assert_eq!(js(" {{~#if yes~}} x {{~/if~}} ", &c), "x");
    assert_eq!(js("a \n {{~kind~}} \n b", &c), "aflagb");
    assert_eq!(js("{{#if no}}1{{~else~}} 2 {{~/if}}", &c), "2");
    assert_eq!(
        js("{{#if no}}A{{else if yes}} B {{~else~}} C{{/if}}", &c),
        " B"
    );
    assert_eq!(js("a {{~! x ~}} b", &c), "ab");
}

// ---------------------------------------------------------------------------------------------
// Catalogue helpers

#[test]
fn equal_helpers() {
    let c = json!({"n": 1, "s": "1", "kind": "flag"});
    assert_eq!(js("{{#equal n s}}eq{{else}}ne{{/equal}}", &c), "ne");
    assert_eq!(
        js(
            "{{#equalWithElse kind 'flag'}}eq{{else}}ne{{/equalWithElse}}",
            &c
        ),
        "eq"
    );
    // Go: string forms compared, no else branch.
    assert_eq!(go("{{#equal n s}}eq{{else}}ne{{/equal}}", &c), "eq");
    assert_eq!(go("{{#equal kind 'x'}}eq{{else}}ne{{/equal}}", &c), "");
    assert_eq!(
        go("{{#equalWithElse n s}}eq{{else}}ne{{/equalWithElse}}", &c),
        "ne"
    );
}

#[test]
fn encoding_helpers() {
    let c = json!({"q": "a b&c=d/é'!", "path": "/a b/c?d=1#x"});
    assert_eq!(js("{{{queryEncode q}}}", &c), "a%20b%26c%3Dd%2F%C3%A9'!");
    assert_eq!(js("{{queryEncode q}}", &c), "a%20b%26c%3Dd%2F%C3%A9&#x27;!");
    assert_eq!(js("{{{pathEncode path}}}", &c), "/a%20b/c?d=1#x");
    assert_eq!(
        js(
            "{{{queryEncode missing}}}|{{{queryEncode nothing}}}",
            &json!({"nothing": null})
        ),
        "undefined|null"
    );
    assert_eq!(
        go(
            "{{{queryEncode missing}}}|{{{queryEncode nothing}}}",
            &json!({"nothing": null})
        ),
        "|"
    );
}

#[test]
fn basic_auth_helper() {
    let c = json!({"user": "u", "pass": "p"});
    assert_eq!(js("{{{basicAuthHeaderValue user pass}}}", &c), "Basic dTpw");
    assert_eq!(
        js("{{basicAuthHeaderValue 'ab' 'c'}}", &c),
        "Basic YWI6Yw&#x3D;&#x3D;"
    );
    assert_eq!(
        js("{{{basicAuthHeaderValue missing missing}}}", &c),
        "Basic dW5kZWZpbmVkOnVuZGVmaW5lZA=="
    );
    assert_eq!(
        go("{{{basicAuthHeaderValue missing missing}}}", &c),
        "Basic Og=="
    );
    assert_eq!(
        go("{{basicAuthHeaderValue 'ab' 'c'}}", &c),
        "Basic YWI6Yw=="
    );
}

#[test]
fn format_with_offset_helper() {
    let c = ctx();
    let f = |fmt: &str, offset: i64| {
        format!("{{{{formatWithOffset timestamp.milliseconds {offset} '{fmt}'}}}}")
    };
    assert_eq!(js(&f("simple", 301), &c), "2020-02-04 12:59:46");
    assert_eq!(go(&f("simple", 301), &c), "2020-02-04 00:59:46");
    assert_eq!(js(&f("rfc3339", 0), &c), "2020-02-04T00:54:45.650Z");
    assert_eq!(go(&f("rfc3339", 0), &c), "2020-02-04T00:54:45Z");
    assert_eq!(js(&f("seconds", 0), &c), "1580777686");
    assert_eq!(go(&f("seconds", 0), &c), "1580777685");
    assert_eq!(js(&f("milliseconds", 5), &c), "1580777690650");
    assert_eq!(js(&f("other", 0), &c), "1580777685650");
    assert_eq!(js("{{formatWithOffset missing 1 'seconds'}}", &c), "NaN");
    assert_eq!(
        js_err("{{formatWithOffset missing 1 'rfc3339'}}", &c).message,
        "Invalid time value"
    );
}

#[test]
fn missing_helpers() {
    let c = ctx();
    let e = js_err("line\n  {{nope kind}}", &c);
    assert_eq!(e.kind, TemplateErrorKind::MissingHelper);
    assert_eq!(e.message, "Missing helper: \"nope\"");
    assert_eq!((e.line, e.column), (2, 3));
    assert_eq!(e.to_string(), "t.hbs:2:3: Missing helper: \"nope\"");
    // Without parameters a missing helper is a path.
    assert_eq!(js("[{{nope}}][{{nope a=1}}]", &c), "[][]");
    let e = js_err("{{edgeGridAuthMissing 'GET'}}", &c);
    assert_eq!(e.kind, TemplateErrorKind::MissingHelper);
    // A value that is not a function cannot be called.
    assert_eq!(js_err("{{kind 1}}", &c).kind, TemplateErrorKind::Render);
    assert_eq!(
        js_err("{{#nope kind}}x{{/nope}}", &c).kind,
        TemplateErrorKind::MissingHelper
    );
}

// ---------------------------------------------------------------------------------------------
// Strict mode

#[test]
fn strict_mode() {
    let c = ctx();
    assert_eq!(strict("{{project.key}}", &c).unwrap(), "default");
    let e = strict("{\n  \"a\": \"{{project.missing}}\"\n}", &c).unwrap_err();
    assert_eq!(e.kind, TemplateErrorKind::MissingPath);
    assert_eq!(e.message, "\"missing\" not defined in [object Object]");
    assert_eq!((e.line, e.column), (2, 11));
    // The parent is missing: "not defined in undefined".
    let e = strict("{{project.nope.href}}", &c).unwrap_err();
    assert_eq!(e.message, "\"href\" not defined in undefined");
    // Helper parameters only need their parents.
    assert_eq!(strict("{{#if missing}}x{{else}}y{{/if}}", &c).unwrap(), "y");
    assert_eq!(strict("{{#if project.missing}}x{{/if}}", &c).unwrap(), "");
    assert_eq!(
        strict("{{#if missing.deeper}}x{{/if}}", &c)
            .unwrap_err()
            .kind,
        TemplateErrorKind::MissingPath
    );
    // Present but null is defined.
    assert_eq!(strict("[{{nothing}}]", &c).unwrap(), "[]");
    // A missing helper in strict mode is a missing path in handlebars.js.
    let e = strict("{{edgeGridAuthMissing 'GET' '/'}}", &c).unwrap_err();
    assert_eq!(
        e.message,
        "\"edgeGridAuthMissing\" not defined in [object Object]"
    );
    assert_eq!(e.kind, TemplateErrorKind::MissingHelper);
    assert!(strict("{{@index}}", &c).is_err());
    assert_eq!(
        strict("{{#each tags}}{{@index}}{{/each}}", &c).unwrap(),
        "012"
    );
    // Non-strict renders the same templates with empty strings.
    assert_eq!(js("{{project.nope.href}}|{{missing.deeper}}", &c), "|");
}

// ---------------------------------------------------------------------------------------------
// Parse errors and limits

#[test]
fn parse_errors_have_positions() {
    let e = parse_err("a\n{{#if x}}\nb");
    assert_eq!((e.line, e.column), (2, 1));
    assert!(e.message.contains("never closed"), "{}", e.message);
    let e = parse_err("{{#if x}}\n  {{/each}}");
    assert_eq!((e.line, e.column), (2, 6));
    assert!(
        e.message.starts_with("if doesn't match each"),
        "{}",
        e.message
    );
    let e = parse_err("ok\nx {{name");
    assert_eq!((e.line, e.column), (2, 3));
    assert!(e.message.contains("unclosed"), "{}", e.message);
    let e = parse_err("{{name}}}");
    assert_eq!((e.line, e.column), (1, 7));
    assert!(parse_err("{{/if}}").message.contains("not open"));
    assert!(parse_err("{{else}}").message.contains("outside"));
    assert!(parse_err("a\u{0}b").message.contains("Lexical error"));
    assert!(parse_err("{{> partial}}").message.contains("partials"));
    assert!(parse_err("{{foo bar=}}").message.starts_with("expected"));
    assert!(
        parse_err("{{!-- unterminated")
            .message
            .contains("Lexical error")
    );
    let e = parse_err("x\n\n   {{^each a}}{{else if b}}{{/each}}");
    assert_eq!(e.line, 3);
}

#[test]
fn display_names_the_template() {
    let e = Template::parse("integrations/x/templates/default.json.hbs", "{{#if}}").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("integrations/x/templates/default.json.hbs:1:"),
        "{e}"
    );
    let t = Template::parse("/capabilities/x/endpoint/url", "{{a}}").unwrap();
    assert_eq!(t.name(), "/capabilities/x/endpoint/url");
}

#[test]
fn nesting_is_limited() {
    let depth = crate::parser::MAX_NESTING;
    let ok = "{{#if a}}".repeat(depth) + "x" + &"{{/if}}".repeat(depth);
    assert_eq!(js(&ok, &json!({"a": true})), "x");
    let too_deep = "{{#if a}}".repeat(depth + 1) + &"{{/if}}".repeat(depth + 1);
    assert!(parse_err(&too_deep).message.contains("nesting too deep"));
    let subexpressions =
        "{{x ".to_owned() + &"(y ".repeat(depth + 1) + &")".repeat(depth + 1) + "}}";
    assert!(
        parse_err(&subexpressions)
            .message
            .contains("nesting too deep")
    );
    let chain = "{{#if a}}".to_owned() + &"{{else if a}}".repeat(depth + 1) + "{{/if}}";
    assert!(parse_err(&chain).message.contains("nesting too deep"));
    // Unclosed openers fail quickly too.
    assert_eq!(
        parse_err(&"{{#if a}}".repeat(100_000)).kind,
        TemplateErrorKind::Parse
    );
}

#[test]
fn nesting_fits_a_small_stack() {
    let depth = crate::parser::MAX_NESTING;
    let src = "{{#each a}}{{#with this}}".repeat(depth / 2)
        + "{{x}}"
        + &"{{/with}}{{/each}}".repeat(depth / 2);
    let handle = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(move || {
            let t = Template::parse("deep", &src).unwrap();
            t.render(
                &json!({"a": [{"x": 1, "a": [1]}]}),
                RenderOptions::default(),
            )
            .map(|s| s.len())
        })
        .unwrap();
    assert!(handle.join().unwrap().is_ok());
}

#[test]
fn large_templates_parse_in_linear_time() {
    let unit = "{{#if a}}<p>{{b.c}}</p>{{else}}\n  x\n{{/if}}{{! c }}\\{{d}} text ";
    let src = unit.repeat(10 * 1024 * 1024 / unit.len());
    let start = std::time::Instant::now();
    let t = Template::parse("big", &src).unwrap();
    let out = t
        .render(
            &json!({"a": true, "b": {"c": "<"}}),
            RenderOptions::default(),
        )
        .unwrap();
    assert!(out.len() > 3_000_000, "{}", out.len());
    assert!(
        start.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    // Pathological inputs stay linear as well.
    for src in [
        "{{{{".repeat(1 << 18),
        "{{!".repeat(1 << 18),
        "\\{{".repeat(1 << 18),
        "{{\"".repeat(1 << 18),
        "{{#if a}}".repeat(1 << 18),
    ] {
        let start = std::time::Instant::now();
        let _ = Template::parse("p", &src);
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
    }
}

#[test]
fn helpers_rendering_templates_cannot_recurse_forever() {
    // `edgeGridAuth` renders its path argument as a template; here the path comes from the
    // context and calls `edgeGridAuth` with itself again.
    let call = "{{edgeGridAuth 'GET' p 'h' 'n' 'ns' 'g' 'k' 's' 't' 'a'}}";
    let c = json!({ "p": format!("/x{call}") });
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || render_with(call, &c, false, Compat::Go).map(|s| s.len()))
        .unwrap();
    let e = handle.join().unwrap().unwrap_err();
    assert_eq!(e.kind, TemplateErrorKind::Render, "{e}");
    assert!(e.message.contains("nest"), "{}", e.message);
}

#[test]
fn render_limits() {
    let c = json!({"a": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]});
    let bomb = "{{#each @root.a}}".repeat(12) + "xxxxxxxx" + &"{{/each}}".repeat(12);
    let t = Template::parse("bomb", &bomb).unwrap();
    let e = t.render(&c, RenderOptions::default()).unwrap_err();
    assert_eq!(e.kind, TemplateErrorKind::Render);
    assert!(e.message.contains("output exceeds"), "{}", e.message);
    let silent = "{{#each @root.a}}".repeat(12) + &"{{/each}}".repeat(12);
    let t = Template::parse("silent", &silent).unwrap();
    let limits = RenderLimits {
        max_steps: 100_000,
        ..RenderLimits::default()
    };
    let e = t
        .render_with_limits(&c, RenderOptions::default(), limits)
        .unwrap_err();
    assert!(e.message.contains("steps"), "{}", e.message);
}

// ---------------------------------------------------------------------------------------------
// Context preparation

#[test]
fn json_escaping_of_contexts() {
    let v = json!({"s": "a\"b\\c\n\t\u{8}\u{c}\r\u{1}\u{1f}<>&é\u{2028}\u{7f}", "n": 1, "k\"ey": ["x\"", null, true], "o": {"p": "\""}});
    assert_eq!(
        json_escape_context(&v),
        json!({"s": "a\\\"b\\\\c\\n\\t\\b\\f\\r\\u0001\\u001f<>&é\u{2028}\u{7f}", "n": 1, "k\"ey": ["x\\\"", null, true], "o": {"p": "\\\""}})
    );
    // A JSON-escaped value in double-stash is HTML-escaped on top.
    let escaped = json_escape_context(&json!({"t": "say \"hi\""}));
    assert_eq!(
        js("\"{{{t}}}\" \"{{t}}\"", &escaped),
        "\"say \\\"hi\\\"\" \"say \\&quot;hi\\&quot;\""
    );
}

#[test]
fn json_template_names() {
    assert!(is_json_template_name("templates/default.json.hbs"));
    assert!(is_json_template_name("x.JSON"));
    assert!(!is_json_template_name("template.text.hbs"));
}

#[test]
fn templates_are_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Template>();
    let t = Template::parse("t", "{{a}}").unwrap();
    let clone = t.clone();
    assert_eq!(
        clone
            .render(&json!({"a": 1}), RenderOptions::default())
            .unwrap(),
        "1"
    );
}
