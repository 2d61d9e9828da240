//! Render throughput on the conformance corpus, comparable with `bench/template-js/bench.js`
//! (handlebars.js 4.7.7 on the same workload, see `benches/support/corpus.rs`).
//!
//! ```text
//! cargo run --release -p flagstaff-template --example render_corpus [seconds=5] [js|go]
//! ```
//!
//! Prints `renders=… seconds=… renders_per_sec=…` after a one-second warm-up.

#[path = "../benches/support/corpus.rs"]
mod corpus;

use std::time::{Duration, Instant};

use flagstaff_template::{Compat, RenderOptions};

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let compat = match args.next().as_deref() {
        Some("go") => Compat::Go,
        _ => Compat::Js,
    };
    let workload = corpus::load();
    let options = RenderOptions {
        strict: false,
        compat,
    };
    let pass = || -> usize {
        workload
            .jobs
            .iter()
            .map(
                |(template, context)| match template.render(context, options) {
                    Ok(out) => out.len(),
                    Err(e) => panic!("render failed: {e}"),
                },
            )
            .sum()
    };
    // Fixed-size runs for instruction counting (e.g. under valgrind): `PASSES=n`.
    if let Some(passes) = std::env::var("PASSES")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
    {
        let start = Instant::now();
        for _ in 0..passes {
            pass();
        }
        println!(
            "passes={passes} renders={} seconds={:.3}",
            passes * workload.jobs.len(),
            start.elapsed().as_secs_f64()
        );
        return;
    }
    let bytes_per_pass = pass();
    let warm_up = Instant::now();
    while warm_up.elapsed() < Duration::from_secs(1) {
        pass();
    }
    let budget = Duration::from_secs_f64(seconds);
    let mut renders = 0usize;
    let start = Instant::now();
    while start.elapsed() < budget {
        pass();
        renders += workload.jobs.len();
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "flagstaff-template ({compat:?}): templates={} contexts={} bytes_per_pass={bytes_per_pass}",
        workload.templates, workload.contexts
    );
    println!(
        "renders={renders} seconds={elapsed:.3} renders_per_sec={}",
        (renders as f64 / elapsed).round()
    );
}
