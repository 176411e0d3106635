//! Checking a secret against a credential's argon2id hashes without letting
//! argon2 run away (docs/security-limits.md):
//!
//! - a secret verified once is remembered as a keyed hash (under a key that
//!   lives only in this process) together with the hash it matched, so the
//!   slow hash runs once per credential and process, and a remembered
//!   secret stops working as soon as its hash leaves the credential;
//! - single flight: concurrent checks of the same key, secret and client
//!   address share one argon2 run (a cold cache under 1,500 requests/s
//!   would otherwise start hundreds);
//! - at most one argon2 run per core at a time (a semaphore); a run that is
//!   queued checks the lockouts again before it starts, so a burst of wrong
//!   secrets overshoots a lockout only by the runs already under way;
//! - an unknown key costs one argon2 run against a dummy hash, like a wrong
//!   secret, so the two cannot be told apart by timing.
//!
//! It knows nothing about HTTP or the store: hashes come in as PHC strings.

use crate::security::ratelimit::Refusal;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use tokio::sync::{OnceCell, Semaphore};

/// Secrets remembered per key: the newest few (two while a rotation's old
/// and new secret are both in use).
const REMEMBERED_PER_KEY: usize = 2;

/// A verified secret: its keyed hash and the PHC hash it matched.
struct Remembered {
    secret_mac: [u8; 32],
    phc: String,
}

/// What one argon2 flight found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// The secret matches this hash.
    Verified(String),
    Wrong,
    /// Locked out while it waited for its turn.
    Refused(Refusal),
}

pub struct SecretVerifier {
    process_key: [u8; 32],
    remembered: RwLock<HashMap<String, Vec<Remembered>>>,
    flights: Mutex<HashMap<[u8; 32], Arc<OnceCell<Outcome>>>>,
    permits: Arc<Semaphore>,
    argon2_runs: AtomicU64,
    running: Arc<AtomicUsize>,
    peak_running: Arc<AtomicUsize>,
}

impl Default for SecretVerifier {
    fn default() -> Self {
        Self::new(
            std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(2),
        )
    }
}

impl SecretVerifier {
    /// At most `concurrent` argon2 runs at a time.
    pub fn new(concurrent: usize) -> Self {
        let mut process_key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut process_key);
        Self {
            process_key,
            remembered: RwLock::default(),
            flights: Mutex::default(),
            permits: Arc::new(Semaphore::new(concurrent.max(1))),
            argon2_runs: AtomicU64::new(0),
            running: Arc::default(),
            peak_running: Arc::default(),
        }
    }

    /// Argon2 verifications run so far (dummy ones included).
    pub fn argon2_runs(&self) -> u64 {
        self.argon2_runs.load(Ordering::Relaxed)
    }

    /// The most argon2 verifications that ran at the same time.
    pub fn peak_concurrent(&self) -> usize {
        self.peak_running.load(Ordering::Relaxed)
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.process_key).expect("any key length");
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// Whether `secret` is the secret of `key`, whose current hashes are
    /// `hashes` (none: the key does not exist, and a dummy hash is checked
    /// instead). `gate` is asked again right before argon2 runs; its refusal
    /// is returned as is.
    pub async fn verify(
        &self,
        key: &str,
        secret: &str,
        hashes: &[String],
        client: Option<IpAddr>,
        gate: impl Fn() -> Result<(), Refusal>,
    ) -> Result<bool, Refusal> {
        let secret_mac = self.mac(&[b"secret", key.as_bytes(), secret.as_bytes()]);
        if self.is_remembered(key, &secret_mac, hashes) {
            return Ok(true);
        }
        let client_text = client.map(|ip| ip.to_canonical().to_string());
        let flight_id = self.mac(&[
            b"flight",
            key.as_bytes(),
            secret.as_bytes(),
            client_text.as_deref().unwrap_or("").as_bytes(),
        ]);
        let flight = self
            .flights
            .lock()
            .expect("flights")
            .entry(flight_id)
            .or_default()
            .clone();
        let outcome = flight
            .get_or_init(|| self.run(key, secret, secret_mac, hashes, &gate))
            .await
            .clone();
        {
            let mut flights = self.flights.lock().expect("flights");
            if flights
                .get(&flight_id)
                .is_some_and(|current| Arc::ptr_eq(current, &flight))
            {
                flights.remove(&flight_id);
            }
        }
        match outcome {
            Outcome::Verified(phc) => Ok(hashes.contains(&phc)),
            Outcome::Wrong => Ok(false),
            Outcome::Refused(refusal) => Err(refusal),
        }
    }

    fn is_remembered(&self, key: &str, secret_mac: &[u8; 32], hashes: &[String]) -> bool {
        let remembered = self.remembered.read().expect("remembered secrets");
        remembered.get(key).is_some_and(|entries| {
            entries.iter().any(|entry| {
                constant_time_eq(&entry.secret_mac, secret_mac) && hashes.contains(&entry.phc)
            })
        })
    }

    /// The leader of a flight: waits for a permit, asks the gate again, runs
    /// argon2 on a blocking thread (which keeps the permit until it is done,
    /// even if this request goes away), remembers a match.
    async fn run(
        &self,
        key: &str,
        secret: &str,
        secret_mac: [u8; 32],
        hashes: &[String],
        gate: &impl Fn() -> Result<(), Refusal>,
    ) -> Outcome {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        if let Err(refusal) = gate() {
            return Outcome::Refused(refusal);
        }
        self.argon2_runs.fetch_add(1, Ordering::Relaxed);
        let (running, peak) = (self.running.clone(), self.peak_running.clone());
        let (hashes_owned, secret_owned) = (hashes.to_vec(), secret.to_owned());
        let matched = tokio::task::spawn_blocking(move || {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let matched = if hashes_owned.is_empty() {
                let _ = lrs_app::secrets::verify_secret(dummy_hash(), &secret_owned);
                None
            } else {
                hashes_owned
                    .into_iter()
                    .find(|phc| lrs_app::secrets::verify_secret(phc, &secret_owned))
            };
            running.fetch_sub(1, Ordering::SeqCst);
            drop(permit);
            matched
        })
        .await;
        match matched {
            Ok(Some(phc)) => {
                let mut remembered = self.remembered.write().expect("remembered secrets");
                let entries = remembered.entry(key.to_owned()).or_default();
                entries.retain(|entry| entry.phc != phc);
                entries.insert(
                    0,
                    Remembered {
                        secret_mac,
                        phc: phc.clone(),
                    },
                );
                entries.truncate(REMEMBERED_PER_KEY);
                Outcome::Verified(phc)
            }
            Ok(None) => Outcome::Wrong,
            Err(error) => {
                tracing::error!(%error, "argon2 verification task failed");
                Outcome::Wrong
            }
        }
    }

    /// Forgets what was remembered for `key` (revocation, rotation).
    pub fn forget(&self, key: &str) {
        self.remembered
            .write()
            .expect("remembered secrets")
            .remove(key);
    }
}

/// The hash an unknown key is checked against: of a random secret, made on
/// first use with the same parameters as every credential's.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        lrs_app::secrets::hash_secret(&hex::encode(secret))
    })
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use lrs_app::secrets::hash_secret;

    fn open() -> Result<(), Refusal> {
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_checks_of_a_cold_key_run_argon2_once() {
        let verifier = Arc::new(SecretVerifier::new(2));
        let hashes = vec![hash_secret("right secret")];
        let client = Some("192.0.2.1".parse().unwrap());
        let checks = (0..64).map(|_| {
            let (verifier, hashes) = (verifier.clone(), hashes.clone());
            tokio::spawn(async move {
                verifier
                    .verify("lrs_k1", "right secret", &hashes, client, open)
                    .await
            })
        });
        for check in futures_util::future::join_all(checks).await {
            assert_eq!(check.unwrap(), Ok(true));
        }
        assert_eq!(verifier.argon2_runs(), 1);
        // Now remembered: no more runs.
        assert_eq!(
            verifier
                .verify("lrs_k1", "right secret", &hashes, client, open)
                .await,
            Ok(true)
        );
        assert_eq!(verifier.argon2_runs(), 1);
        assert!(verifier.flights.lock().unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wrong_secrets_and_unknown_keys_each_cost_one_bounded_run() {
        let verifier = Arc::new(SecretVerifier::new(1));
        let hashes = vec![hash_secret("right secret")];
        let client = Some("192.0.2.1".parse().unwrap());
        // A cached right secret does not make a wrong one cheap.
        assert_eq!(
            verifier
                .verify("lrs_k1", "right secret", &hashes, client, open)
                .await,
            Ok(true)
        );
        let checks = (0..6).map(|n| {
            let (verifier, hashes) = (verifier.clone(), hashes.clone());
            tokio::spawn(async move {
                let (key, hashes) = if n % 2 == 0 {
                    ("lrs_k1", hashes)
                } else {
                    ("lrs_unknown", Vec::new())
                };
                verifier
                    .verify(key, &format!("guess {n}"), &hashes, client, open)
                    .await
            })
        });
        for check in futures_util::future::join_all(checks).await {
            assert_eq!(check.unwrap(), Ok(false));
        }
        assert_eq!(verifier.argon2_runs(), 7);
        assert_eq!(
            verifier.peak_concurrent(),
            1,
            "one permit, one run at a time"
        );
    }

    #[tokio::test]
    async fn a_queued_run_asks_the_gate_again() {
        let verifier = SecretVerifier::new(1);
        let refusal = Refusal {
            limit: "auth_lockout",
            reason: "locked",
            retry_after_secs: 7,
        };
        let hashes = vec![hash_secret("right secret")];
        let outcome = verifier
            .verify("lrs_k1", "right secret", &hashes, None, || Err(refusal))
            .await;
        assert_eq!(outcome, Err(refusal));
        assert_eq!(verifier.argon2_runs(), 0);
    }

    #[tokio::test]
    async fn a_remembered_secret_stops_working_when_its_hash_is_gone() {
        let verifier = SecretVerifier::new(1);
        let old = hash_secret("old secret");
        let new = hash_secret("new secret");
        let both = vec![new.clone(), old.clone()];
        assert_eq!(
            verifier.verify("k", "old secret", &both, None, open).await,
            Ok(true)
        );
        assert_eq!(
            verifier.verify("k", "new secret", &both, None, open).await,
            Ok(true)
        );
        assert_eq!(verifier.argon2_runs(), 2);
        // Both remembered while both hashes are current (a rotation's grace).
        assert_eq!(
            verifier.verify("k", "old secret", &both, None, open).await,
            Ok(true)
        );
        assert_eq!(verifier.argon2_runs(), 2);
        // The grace is over: the old one fails (after a real check).
        let only_new = vec![new];
        assert_eq!(
            verifier
                .verify("k", "old secret", &only_new, None, open)
                .await,
            Ok(false)
        );
        assert_eq!(
            verifier
                .verify("k", "new secret", &only_new, None, open)
                .await,
            Ok(true)
        );
        assert_eq!(verifier.argon2_runs(), 3);
    }
}
