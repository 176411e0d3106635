//! `lrs serve`: the flags of every room, the order things open in (the
//! configuration files first, then the certificate, the store, the port,
//! the control socket), and the server until SIGTERM or SIGINT.

use crate::args::{
    AnalyticsArgs, AuditArgs, LimitArgs, MonitoringArgs, OAuthArgs, TasksArgs, TenancyArgs,
    TransportArgs, WebArgs,
};
use crate::data::{open_store, DataArgs};
use anyhow::Context;
use lrs_server::security::tls::ServerTls;
use lrs_server::security::transport::TransportConfig;
use lrs_server::{AppState, ServeConfig};
use std::net::SocketAddr;

/// Every flag of `lrs serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Address to listen on.
    #[arg(long, env = "LRS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub monitoring: MonitoringArgs,
    #[command(flatten)]
    pub tenancy: TenancyArgs,
    #[command(flatten)]
    pub transport: TransportArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub oauth: OAuthArgs,
    #[command(flatten)]
    pub audit: AuditArgs,
    #[command(flatten)]
    pub web: WebArgs,
    #[command(flatten)]
    pub analytics: AnalyticsArgs,
    #[command(flatten)]
    pub tasks: TasksArgs,
}

/// Runs the server until SIGTERM or SIGINT, then drains and closes.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let ServeArgs {
        data,
        listen,
        monitoring,
        tenancy,
        transport,
        limits,
        oauth,
        audit,
        web,
        analytics,
        tasks,
    } = args;
    // Read the providers file before anything opens: a mistake in it
    // stops the start with the reason.
    let mut oauth = oauth.into_config().map_err(anyhow::Error::msg)?;
    let web = web.into_config()?;
    let shutdown = shutdown_signal()?;
    // The certificate first: a bad file fails before the store opens or
    // the port does.
    let transport = transport.into_config()?;
    let tls = transport.tls.as_ref().map(ServerTls::load).transpose()?;
    let store = open_store(&data)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(address = %local, scheme, data_dir = %data.data_dir.display(), head = store.head(), "serving xAPI at /xapi");
    warn_about_transport(&transport, local);
    // One public address: the tokens' issuer and security.txt's Canonical.
    oauth.public_url = transport
        .public_url
        .as_ref()
        .map(|url| url.trim_end_matches('/').to_owned());
    let analytics = analytics.into_config(&data.data_dir)?;
    let _follower = lrs_server::ops::analytics::start(store.clone(), &analytics);
    let _warming = lrs_server::ops::background::warm(store.clone());
    let mut config = ServeConfig::new(data.data_dir.clone(), local);
    config.xapi.origin_extensions = tenancy.into_extensions();
    config.ops = monitoring.into_config();
    config.transport = transport;
    config.limits = limits.into_config();
    config.oauth = oauth;
    config.audit = audit.into_settings();
    config.web = web;
    config.analytics = Some(analytics);
    config.tasks = tasks.into_config()?;
    let state = AppState::try_new(store.clone(), config).context("opening the audit trail")?;
    let control = match crate::control::listen(store, state.audit.clone()) {
        Ok(control) => Some(control),
        Err(error) => {
            tracing::warn!(%error, "no control socket: `lrs backup` and `lrs erase` will need the server stopped");
            None
        }
    };
    let served = match tls {
        Some(tls) => lrs_server::run_tls(listener, tls, state, shutdown).await,
        None => lrs_server::run(listener, state, shutdown).await,
    };
    drop(control);
    Ok(served?)
}

/// Installs the SIGTERM/SIGINT handlers now (before the port opens, so an
/// early signal is never the default "die at once") and resolves on either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
        tracing::info!("shutdown requested: draining requests");
    })
}

/// Startup warnings about choices that are fine on a laptop and not in
/// production: plain HTTP off loopback, no security.txt contact, a
/// security.txt that has already expired.
fn warn_about_transport(transport: &TransportConfig, listen: SocketAddr) {
    if transport.tls.is_none() && !listen.ip().is_loopback() {
        tracing::warn!(
            address = %listen,
            "serving plain HTTP on a non-loopback address: credentials and personal data cross \
             the network in clear unless a TLS-terminating proxy is in front; \
             set --tls-cert and --tls-key (LRS_TLS_CERT, LRS_TLS_KEY) for built-in TLS"
        );
    }
    if transport.security_contacts.is_empty() && !listen.ip().is_loopback() {
        tracing::warn!(
            "no --security-contact (LRS_SECURITY_CONTACT): /.well-known/security.txt answers 404"
        );
    }
    if let Some(expires) = transport.security_txt_expires {
        if expires <= chrono::Utc::now() {
            tracing::warn!(%expires, "--security-txt-expires lies in the past: security.txt is stale");
        }
    }
}
