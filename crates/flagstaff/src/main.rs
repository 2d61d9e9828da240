//! The `flagstaff` command.

mod integrations;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Flagstaff: a self-hosted feature-management server compatible with LaunchDarkly's REST API
/// v2, SDK protocols and partner integration framework.
#[derive(Parser)]
#[command(name = "flagstaff", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    ///
    /// On first start it creates an account with an owner member and an owner API token: the
    /// value of FLAGSTAFF_BOOTSTRAP_TOKEN if set (format api-<uuid>), otherwise a random token
    /// printed once to stderr. Stops gracefully on SIGTERM or Ctrl-C.
    Serve(ServeArgs),
    /// Print the OpenAPI document generated from the server's handlers.
    Openapi,
    /// Tools for integration manifests: schema, lint, preview.
    #[command(subcommand)]
    Integrations(integrations::IntegrationsCommand),
    /// Administration on the database, without a running server.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Set a member's sign-in password (for the sign-in page and OAuth consent). Reads the
    /// password from the first line of stdin. The change is audited like any other.
    SetPassword(SetPasswordArgs),
}

/// Where the database is: the same flags and variables as `serve`.
#[derive(clap::Args)]
struct DatabaseArgs {
    /// Directory of the embedded SQLite database (flagstaff.db). Ignored with --database-url.
    #[arg(long, env = "FLAGSTAFF_DATA_DIR", default_value = "./flagstaff-data")]
    data_dir: PathBuf,
    /// Database URL: sqlite://PATH or postgres://USER@HOST:PORT/DB.
    #[arg(long, env = "FLAGSTAFF_DATABASE_URL")]
    database_url: Option<String>,
}

impl DatabaseArgs {
    fn url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("flagstaff.db").display()),
        }
    }
}

#[derive(clap::Args)]
struct SetPasswordArgs {
    /// The member's e-mail address (the first owner is owner@flagstaff.local).
    #[arg(long)]
    email: String,
    #[command(flatten)]
    database: DatabaseArgs,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "FLAGSTAFF_LISTEN", default_value = "127.0.0.1:8030")]
    listen: SocketAddr,
    /// Directory for the embedded SQLite database (flagstaff.db), created if missing.
    /// Ignored when --database-url is given.
    #[arg(long, env = "FLAGSTAFF_DATA_DIR", default_value = "./flagstaff-data")]
    data_dir: PathBuf,
    /// Database URL: sqlite://PATH or postgres://USER@HOST:PORT/DB.
    /// Defaults to SQLite in --data-dir.
    #[arg(long, env = "FLAGSTAFF_DATABASE_URL")]
    database_url: Option<String>,
    /// Requests each API token may make per 10-second window (LaunchDarkly's window); over
    /// it, 429 with Retry-After. 0 turns rate limiting off.
    #[arg(long, env = "FLAGSTAFF_RATE_LIMIT", default_value_t = flagstaff_server::ratelimit::DEFAULT_LIMIT_PER_WINDOW)]
    rate_limit: u32,
    /// Integration catalogue directory to load (repeatable): a directory of integrations, an
    /// integration-framework checkout, or one integration. Reloaded when files change.
    #[arg(
        long = "integrations-dir",
        env = "FLAGSTAFF_INTEGRATIONS_DIR",
        value_delimiter = ','
    )]
    integrations_dirs: Vec<PathBuf>,
    /// Let webhooks and integrations reach this CIDR although it is private, loopback or
    /// link-local (repeatable; FLAGSTAFF_ALLOW_OUTBOUND takes a comma-separated list).
    #[arg(long = "allow-outbound")]
    allow_outbound: Vec<String>,
    /// The public URL of this server, used in links inside delivered payloads.
    #[arg(long, env = "FLAGSTAFF_BASE_URL")]
    base_url: Option<String>,
    /// Attempts per delivery before it is marked failed.
    #[arg(long, env = "FLAGSTAFF_DELIVERY_MAX_ATTEMPTS", default_value_t = 8)]
    delivery_max_attempts: i64,
    /// First delivery retry delay in milliseconds (doubles per attempt, with jitter).
    #[arg(long, env = "FLAGSTAFF_DELIVERY_RETRY_MS", default_value_t = 5000)]
    delivery_retry_ms: u64,
    /// Consecutive failed deliveries after which a webhook or integration is turned off
    /// (0: never).
    #[arg(long, env = "FLAGSTAFF_DELIVERY_DISABLE_AFTER", default_value_t = 25)]
    delivery_disable_after: u32,
    /// Seconds between status checks of an approval request that an approval integration
    /// decides (LaunchDarkly polls every 5 minutes).
    #[arg(long, env = "FLAGSTAFF_APPROVAL_POLL_SECS", default_value_t = 300)]
    approval_poll_secs: u64,
    /// Requests to approval integrations in flight at once (status checks, creations, …).
    #[arg(long, env = "FLAGSTAFF_APPROVAL_CONCURRENCY", default_value_t = 16)]
    approval_concurrency: usize,
    /// PEM file of the CA certificates that sign your Redis servers' TLS certificates:
    /// `rediss://` feature stores and `tlsEnabled` big-segment stores are verified against
    /// these instead of the system's roots.
    #[arg(long, env = "FLAGSTAFF_REDIS_CA_FILE")]
    redis_ca_file: Option<PathBuf>,
    /// Owner API token to create on first start (api-<uuid>). Read from the environment only,
    /// so it does not show in process listings.
    #[arg(skip)]
    bootstrap_token: Option<String>,
}

#[tokio::main]
async fn main() -> Result<std::process::ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("FLAGSTAFF_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(mut args) => {
            args.bootstrap_token = std::env::var("FLAGSTAFF_BOOTSTRAP_TOKEN")
                .ok()
                .filter(|t| !t.is_empty());
            serve(args).await?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Openapi => {
            println!(
                "{}",
                serde_json::to_string_pretty(&flagstaff_server::openapi())?
            );
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Integrations(command) => integrations::run(command),
        Command::Admin(AdminCommand::SetPassword(args)) => {
            set_password(args).await?;
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

async fn set_password(args: SetPasswordArgs) -> Result<()> {
    let url = args.database.url();
    if args.database.database_url.is_none() && !args.database.data_dir.exists() {
        bail!(
            "{} does not exist: start `flagstaff serve` once first, or pass --data-dir/--database-url",
            args.database.data_dir.display()
        );
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprint!(
            "New password for {} (input is echoed; pipe it to hide it): ",
            args.email
        );
    }
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("cannot read the password from stdin")?;
    let password = password.trim_end_matches(['\r', '\n']);
    let store = flagstaff_store::connect(&url)
        .await
        .with_context(|| format!("cannot open database {}", redact(&url)))?;
    let result = flagstaff_server::services::oauth::set_password_offline(
        store.clone(),
        &args.email,
        password,
        &Default::default(),
    )
    .await;
    store.close().await;
    match result {
        Ok(member) => {
            eprintln!(
                "Set the sign-in password of {} ({}).",
                member.email, member.id
            );
            Ok(())
        }
        Err(e) => bail!("{e}"),
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    let data_dir = args.database_url.is_none().then(|| args.data_dir.clone());
    let url = match args.database_url {
        Some(url) => url,
        None => {
            std::fs::create_dir_all(&args.data_dir).with_context(|| {
                format!("cannot create data directory {}", args.data_dir.display())
            })?;
            format!("sqlite://{}", args.data_dir.join("flagstaff.db").display())
        }
    };
    let store = flagstaff_store::connect(&url)
        .await
        .with_context(|| format!("cannot open database {}", redact(&url)))?;
    let (state, boot) =
        match flagstaff_server::prepare(store.clone(), args.bootstrap_token.as_deref()).await {
            Ok(v) => v,
            Err(e) => bail!("bootstrap failed: {e}"),
        };
    if let Some(token) = &boot.generated_token {
        eprintln!(
            "\nCreated the owner API access token (shown only this once; store it safely):\n\n    {token}\n"
        );
    }
    let policy = flagstaff_outbound::OutboundPolicy::from_env_and_args(
        &args.allow_outbound,
        std::env::var(flagstaff_outbound::ALLOW_OUTBOUND_ENV)
            .ok()
            .as_deref(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let secrets = flagstaff_outbound::SecretBox::from_env_or_data_dir(
        std::env::var("FLAGSTAFF_SECRET_KEY").ok().as_deref(),
        data_dir.as_deref().or(Some(args.data_dir.as_path())),
    )
    .map_err(|e| anyhow::anyhow!("integration secrets: {e}"))?;
    if data_dir.is_none() && std::env::var_os("FLAGSTAFF_SECRET_KEY").is_none() {
        tracing::warn!(
            "integration secrets are encrypted with the key in {}; with several nodes on one \
             database, set the same FLAGSTAFF_SECRET_KEY on each",
            args.data_dir.display()
        );
    }
    let settings = flagstaff_server::integrations::DeliverySettings {
        max_attempts: args.delivery_max_attempts.max(1),
        base_backoff: std::time::Duration::from_millis(args.delivery_retry_ms),
        disable_after_failures: args.delivery_disable_after,
        base_url: args
            .base_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", args.listen)),
        ..Default::default()
    };
    let integrations = flagstaff_server::integrations::Integrations::new(
        args.integrations_dirs.clone(),
        secrets,
        policy,
        settings,
    )
    .context("cannot prepare the integration catalogue")?
    .with_approval_settings(
        flagstaff_server::integrations::approval_jobs::ApprovalJobSettings {
            poll_interval: std::time::Duration::from_secs(args.approval_poll_secs.max(1)),
            concurrency: args.approval_concurrency.max(1),
            ..Default::default()
        },
    );
    let integrations = match &args.redis_ca_file {
        None => integrations,
        Some(path) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read --redis-ca-file {}", path.display()))?;
            integrations
                .with_redis_root_certificates(pem)
                .map_err(|e| anyhow::anyhow!("--redis-ca-file {}: {e}", path.display()))?
        }
    };
    let catalogue = integrations.catalogue.current();
    for rejected in &catalogue.rejected {
        for diagnostic in rejected.diagnostics.iter().filter(|d| d.is_error()) {
            tracing::warn!(integration = %rejected.key, "integration not loaded: {diagnostic}");
        }
    }
    tracing::info!(
        integrations = catalogue.len(),
        rejected = catalogue.rejected.len(),
        "integration catalogue loaded"
    );
    let state = state.with_integrations(integrations).with_oauth(
        flagstaff_server::services::oauth::OAuthSettings {
            issuer: args.base_url.clone(),
            ..Default::default()
        },
    );
    let _watch = if args.integrations_dirs.is_empty() {
        None
    } else {
        match state.integrations.catalogue.watch(
            std::time::Duration::from_millis(300),
            |catalogue| {
                tracing::info!(
                    integrations = catalogue.len(),
                    rejected = catalogue.rejected.len(),
                    "integration catalogue reloaded"
                );
            },
        ) {
            Ok(guard) => Some(guard),
            Err(e) => {
                tracing::warn!("cannot watch the integration directories for changes: {e}");
                None
            }
        }
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(listen = %listener.local_addr()?, database = store.dialect(), "Flagstaff is serving the REST API at /api/v2");
    let sdk = state.sdk.clone();
    let integrations = state.integrations.clone();
    flagstaff_server::serve(
        listener,
        flagstaff_server::app(state.with_rate_limit(args.rate_limit)),
        async move {
            shutdown_signal().await;
            // Open SDK streams would keep graceful shutdown waiting forever.
            sdk.close_streams();
        },
    )
    .await?;
    // Hand this node's feature stores to the other nodes now rather than when leases lapse.
    if let Some(store_sync) = integrations.store_sync.get() {
        store_sync.shutdown().await;
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Hides the password of a database URL in messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}://{user}:***{}", &url[..scheme], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
