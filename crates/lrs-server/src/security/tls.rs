//! Built-in TLS: rustls with the `ring` provider, TLS 1.3 preferred and
//! TLS 1.2 only with ECDHE and AEAD suites, ALPN `h2` and `http/1.1`, and a
//! certificate that is re-read from its PEM files on SIGHUP or when they
//! change, without a restart.
//!
//! It knows nothing about routes or requests: it turns a TCP listener into
//! a listener of finished TLS handshakes for `axum::serve`.

use crate::security::transport::TlsFiles;
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A client that has not finished its handshake by then is dropped, so a
/// slow or silent client cannot hold a handshake slot for long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once; beyond this the listener stops accepting
/// and new connections wait in the kernel's backlog.
const MAX_PENDING_HANDSHAKES: usize = 1024;

/// How often the certificate files' modification times are compared.
const RELOAD_CHECK_EVERY: Duration = Duration::from_secs(60);

pub const HANDSHAKE_FAILURES: &str = "lrs_tls_handshake_failures_total";
pub const CERTIFICATE_RELOADS: &str = "lrs_tls_certificate_reloads_total";

/// The cipher suites offered, strongest first: TLS 1.3's three, then TLS 1.2
/// with forward secrecy (ECDHE) and AEAD only. rustls has no CBC, RC4 or
/// static-RSA suites at all; this list also states the choice in our code
/// rather than inheriting whatever a later rustls default adds.
static CIPHER_SUITES: &[rustls::SupportedCipherSuite] = &[
    ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
    ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
    ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ring::cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ring::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ring::cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// The `ring` provider restricted to [`CIPHER_SUITES`].
pub fn crypto_provider() -> CryptoProvider {
    CryptoProvider {
        cipher_suites: CIPHER_SUITES.to_vec(),
        ..ring::default_provider()
    }
}

/// Why the certificate or key could not be used: which file, and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// `.describe(|| "what was being done")` on any result: the error says
/// what was being done, then why it failed.
trait Describe<T> {
    fn describe(self, what: impl FnOnce() -> String) -> Result<T, TlsError>;
}

impl<T, E: std::fmt::Display> Describe<T> for Result<T, E> {
    fn describe(self, what: impl FnOnce() -> String) -> Result<T, TlsError> {
        self.map_err(|error| TlsError(format!("{}: {error}", what())))
    }
}

/// The server side of TLS: the rustls configuration and the certificate it
/// presents, which [`ServerTls::spawn_reloader`] keeps current.
pub struct ServerTls {
    acceptor: TlsAcceptor,
    certificate: Arc<ReloadingCertificate>,
}

impl ServerTls {
    /// Reads and checks the certificate chain and key (the key must match
    /// the leaf certificate) and builds the rustls server configuration.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let provider = Arc::new(crypto_provider());
        let certificate = Arc::new(ReloadingCertificate::load(files.clone(), provider.clone())?);
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .describe(|| "tls protocol versions".into())?
            .with_no_client_auth()
            .with_cert_resolver(certificate.clone());
        // h2 first: a client offering both gets HTTP/2.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // rustls' default already refuses TLS 1.3 early data (0-RTT, which
        // can be replayed); said here so no one turns it on by accident.
        config.max_early_data_size = 0;
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certificate,
        })
    }

    /// Wraps a bound TCP listener: handshakes run in their own tasks (a slow
    /// client never holds up the others), only finished ones are accepted.
    pub fn listener(&self, tcp: TcpListener) -> TlsListener {
        let local_addr = tcp.local_addr().ok();
        let (ready, incoming) = mpsc::channel(64);
        let acceptor_task = tokio::spawn(accept_loop(tcp, self.acceptor.clone(), ready));
        TlsListener {
            incoming,
            local_addr,
            acceptor_task,
        }
    }

    /// Re-reads the certificate files on SIGHUP (always) and when their
    /// modification time or size changed (checked every minute). A bad new
    /// pair is logged and the current certificate kept. Abort the handle to
    /// stop.
    pub fn spawn_reloader(&self) -> JoinHandle<()> {
        let certificate = self.certificate.clone();
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|error| tracing::warn!(%error, "no SIGHUP handler: certificate files are only checked every minute"))
            .ok();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RELOAD_CHECK_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            tick.tick().await;
            loop {
                let forced = tokio::select! {
                    _ = tick.tick() => false,
                    () = next_hangup(&mut hangup) => true,
                };
                let certificate = certificate.clone();
                let outcome =
                    tokio::task::spawn_blocking(move || certificate.reload_if_changed(forced))
                        .await;
                match outcome {
                    Ok(Ok(true)) => {
                        metrics::counter!(CERTIFICATE_RELOADS, "outcome" => "loaded").increment(1);
                        tracing::info!("tls certificate reloaded");
                    }
                    Ok(Ok(false)) => {}
                    Ok(Err(error)) => {
                        metrics::counter!(CERTIFICATE_RELOADS, "outcome" => "failed").increment(1);
                        tracing::error!(error = %format!("{error:#}"), "tls certificate files changed but do not load; still serving the previous certificate");
                    }
                    Err(error) => tracing::error!(%error, "tls certificate reload task failed"),
                }
            }
        })
    }
}

async fn next_hangup(hangup: &mut Option<tokio::signal::unix::Signal>) {
    if let Some(signal) = hangup {
        if signal.recv().await.is_some() {
            return;
        }
    }
    std::future::pending().await
}

/// Accepts TCP connections and hands each to its own handshake task; those
/// that finish in time go to `ready`.
async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        let permit = handshakes
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (stream, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                handle_accept_error(error).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    // Fails only when the server is shutting down.
                    let _ = ready.send((tls, peer)).await;
                }
                // Scanners, clients that distrust the certificate, plain HTTP
                // sent to the TLS port: counted, logged only at debug level
                // (and never with the client's address).
                Ok(Err(error)) => {
                    metrics::counter!(HANDSHAKE_FAILURES, "reason" => "error").increment(1);
                    tracing::debug!(%error, "tls handshake failed");
                }
                Err(_) => {
                    metrics::counter!(HANDSHAKE_FAILURES, "reason" => "timeout").increment(1);
                    tracing::debug!("tls handshake timed out");
                }
            }
        });
    }
}

/// As axum's own TCP listener does: per-connection errors are ignored, any
/// other (too many open files) is logged and accepting pauses for a second.
async fn handle_accept_error(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accepting a connection failed; pausing for a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Connections whose TLS handshake has finished, for `axum::serve`. Dropping
/// it (as `axum::serve` does on shutdown) stops accepting and closes the port.
pub struct TlsListener {
    incoming: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: Option<SocketAddr>,
    acceptor_task: JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor_task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(connection) => connection,
            // The accept loop never ends by itself; if it died, accept nothing.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.local_addr
            .ok_or_else(|| std::io::Error::other("the TCP listener had no local address"))
    }
}

/// What identifies a version of the certificate files on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &std::path::Path) -> Result<FileStamp, TlsError> {
    // `metadata` follows symlinks: a Kubernetes secret swaps its `..data`
    // link, and the stamp changes with the file it points to.
    let metadata = std::fs::metadata(path).describe(|| format!("reading {}", path.display()))?;
    Ok(FileStamp {
        modified: metadata.modified().ok(),
        len: metadata.len(),
    })
}

/// The certificate presented to every client, swapped whole on reload (a
/// handshake sees either the old or the new pair, never a mix).
#[derive(Debug)]
struct ReloadingCertificate {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The stamps of the files the current pair was read from.
    loaded_from: Mutex<(FileStamp, FileStamp)>,
}

impl ReloadingCertificate {
    fn load(files: TlsFiles, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let stamps = (stamp(&files.cert)?, stamp(&files.key)?);
        let key = read_certified_key(&files, &provider)?;
        Ok(Self {
            files,
            provider,
            current: RwLock::new(Arc::new(key)),
            loaded_from: Mutex::new(stamps),
        })
    }

    /// Reloads when `forced` or when either file changed; `Ok(true)` when a
    /// new pair is in use. On error the current pair stays, and the next
    /// check tries again.
    fn reload_if_changed(&self, forced: bool) -> Result<bool, TlsError> {
        let stamps = (stamp(&self.files.cert)?, stamp(&self.files.key)?);
        if !forced && *self.loaded_from.lock().expect("stamp lock") == stamps {
            return Ok(false);
        }
        let key = read_certified_key(&self.files, &self.provider)?;
        *self.current.write().expect("certificate lock") = Arc::new(key);
        *self.loaded_from.lock().expect("stamp lock") = stamps;
        Ok(true)
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("certificate lock").clone())
    }
}

/// Reads the PEM chain (leaf first) and key, and checks that they belong
/// together: a mismatched pair would fail every handshake.
fn read_certified_key(
    files: &TlsFiles,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .describe(|| format!("reading tls certificate {}", files.cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .describe(|| format!("parsing tls certificate {}", files.cert.display()))?;
    if chain.is_empty() {
        return Err(TlsError(format!(
            "no certificate in {} (expected PEM `BEGIN CERTIFICATE` blocks, leaf first)",
            files.cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .describe(|| format!("reading tls private key {}", files.key.display()))?;
    CertifiedKey::from_der(chain, key, provider).describe(|| {
        format!(
            "tls key {} does not fit certificate {}",
            files.key.display(),
            files.cert.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tls13_and_forward_secret_aead_tls12_suites_are_offered() {
        let provider = crypto_provider();
        for suite in &provider.cipher_suites {
            let name = format!("{:?}", suite.suite());
            assert!(
                name.starts_with("TLS13_") || name.starts_with("TLS_ECDHE_"),
                "{name}"
            );
            assert!(
                name.contains("_GCM_") || name.contains("CHACHA20_POLY1305"),
                "{name}"
            );
        }
        assert_eq!(provider.cipher_suites.len(), 9);
    }

    #[test]
    fn missing_files_and_empty_pem_are_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        let error = ServerTls::load(&files).err().expect("missing files fail");
        assert!(format!("{error:#}").contains("cert.pem"), "{error:#}");
        std::fs::write(&files.cert, "not pem").unwrap();
        std::fs::write(&files.key, "not pem").unwrap();
        let error = ServerTls::load(&files).err().expect("empty pem fails");
        assert!(format!("{error:#}").contains("no certificate"), "{error:#}");
    }
}
