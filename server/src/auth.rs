//! Authentication: argon2id password hashes, short-lived EdDSA access tokens
//! (JWT, validation parameters set explicitly), rotating refresh tokens stored
//! hashed with reuse detection per family, sessions that end at logout, and
//! login throttling per handle and client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm as ArgonAlgorithm, Argon2, Params, Version};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::AuthSettings;
use crate::ids::{AgentId, UserId};
use crate::metrics::Metrics;

/// argon2id cost: 19 MiB, 2 passes, 1 lane (OWASP's minimum for argon2id).
pub const ARGON2_M_KIB: u32 = 19456;
/// argon2id passes.
pub const ARGON2_T: u32 = 2;
/// argon2id lanes.
pub const ARGON2_P: u32 = 1;

fn argon2() -> Argon2<'static> {
    Argon2::new(
        ArgonAlgorithm::Argon2id,
        Version::V0x13,
        Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None)
            .expect("static argon2 parameters are valid"),
    )
}

/// A random alphanumeric password of `len` characters (generated logins).
pub fn random_password(len: usize) -> String {
    use rand::Rng;
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Hash a password with argon2id and a random salt (CPU-heavy: call from a
/// blocking thread).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashing with valid parameters cannot fail")
        .to_string()
}

/// Check a password against a stored hash.
pub fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Check a new password is acceptable.
pub fn check_password_strength(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < 12 {
        return Err("password must be at least 12 characters".into());
    }
    if n > 256 {
        return Err("password must be at most 256 characters".into());
    }
    Ok(())
}

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    /// Who minted this token for the subject (RFC 8693 `act`): set on tokens
    /// issued to agents for workers, so every act under them names both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<String>,
    /// The login session (its refresh-token family) this token belongs to;
    /// ending the session at logout or on refresh-token reuse ends the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// Why a token was refused (the detail is logged, the client gets a 401).
#[derive(Debug, thiserror::Error)]
#[error("invalid token: {0}")]
pub struct TokenError(pub String);

/// Signing keys, validation rules, the decoy hash and login throttles.
pub struct Auth {
    settings: AuthSettings,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    public_key: [u8; 32],
    decoy_hash: String,
    limiter: Mutex<LoginLimiter>,
    failures: Mutex<FailedLogins>,
    verified: Mutex<HashMap<String, Claims>>,
    /// Ended sessions whose access tokens may not have expired yet: session
    /// id → the time (Unix seconds) after which none of them is accepted anyway.
    ended: Mutex<HashMap<String, u64>>,
    metrics: Arc<Metrics>,
}

const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
const VERIFIED_CACHE_MAX: usize = 50_000;
/// Seconds past `exp` a token is still accepted (clock skew between hosts).
const LEEWAY_SECS: u64 = 5;
/// Ended sessions kept before expired ones are swept out (never the live ones).
const ENDED_SESSIONS_PRUNE_AT: usize = 10_000;

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Load the token signing seed from `data_dir`, creating it (mode 0600) on first use.
fn load_or_create_seed(data_dir: &Path) -> std::io::Result<[u8; 32]> {
    let path = data_dir.join("jwt-ed25519.seed");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let bytes = hex::decode(text.trim()).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        return bytes.try_into().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: expected 32 bytes", path.display()),
            )
        });
    }
    std::fs::create_dir_all(data_dir)?;
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let tmp = path.with_extension("tmp");
    crate::storage::write_private(&tmp, hex::encode(seed).as_bytes())?;
    std::fs::rename(&tmp, &path)?;
    Ok(seed)
}

impl Auth {
    /// Keys from the data directory; tokens validated with EdDSA only and
    /// with `iss`, `aud`, `exp` and `sub` required.
    pub fn new(
        settings: AuthSettings,
        data_dir: &Path,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let seed = load_or_create_seed(data_dir)?;
        let mut der = PKCS8_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&seed);
        let public_key = ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.set_issuer(&[settings.issuer.as_str()]);
        validation.set_audience(&[settings.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = false;
        validation.leeway = LEEWAY_SECS;
        Ok(Self {
            encoding: EncodingKey::from_ed_der(&der),
            decoding: DecodingKey::from_ed_der(&public_key),
            validation,
            public_key,
            decoy_hash: hash_password("decoy password for unknown handles"),
            limiter: Mutex::new(LoginLimiter::default()),
            failures: Mutex::new(FailedLogins::default()),
            verified: Mutex::new(HashMap::new()),
            ended: Mutex::new(HashMap::new()),
            settings,
            metrics,
        })
    }

    /// The Ed25519 public key that verifies access tokens.
    pub fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    /// Access token lifetime in seconds.
    pub fn access_ttl(&self) -> u64 {
        self.settings.access_ttl_secs
    }

    /// Refresh token lifetime.
    pub fn refresh_ttl(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.settings.refresh_ttl_secs as i64)
    }

    /// Sign an access token for `user_id`.
    pub fn issue_access(&self, user_id: &UserId) -> String {
        self.issue(user_id, None, None)
    }

    /// Sign an access token for `user_id` in login session `sid` (the
    /// session's refresh-token family), so that ending the session ends it.
    pub fn issue_session_access(&self, user_id: &UserId, sid: &str) -> String {
        self.issue(user_id, None, Some(sid))
    }

    /// Issue an access token for an agent on behalf of `minter`, who is named
    /// in the token's `act` claim.
    pub fn issue_agent_access(&self, agent_id: &AgentId, minter_id: &UserId) -> String {
        self.issue(agent_id, Some(minter_id), None)
    }

    fn issue(&self, user_id: &str, act: Option<&str>, sid: Option<&str>) -> String {
        let now = now_secs();
        let claims = Claims {
            sub: user_id.to_string(),
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            iat: now,
            exp: now + self.settings.access_ttl_secs,
            jti: uuid::Uuid::new_v4().to_string(),
            act: act.map(str::to_string),
            sid: sid.map(str::to_string),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.encoding)
            .expect("signing with a valid Ed25519 key cannot fail")
    }

    /// Verify an access token's signature, algorithm, issuer, audience and
    /// expiry, and that its session has not ended.
    pub fn verify_access(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > 4096 {
            return Err(TokenError("token too long".into()));
        }
        let now = now_secs();
        let cached = self
            .verified
            .lock()
            .expect("cache lock")
            .get(token)
            .filter(|c| c.exp > now)
            .cloned();
        if let Some(c) = cached {
            self.check_session(&c)?;
            return Ok(c);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| TokenError(e.to_string()))?;
        self.check_session(&data.claims)?;
        let mut cache = self.verified.lock().expect("cache lock");
        if cache.len() >= VERIFIED_CACHE_MAX {
            cache.retain(|_, c| c.exp > now);
            if cache.len() >= VERIFIED_CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(token.to_string(), data.claims.clone());
        Ok(data.claims)
    }

    /// Verify `password` against `stored`, or against a decoy hash when the
    /// user is unknown, so both paths cost one argon2id verification.
    pub fn check_password(&self, password: &str, stored: Option<&str>) -> bool {
        self.metrics.password_verifications.inc();
        match stored {
            Some(hash) => verify_password(password, hash),
            None => {
                let _ = verify_password(password, &self.decoy_hash);
                false
            }
        }
    }

    /// End login session `sid`: its access tokens are refused from now on
    /// (its refresh tokens are revoked in storage by the caller). Kept only
    /// until the last token the session could hold has expired, so the set
    /// stays as small as the logouts of one access-token lifetime.
    pub fn end_session(&self, sid: &str) {
        let now = now_secs();
        let until = now + self.settings.access_ttl_secs + LEEWAY_SECS + 1;
        let mut ended = self.ended.lock().expect("session lock");
        if ended.len() >= ENDED_SESSIONS_PRUNE_AT {
            ended.retain(|_, t| *t > now);
        }
        ended.insert(sid.to_string(), until);
    }

    /// Whether login session `sid` has ended (while its tokens could live).
    pub fn session_ended(&self, sid: &str) -> bool {
        self.ended
            .lock()
            .expect("session lock")
            .get(sid)
            .is_some_and(|until| *until > now_secs())
    }

    fn check_session(&self, claims: &Claims) -> Result<(), TokenError> {
        match &claims.sid {
            Some(sid) if self.session_ended(sid) => Err(TokenError(
                "the session ended (logout or refresh-token reuse); log in again".into(),
            )),
            _ => Ok(()),
        }
    }

    /// The address a login comes from: the TCP `peer`, unless the peer is a
    /// configured trusted proxy; then the last `X-Forwarded-For` hop that is
    /// not itself a trusted proxy (hops before it are whatever the client
    /// claimed). An unparseable hop stops the walk at the proxy before it.
    pub fn client_addr(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let trusted = &self.settings.trusted_proxies;
        let peer = peer.to_canonical();
        if !trusted.contains(&peer) {
            return peer;
        }
        let mut client = peer;
        for hop in forwarded_for.unwrap_or_default().rsplit(',') {
            let Some(ip) = parse_hop(hop.trim()) else {
                break;
            };
            client = ip;
            if !trusted.contains(&ip) {
                break;
            }
        }
        client
    }

    /// Admit a login attempt for `handle` from `client`, before its password
    /// is checked. Every attempt counts toward the address's limit per
    /// minute; the pair (handle, address) is refused while it waits out
    /// earlier failures. Report the outcome on the returned attempt.
    pub fn admit_login(
        &self,
        handle: &str,
        client: IpAddr,
    ) -> Result<LoginAttempt<'_>, LoginThrottled> {
        self.limiter
            .lock()
            .expect("limiter lock")
            .hit(
                &format!("ip:{client}"),
                self.settings.login_per_ip_per_minute,
            )
            .map_err(|retry_after| LoginThrottled::Address { retry_after })?;
        let key = (handle.to_lowercase(), client);
        self.failures
            .lock()
            .expect("failures lock")
            .admit(
                &key,
                self.settings.login_per_handle_per_minute,
                Instant::now(),
            )
            .map_err(|retry_after| LoginThrottled::HandleFromAddress { retry_after })?;
        Ok(LoginAttempt {
            auth: self,
            key: Some(key),
        })
    }

    fn backoff_policy(&self) -> Backoff {
        Backoff {
            free: self.settings.login_per_handle_per_minute,
            max_wait: Duration::from_secs(self.settings.login_backoff_max_secs),
        }
    }
}

/// One `X-Forwarded-For` hop: an IP address, with or without a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .map(|ip| ip.to_canonical())
}

/// Why a login was refused before its password was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginThrottled {
    /// Too many attempts from this client address in the last minute.
    Address { retry_after: Duration },
    /// Too many failed passwords for this handle from this address.
    HandleFromAddress { retry_after: Duration },
}

impl LoginThrottled {
    /// How long to wait before trying again (at least one second).
    pub fn retry_after(self) -> Duration {
        let (LoginThrottled::Address { retry_after }
        | LoginThrottled::HandleFromAddress { retry_after }) = self;
        retry_after.max(Duration::from_secs(1))
    }

    /// What the client is told, saying what to do next.
    pub fn message(self) -> String {
        let secs = self.retry_after().as_secs();
        match self {
            LoginThrottled::Address { .. } => format!(
                "too many login attempts from your address; retry in {secs} s"
            ),
            LoginThrottled::HandleFromAddress { .. } => format!(
                "too many failed logins for this handle from your address; retry in {secs} s, or log in from another device"
            ),
        }
    }
}

/// A login attempt the throttle admitted. Report its outcome with
/// [`LoginAttempt::succeeded`] or [`LoginAttempt::failed`]; dropped without
/// either (the request was cancelled), it counts as neither.
#[must_use = "report whether the login succeeded"]
pub struct LoginAttempt<'a> {
    auth: &'a Auth,
    key: Option<(String, IpAddr)>,
}

impl LoginAttempt<'_> {
    /// The password was right: the pair's failures are forgotten.
    pub fn succeeded(mut self) {
        if let Some(key) = self.key.take() {
            self.auth
                .failures
                .lock()
                .expect("failures lock")
                .succeeded(&key);
        }
    }

    /// The handle or password was wrong: one more failure for the pair.
    pub fn failed(mut self) {
        if let Some(key) = self.key.take() {
            let policy = self.auth.backoff_policy();
            self.auth
                .failures
                .lock()
                .expect("failures lock")
                .failed(&key, policy, Instant::now());
        }
    }
}

impl Drop for LoginAttempt<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            if let Ok(mut f) = self.auth.failures.lock() {
                f.abandoned(&key);
            }
        }
    }
}

/// The wait after the first failure beyond the free ones; it doubles with
/// each further failure.
const FIRST_WAIT: Duration = Duration::from_secs(60);
/// A pair with no failure for this long starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Pairs tracked at most; beyond it the longest-quiet pairs are forgotten.
const PAIRS_MAX: usize = 100_000;

/// How many failures are free and the longest wait after more.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    free: u32,
    max_wait: Duration,
}

#[derive(Debug, Default)]
struct PairState {
    failures: u32,
    /// Admitted attempts whose outcome is not known yet: they count toward
    /// the free failures, so a burst of parallel guesses gets no more tries.
    in_flight: u32,
    last_failure: Option<Instant>,
    wait_until: Option<Instant>,
}

/// Failed logins per (lower-cased handle, client address) with exponential
/// backoff. A pair never affects another: failures from one address cannot
/// lock the handle out from anywhere else.
#[derive(Default)]
struct FailedLogins {
    pairs: HashMap<(String, IpAddr), PairState>,
}

impl FailedLogins {
    fn admit(&mut self, key: &(String, IpAddr), free: u32, now: Instant) -> Result<(), Duration> {
        if !self.pairs.contains_key(key) {
            self.make_room(now);
        }
        let st = self.pairs.entry(key.clone()).or_default();
        let quiet = st
            .last_failure
            .is_some_and(|t| now.duration_since(t) >= FORGET_AFTER);
        if quiet && st.in_flight == 0 {
            *st = PairState::default();
        }
        if let Some(until) = st.wait_until.filter(|u| *u > now) {
            return Err(until - now);
        }
        // Before the free failures are used up, that many attempts may run at
        // once; after, one at a time, each waiting out the previous failure.
        let budget = free.saturating_sub(st.failures).max(1);
        if st.in_flight >= budget {
            return Err(Duration::from_secs(1));
        }
        st.in_flight += 1;
        Ok(())
    }

    fn failed(&mut self, key: &(String, IpAddr), policy: Backoff, now: Instant) {
        let st = self.pairs.entry(key.clone()).or_default();
        st.in_flight = st.in_flight.saturating_sub(1);
        st.failures = st.failures.saturating_add(1);
        st.last_failure = Some(now);
        if st.failures >= policy.free {
            let doublings = (st.failures - policy.free).min(16);
            let wait = FIRST_WAIT
                .saturating_mul(1 << doublings)
                .min(policy.max_wait);
            st.wait_until = Some(now + wait);
        }
    }

    fn succeeded(&mut self, key: &(String, IpAddr)) {
        self.pairs.remove(key);
    }

    fn abandoned(&mut self, key: &(String, IpAddr)) {
        if let Some(st) = self.pairs.get_mut(key) {
            st.in_flight = st.in_flight.saturating_sub(1);
            if st.in_flight == 0 && st.failures == 0 {
                self.pairs.remove(key);
            }
        }
    }

    /// Keep the map bounded: drop pairs that are quiet, then the quietest.
    fn make_room(&mut self, now: Instant) {
        if self.pairs.len() < PAIRS_MAX {
            return;
        }
        self.pairs.retain(|_, st| {
            st.in_flight > 0
                || st.wait_until.is_some_and(|u| u > now)
                || st
                    .last_failure
                    .is_some_and(|t| now.duration_since(t) < FORGET_AFTER)
        });
        while self.pairs.len() >= PAIRS_MAX {
            let oldest = self
                .pairs
                .iter()
                .filter(|(_, st)| st.in_flight == 0)
                .min_by_key(|(_, st)| st.last_failure)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    self.pairs.remove(&k);
                }
                None => break,
            }
        }
    }
}

/// Fixed one-minute windows per key.
#[derive(Default)]
struct LoginLimiter {
    windows: HashMap<String, (Instant, u32)>,
}

impl LoginLimiter {
    fn hit(&mut self, key: &str, limit: u32) -> Result<(), Duration> {
        let now = Instant::now();
        if self.windows.len() > 100_000 {
            self.windows
                .retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let entry = self.windows.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(60) {
            *entry = (now, 0);
        }
        if entry.1 >= limit {
            return Err(Duration::from_secs(60).saturating_sub(now.duration_since(entry.0)));
        }
        entry.1 += 1;
        Ok(())
    }
}

/// A new random refresh token (returned to the client once) and its stored hash.
pub fn new_refresh_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = refresh_hash(&token);
    (token, hash)
}

/// The stored form of a refresh token.
pub fn refresh_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hashes_are_argon2id_with_required_cost() {
        let h = hash_password("correct horse battery staple");
        let parsed = PasswordHash::new(&h).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        let params = Params::try_from(&parsed).unwrap();
        assert!(params.m_cost() >= 19456 && params.t_cost() >= 2 && params.p_cost() == 1);
        assert!(verify_password("correct horse battery staple", &h));
        assert!(!verify_password("wrong", &h));
    }

    #[test]
    fn login_limiter_blocks_after_limit() {
        let mut l = LoginLimiter::default();
        for _ in 0..3 {
            l.hit("k", 3).unwrap();
        }
        assert!(l.hit("k", 3).is_err());
        assert!(l.hit("other", 3).is_ok());
    }

    fn pair(last: u8) -> (String, IpAddr) {
        ("operator".into(), IpAddr::from([192, 0, 2, last]))
    }

    const POLICY: Backoff = Backoff {
        free: 3,
        max_wait: Duration::from_secs(300),
    };

    fn fail(f: &mut FailedLogins, key: &(String, IpAddr), now: Instant) -> Result<(), Duration> {
        f.admit(key, POLICY.free, now)?;
        f.failed(key, POLICY, now);
        Ok(())
    }

    #[test]
    fn failures_back_off_per_handle_and_address_doubling_up_to_the_cap() {
        let mut f = FailedLogins::default();
        let (a, b) = (pair(1), pair(2));
        let t0 = Instant::now();
        for _ in 0..3 {
            fail(&mut f, &a, t0).unwrap();
        }
        let wait = f.admit(&a, POLICY.free, t0).unwrap_err();
        assert_eq!(wait, FIRST_WAIT);
        // Another address is not affected, whatever it tries.
        f.admit(&b, POLICY.free, t0).unwrap();
        f.succeeded(&b);
        // Each failure after the wait doubles the next wait, up to the cap.
        let mut now = t0 + FIRST_WAIT;
        for expected in [120, 240, 300, 300] {
            fail(&mut f, &a, now).unwrap();
            let wait = f.admit(&a, POLICY.free, now).unwrap_err();
            assert_eq!(wait, Duration::from_secs(expected));
            now += wait;
        }
        // A long quiet spell forgets the failures.
        now += FORGET_AFTER;
        f.admit(&a, POLICY.free, now).unwrap();
    }

    #[test]
    fn a_success_clears_only_its_own_pairs_failures() {
        let mut f = FailedLogins::default();
        let (a, b) = (pair(1), pair(2));
        let now = Instant::now();
        for _ in 0..3 {
            fail(&mut f, &a, now).unwrap();
        }
        fail(&mut f, &b, now).unwrap();
        fail(&mut f, &b, now).unwrap();
        f.admit(&b, POLICY.free, now).unwrap();
        f.succeeded(&b);
        for _ in 0..2 {
            fail(&mut f, &b, now).unwrap();
        }
        assert!(f.admit(&a, POLICY.free, now).is_err(), "a still waits");
    }

    #[test]
    fn parallel_guesses_get_no_more_tries_than_sequential_ones() {
        let mut f = FailedLogins::default();
        let a = pair(1);
        let now = Instant::now();
        for _ in 0..3 {
            f.admit(&a, POLICY.free, now).unwrap();
        }
        assert!(f.admit(&a, POLICY.free, now).is_err());
        f.abandoned(&a);
        f.admit(&a, POLICY.free, now).unwrap();
    }

    fn auth_with(trusted: &[&str]) -> (Auth, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let settings = AuthSettings {
            trusted_proxies: trusted.iter().map(|t| t.parse().unwrap()).collect(),
            ..AuthSettings::default()
        };
        (
            Auth::new(settings, dir.path(), Arc::default()).unwrap(),
            dir,
        )
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let (open, _d1) = auth_with(&[]);
        assert_eq!(
            open.client_addr(ip("198.51.100.1"), Some("203.0.113.9")),
            ip("198.51.100.1"),
            "an untrusted peer cannot choose its address"
        );
        let (proxied, _d2) = auth_with(&["10.0.0.1", "10.0.0.2"]);
        let proxy = ip("10.0.0.1");
        assert_eq!(
            proxied.client_addr(proxy, Some("203.0.113.9")),
            ip("203.0.113.9")
        );
        assert_eq!(
            proxied.client_addr(proxy, Some("6.6.6.6, 203.0.113.9, 10.0.0.2")),
            ip("203.0.113.9"),
            "the last untrusted hop, not what the client prepended"
        );
        assert_eq!(
            proxied.client_addr(proxy, Some("203.0.113.9:4711")),
            ip("203.0.113.9")
        );
        assert_eq!(proxied.client_addr(proxy, Some("garbage")), proxy);
        assert_eq!(proxied.client_addr(proxy, None), proxy);
        assert_eq!(
            proxied.client_addr(ip("::ffff:10.0.0.1"), Some("203.0.113.9")),
            ip("203.0.113.9"),
            "IPv4-mapped peers match their IPv4 form"
        );
    }

    #[test]
    fn an_ended_session_ends_its_access_tokens_only() {
        let (auth, _dir) = auth_with(&[]);
        let mine = auth.issue_session_access(&UserId::from_trusted("u1"), "family-1");
        let other = auth.issue_session_access(&UserId::from_trusted("u1"), "family-2");
        let plain = auth.issue_access(&UserId::from_trusted("u1"));
        assert_eq!(
            auth.verify_access(&mine).unwrap().sid.as_deref(),
            Some("family-1")
        );
        auth.end_session("family-1");
        assert!(
            auth.verify_access(&mine).is_err(),
            "cached or not, it is refused"
        );
        assert!(auth.verify_access(&other).is_ok());
        assert!(auth.verify_access(&plain).is_ok());
    }
}
