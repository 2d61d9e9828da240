//! Criterion benchmark: render the conformance corpus (see `support/corpus.rs`); throughput is
//! reported in renders per second (one element = one render).

mod support {
    pub mod corpus;
}

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flagstaff_template::{Compat, RenderOptions, Template};
use std::hint::black_box;

fn render_corpus(c: &mut Criterion) {
    let workload = support::corpus::load();
    eprintln!(
        "render workload: {} templates x {} contexts = {} renders per iteration",
        workload.templates,
        workload.contexts,
        workload.jobs.len()
    );
    let mut group = c.benchmark_group("render");
    group.throughput(Throughput::Elements(workload.jobs.len() as u64));
    for compat in [Compat::Js, Compat::Go] {
        let options = RenderOptions {
            strict: false,
            compat,
        };
        group.bench_function(format!("corpus_{compat:?}").to_lowercase(), |b| {
            b.iter(|| {
                for (template, context) in &workload.jobs {
                    black_box(template.render(black_box(context), options).ok());
                }
            });
        });
    }
    group.finish();

    // Parsing cost, for reference: every distinct template of the corpus once.
    let mut seen = std::collections::HashSet::new();
    let sources: Vec<(String, String)> = workload
        .jobs
        .iter()
        .filter(|(t, _)| seen.insert(t.name().to_owned()))
        .map(|(t, _)| {
            let (integration, file) = t.name().split_once('/').unwrap_or_default();
            let path = support::corpus::conformance_dir()
                .join("integration-framework/integrations")
                .join(integration)
                .join(file);
            (
                t.name().to_owned(),
                std::fs::read_to_string(path).unwrap_or_default(),
            )
        })
        .collect();
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(sources.len() as u64));
    group.bench_function("corpus", |b| {
        b.iter(|| {
            for (name, source) in &sources {
                black_box(Template::parse(name.as_str(), black_box(source)).ok());
            }
        });
    });
    group.finish();
}

criterion_group!(benches, render_corpus);
criterion_main!(benches);
