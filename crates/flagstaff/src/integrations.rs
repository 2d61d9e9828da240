//! `flagstaff integrations …`: the integration author's tools (schema, lint, preview).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use flagstaff_manifest::preview::{Preview, PreviewInput, Target, curl_command, preview};
use flagstaff_manifest::{LintOptions, SampleContexts, Severity, load_integration};
use flagstaff_template::Compat;
use serde_json::{Map, Value};

#[derive(clap::Subcommand)]
pub enum IntegrationsCommand {
    /// Print the JSON Schema (draft-07) of manifest.json, generated from Flagstaff's model.
    Schema,
    /// Check a catalogue directory (or one integration directory) against the schema and
    /// every framework rule. Prints one line per finding; exits 1 if any is an error.
    Lint(LintArgs),
    /// Print the request an integration would send for an event.
    Preview(PreviewArgs),
}

#[derive(clap::Args)]
pub struct LintArgs {
    /// A catalogue (a directory of integration directories, or an integration-framework
    /// checkout) or one integration directory.
    path: PathBuf,
    /// Sample audit-event contexts to render templates against (the catalogue's
    /// `sample-context/` layout). Default: found next to the catalogue, else built in.
    #[arg(long)]
    sample_contexts: Option<PathBuf>,
    /// Also allow this integration key to set requiresOAuth (repeatable).
    #[arg(long = "allow-oauth")]
    allow_oauth: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: LintFormat,
    /// Hide warnings.
    #[arg(long)]
    quiet: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LintFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
pub struct PreviewArgs {
    /// The integration directory (with manifest.json).
    integration: PathBuf,
    /// The event as JSON: an audit-event context for auditLogEventsHook, the environment
    /// payload for featureStore, `{deepLink, metadata}` for flagLink, the response context
    /// for syncedSegment.
    #[arg(long)]
    context: PathBuf,
    /// Form-variable values as a JSON object; missing ones use the manifest's defaultValue.
    /// Approval environment and approval form values go under "environment" and "approval".
    #[arg(long)]
    form_vars: Option<PathBuf>,
    /// Which capability request: auditLogEventsHook (default),
    /// auditLogEventsHook.validation, eventsHook.<template>, featureStore,
    /// featureStore.validation, approval.<request>, flagLink, syncedSegment.
    #[arg(long, default_value = "auditLogEventsHook")]
    capability: String,
    #[arg(long, value_enum, default_value = "text")]
    format: PreviewFormat,
    /// Renderer semantics: `go` (LaunchDarkly's production renderer, the default) or `js`
    /// (handlebars.js, what the catalogue's own preview uses).
    #[arg(long, value_enum, default_value = "go")]
    compat: CompatArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PreviewFormat {
    Text,
    Json,
    Curl,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum CompatArg {
    Go,
    Js,
}

pub fn run(command: IntegrationsCommand) -> Result<ExitCode> {
    match command {
        IntegrationsCommand::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(flagstaff_manifest::schema::manifest_schema())?
            );
            Ok(ExitCode::SUCCESS)
        }
        IntegrationsCommand::Lint(args) => lint(args),
        IntegrationsCommand::Preview(args) => run_preview(args),
    }
}

fn lint(args: LintArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let samples = match &args.sample_contexts {
        Some(dir) => Some(
            SampleContexts::load(dir)
                .with_context(|| format!("cannot read sample contexts in {}", dir.display()))?,
        ),
        None => None,
    };
    let options = LintOptions {
        oauth_integrations: args.allow_oauth.clone(),
    };
    let report = flagstaff_manifest::lint_path(&args.path, samples.as_ref(), &options)
        .with_context(|| format!("cannot read {}", args.path.display()))?;
    let elapsed = started.elapsed();
    let mut out = std::io::stdout().lock();
    match args.format {
        LintFormat::Json => {
            let diagnostics: Vec<_> = report
                .diagnostics()
                .filter(|d| !args.quiet || d.severity == Severity::Error)
                .collect();
            serde_json::to_writer_pretty(
                &mut out,
                &serde_json::json!({
                    "integrations": report.integrations.len(),
                    "errors": report.error_count(),
                    "warnings": report.warning_count(),
                    "diagnostics": diagnostics,
                }),
            )?;
            writeln!(out)?;
        }
        LintFormat::Text => {
            for diagnostic in report.diagnostics() {
                if args.quiet && diagnostic.severity != Severity::Error {
                    continue;
                }
                writeln!(out, "{diagnostic}")?;
            }
            let rejected = report
                .integrations
                .iter()
                .filter(|r| r.has_errors())
                .count();
            let samples = match &report.samples {
                Some(dir) => format!("sample contexts from {}", dir.display()),
                None => "built-in sample contexts".to_string(),
            };
            writeln!(
                out,
                "{} integration(s): {} ok, {} with errors; {} error(s), {} warning(s); {samples}; {:.0} ms",
                report.integrations.len(),
                report.integrations.len() - rejected,
                rejected,
                report.error_count(),
                report.warning_count(),
                elapsed.as_secs_f64() * 1000.0
            )?;
        }
    }
    Ok(if report.error_count() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn read_json(path: &Path, what: &str) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} file {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("the {what} file {} is not valid JSON", path.display()))
}

fn run_preview(args: PreviewArgs) -> Result<ExitCode> {
    let target = Target::parse(&args.capability).map_err(anyhow::Error::msg)?;
    let event = read_json(&args.context, "context")?;
    let form_values: Map<String, Value> = match &args.form_vars {
        Some(path) => match read_json(path, "form variables")? {
            Value::Object(values) => values,
            _ => bail!("the form variables file must hold a JSON object of key → value"),
        },
        None => Map::new(),
    };
    let root = args.integration.parent().unwrap_or(&args.integration);
    let samples = SampleContexts::discover(root);
    let report = load_integration(&args.integration, &samples, &LintOptions::default());
    let Some(integration) = report.integration else {
        for diagnostic in &report.diagnostics {
            eprintln!("{diagnostic}");
        }
        bail!(
            "{} does not load; fix the errors above (`flagstaff integrations lint`)",
            args.integration.display()
        );
    };
    let input = PreviewInput {
        form_values,
        oauth: None,
        compat: match args.compat {
            CompatArg::Go => Compat::Go,
            CompatArg::Js => Compat::Js,
        },
        standard_payload: None,
    };
    let result = preview(&integration, &target, &event, &input)?;
    let mut out = std::io::stdout().lock();
    match (args.format, &result) {
        (PreviewFormat::Json, _) => {
            serde_json::to_writer(&mut out, &result.to_json())?;
            writeln!(out)?;
        }
        (PreviewFormat::Curl, Preview::Request(request)) => {
            writeln!(out, "{}", curl_command(request))?;
        }
        (_, Preview::Request(request)) => {
            writeln!(out, "{} {}", request.method, request.url)?;
            for header in &request.headers {
                writeln!(out, "{}: {}", header.name, header.value)?;
            }
            writeln!(out)?;
            writeln!(out, "{}", request.body)?;
        }
        (_, Preview::Skipped(reason)) => {
            writeln!(out, "nothing would be sent: {reason}")?;
        }
        (_, Preview::Rendered(value)) => {
            writeln!(out, "{}", serde_json::to_string_pretty(value)?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
