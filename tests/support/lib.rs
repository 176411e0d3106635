//! Test support: start a real `lrs` server process on a free port with a
//! temporary data directory and a credential generated for the test, and
//! talk xAPI to it.

use anyhow::{bail, Context};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use reqwest::StatusCode;

pub mod activity;
pub mod analytics_support;

/// A server process under test. Killed when dropped.
pub struct TestServer {
    pub data_dir: PathBuf,
    pub base_url: String,
    pub key: String,
    pub secret: String,
    binary: PathBuf,
    /// The master key this test generated for the server (hex).
    pub master_key_hex: String,
    /// Extra environment for the server process (set before `launch`).
    pub env: Vec<(String, String)>,
    /// Extra arguments after `serve` (set before `launch`).
    pub serve_args: Vec<String>,
    /// Capture the server's stderr (its log) instead of inheriting it; read
    /// it with [`TestServer::stderr`]. Set before `launch`.
    pub capture_stderr: bool,
    stderr_file: Option<tempfile::NamedTempFile>,
    child: Option<Child>,
    _temp: Option<tempfile::TempDir>,
}

/// A fresh 32-byte master key as hex, generated for this test run.
pub fn generated_master_key() -> String {
    use rand::RngCore;
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// A port nothing listens on now (IPv4 loopback).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TestServer {
    /// Starts a server on a new temporary data directory with one credential
    /// (tenant `default`, all scopes).
    pub fn start(binary: &Path) -> anyhow::Result<Self> {
        let mut server = Self::prepare(binary)?;
        server.launch()?;
        Ok(server)
    }

    /// Like [`TestServer::start`] without launching: set `env`, `serve_args`
    /// or more credentials, then call [`TestServer::launch`].
    pub fn prepare(binary: &Path) -> anyhow::Result<Self> {
        let temp = tempfile::tempdir()?;
        let data_dir = temp.path().to_path_buf();
        let mut server = Self {
            data_dir,
            base_url: String::new(),
            key: String::new(),
            secret: String::new(),
            binary: binary.to_path_buf(),
            master_key_hex: generated_master_key(),
            // The tests' months lie in the past: a server that closed them
            // by itself a minute after starting would serve half a month
            // as delivered. Tests of closing push their own value.
            env: vec![("LRS_FIGURES_CLOSE_AFTER_DAYS".into(), "0".into())],
            serve_args: Vec::new(),
            capture_stderr: false,
            stderr_file: None,
            child: None,
            _temp: Some(temp),
        };
        let (key, secret) = server.add_credential("test", "default", &[])?;
        server.key = key;
        server.secret = secret;
        Ok(server)
    }

    /// Runs an `lrs` subcommand against this data directory (server stopped).
    pub fn lrs(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = Command::new(&self.binary)
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env("LRS_MASTER_KEY", &self.master_key_hex)
            .env("LRS_LOG", "warn")
            .output()?;
        if !output.status.success() {
            bail!(
                "lrs {args:?} failed: {}{}",
                String::from_utf8_lossy(&output.stderr),
                String::from_utf8_lossy(&output.stdout)
            );
        }
        Ok(String::from_utf8(output.stdout)?)
    }

    /// Like [`Self::lrs`] (on this server's data directory) but returns
    /// the whole outcome, failing or not.
    pub fn lrs_here(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        let mut with_dir: Vec<&str> = args.to_vec();
        let dir = self.data_dir.to_str().expect("a UTF-8 data directory");
        with_dir.extend(["--data-dir", dir]);
        self.lrs_outcome(&with_dir)
    }

    /// Runs an `lrs` subcommand with this server's master key and returns
    /// its whole outcome (exit status, stdout, stderr), failing or not.
    /// `--data-dir` is not added: pass it where the command wants it.
    pub fn lrs_outcome(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        Ok(Command::new(&self.binary)
            .args(args)
            .env("LRS_MASTER_KEY", &self.master_key_hex)
            .env("LRS_LOG", "warn")
            .output()?)
    }

    /// Starts a server on an existing data directory (a restore, a copy)
    /// with the same binary and master key as this one.
    pub fn sibling(&self, data_dir: &Path) -> anyhow::Result<TestServer> {
        let mut server = Self {
            data_dir: data_dir.to_path_buf(),
            base_url: String::new(),
            key: self.key.clone(),
            secret: self.secret.clone(),
            binary: self.binary.clone(),
            master_key_hex: self.master_key_hex.clone(),
            env: self.env.clone(),
            serve_args: self.serve_args.clone(),
            capture_stderr: self.capture_stderr,
            stderr_file: None,
            child: None,
            _temp: None,
        };
        server.launch()?;
        Ok(server)
    }

    /// Issues a credential (server must be stopped) and returns (key, secret).
    pub fn add_credential(
        &self,
        name: &str,
        tenant: &str,
        scopes: &[&str],
    ) -> anyhow::Result<(String, String)> {
        let mut args = vec!["credentials", "add", "--name", name, "--tenant", tenant];
        for scope in scopes {
            args.push("--scope");
            args.push(scope);
        }
        let line = self.lrs(&args)?;
        let (key, secret) = line
            .trim()
            .split_once(' ')
            .context("credentials add prints KEY SECRET")?;
        Ok((key.to_owned(), secret.to_owned()))
    }

    /// Issues a credential with every xAPI scope (`all`) and, if given, a
    /// role (server must be stopped): the API and staff tests' caller.
    /// Returns (key, secret).
    pub fn credential_with_role(
        &self,
        name: &str,
        tenant: &str,
        role: Option<&str>,
    ) -> (String, String) {
        let mut args = vec![
            "credentials",
            "add",
            "--name",
            name,
            "--tenant",
            tenant,
            "--scope",
            "all",
        ];
        if let Some(role) = role {
            args.extend(["--role", role]);
        }
        let line = self.lrs(&args).expect("credentials add");
        let (key, secret) = line
            .trim()
            .split_once(' ')
            .expect("credentials add prints KEY SECRET");
        (key.to_owned(), secret.to_owned())
    }

    /// Starts the server process and waits until it answers.
    pub fn launch(&mut self) -> anyhow::Result<()> {
        self.launch_on(free_port())
    }

    /// [`TestServer::launch`] on a given port (one a config file names).
    pub fn launch_on(&mut self, port: u16) -> anyhow::Result<()> {
        self.launch_at(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// [`TestServer::launch`] with `--listen ADDR` (an IPv6 address too:
    /// `[::1]:PORT`, or `[::]:PORT` for every address of both families,
    /// which the test reaches at `[::1]`). `base_url` names the address.
    pub fn launch_at(&mut self, listen: std::net::SocketAddr) -> anyhow::Result<()> {
        let reach = if listen.ip().is_unspecified() {
            let loopback = match listen {
                std::net::SocketAddr::V4(_) => std::net::IpAddr::from([127, 0, 0, 1]),
                std::net::SocketAddr::V6(_) => {
                    std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
                }
            };
            std::net::SocketAddr::new(loopback, listen.port())
        } else {
            listen
        };
        self.base_url = format!("http://{reach}");
        let stderr = if self.capture_stderr {
            if self.stderr_file.is_none() {
                self.stderr_file = Some(tempfile::NamedTempFile::new()?);
            }
            let path = self.stderr_file.as_ref().expect("just made").path();
            // Appending: a relaunch adds to what the earlier run logged.
            Stdio::from(std::fs::File::options().append(true).open(path)?)
        } else {
            Stdio::inherit()
        };
        let child = Command::new(&self.binary)
            .args(["serve", "--listen", &listen.to_string(), "--data-dir"])
            .arg(&self.data_dir)
            .args(&self.serve_args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("LRS_MASTER_KEY", &self.master_key_hex)
            .env("LRS_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(reach).is_ok() {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("server exited early: {status}\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("server did not start listening within 30 s")
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for the graceful exit.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            Command::new("kill").args(["-TERM", &pid]).status()?;
            let status = child.wait()?;
            if !status.success() {
                bail!("server exited with {status} after SIGTERM");
            }
        }
        Ok(())
    }

    /// What the server wrote to stderr so far (empty unless
    /// `capture_stderr` was set before `launch`).
    pub fn stderr(&self) -> String {
        self.stderr_file
            .as_ref()
            .and_then(|file| std::fs::read(file.path()).ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// An xAPI client for this server with its default credential.
    pub fn client(&self) -> Xapi {
        Xapi::new(&self.base_url, &self.key, &self.secret, "1.0.3")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A small xAPI client: adds auth and the version header.
#[derive(Clone)]
pub struct Xapi {
    pub http: reqwest::Client,
    pub base_url: String,
    pub key: String,
    pub secret: String,
    pub version: String,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Xapi {
    pub fn new(base_url: &str, key: &str, secret: &str, version: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .expect("client"),
            base_url: base_url.to_owned(),
            key: key.to_owned(),
            secret: secret.to_owned(),
            version: version.to_owned(),
        }
    }

    pub fn with_version(&self, version: &str) -> Self {
        Self {
            version: version.to_owned(),
            ..self.clone()
        }
    }

    pub fn with_credential(&self, key: &str, secret: &str) -> Self {
        Self {
            key: key.to_owned(),
            secret: secret.to_owned(),
            ..self.clone()
        }
    }

    /// A request builder for `/xapi{path}` with auth and version header.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut builder = self
            .http
            .request(method, format!("{}/xapi{}", self.base_url, path))
            .basic_auth(&self.key, Some(&self.secret));
        if !self.version.is_empty() {
            builder = builder.header("X-Experience-API-Version", &self.version);
        }
        builder
    }

    pub async fn send(builder: reqwest::RequestBuilder) -> anyhow::Result<Reply> {
        let response = builder.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            headers,
            body,
            text,
        })
    }

    pub async fn post_statements(&self, body: &Value) -> anyhow::Result<Reply> {
        Self::send(
            self.request(reqwest::Method::POST, "/statements")
                .json(body),
        )
        .await
    }

    pub async fn put_statement(&self, id: &str, body: &Value) -> anyhow::Result<Reply> {
        Self::send(
            self.request(reqwest::Method::PUT, "/statements")
                .query(&[("statementId", id)])
                .json(body),
        )
        .await
    }

    /// GET /statements with query parameters.
    pub async fn get_statements(&self, query: &[(&str, &str)]) -> anyhow::Result<Reply> {
        Self::send(
            self.request(reqwest::Method::GET, "/statements")
                .query(query),
        )
        .await
    }

    /// Follows a `more` link (a path starting with /xapi).
    pub async fn get_more(&self, more: &str) -> anyhow::Result<Reply> {
        let mut builder = self
            .http
            .get(format!("{}{}", self.base_url, more))
            .basic_auth(&self.key, Some(&self.secret));
        builder = builder.header("X-Experience-API-Version", &self.version);
        Self::send(builder).await
    }
}

/// A valid statement about a learner, an activity and a verb.
pub fn statement(learner: &str, verb: &str, activity: &str) -> Value {
    serde_json::json!({
        "actor": {"objectType": "Agent", "name": format!("Learner {learner}"), "mbox": format!("mailto:{learner}@example.nl")},
        "verb": {"id": format!("http://adlnet.gov/expapi/verbs/{verb}"), "display": {"nl-NL": verb, "en-US": verb}},
        "object": {"objectType": "Activity", "id": format!("https://courses.example.nl/{activity}")}
    })
}
