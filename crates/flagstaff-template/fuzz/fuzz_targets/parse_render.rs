//! Parses arbitrary UTF-8 as a template and renders it against a small fixed context in both
//! compatibility modes, strict and not. Parsing and rendering must never panic, hang or
//! overflow the stack; every failure must be a `TemplateError`.

#![no_main]

use std::sync::OnceLock;

use flagstaff_template::{Compat, RenderLimits, RenderOptions, Template, json_escape_context};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fn contexts() -> &'static [Value; 2] {
    static CONTEXTS: OnceLock<[Value; 2]> = OnceLock::new();
    CONTEXTS.get_or_init(|| {
        let raw = json!({
            "kind": "flag",
            "name": "Demo <flag> & \"co\" 'x' `y` =",
            "zero": 0,
            "one": 1,
            "neg": -0.0,
            "big": 1e21,
            "tiny": 1.5e-7,
            "empty": "",
            "no": false,
            "yes": true,
            "nothing": null,
            "emptyObj": {},
            "emptyArr": [],
            "tags": ["a", "b", null, 3, [4, [5]], {"toString": "x"}],
            "project": {"key": "default", "name": "P", "environment": {"key": "production"}},
            "props": {"b": 1, "2": "two", "a": {"x": "y"}, "toHTML": 1},
            "members": [{"name": "Ann", "roles": ["admin"]}, {"name": "Bob", "roles": []}],
            "timestamp": {"milliseconds": 1_580_777_685_650_i64},
            "s": "héllo😀",
            "base-url": "https://example.com",
        });
        let escaped = json_escape_context(&raw);
        [raw, escaped]
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(template) = Template::parse("fuzz", source) else {
        return;
    };
    let limits = RenderLimits {
        max_output_bytes: 1 << 20,
        max_steps: 200_000,
    };
    for context in contexts() {
        for compat in [Compat::Js, Compat::Go] {
            for strict in [false, true] {
                let _ =
                    template.render_with_limits(context, RenderOptions { strict, compat }, limits);
            }
        }
    }
});
