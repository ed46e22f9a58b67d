//! Authentication: argon2id password hashes, short-lived EdDSA access tokens
//! (JWT, validation parameters set explicitly), rotating refresh tokens stored
//! hashed with reuse detection per family, and login throttling.

use std::collections::HashMap;
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
    verified: Mutex<HashMap<String, Claims>>,
    metrics: Arc<Metrics>,
}

const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
const VERIFIED_CACHE_MAX: usize = 50_000;

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
    std::fs::write(&tmp, hex::encode(seed))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
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
        validation.leeway = 5;
        Ok(Self {
            encoding: EncodingKey::from_ed_der(&der),
            decoding: DecodingKey::from_ed_der(&public_key),
            validation,
            public_key,
            decoy_hash: hash_password("decoy password for unknown handles"),
            limiter: Mutex::new(LoginLimiter::default()),
            verified: Mutex::new(HashMap::new()),
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
    pub fn issue_access(&self, user_id: &str) -> String {
        let now = now_secs();
        let claims = Claims {
            sub: user_id.to_string(),
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            iat: now,
            exp: now + self.settings.access_ttl_secs,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.encoding)
            .expect("signing with a valid Ed25519 key cannot fail")
    }

    /// Verify an access token's signature, algorithm, issuer, audience and expiry.
    pub fn verify_access(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > 4096 {
            return Err(TokenError("token too long".into()));
        }
        let now = now_secs();
        if let Some(c) = self.verified.lock().expect("cache lock").get(token) {
            if c.exp > now {
                return Ok(c.clone());
            }
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| TokenError(e.to_string()))?;
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

    /// Count a login attempt; `Err(retry_after)` when over the limit.
    pub fn throttle_login(&self, handle: &str, ip: &str) -> Result<(), Duration> {
        let mut l = self.limiter.lock().expect("limiter lock");
        l.hit(
            &format!("h:{}", handle.to_lowercase()),
            self.settings.login_per_handle_per_minute,
        )?;
        l.hit(&format!("ip:{ip}"), self.settings.login_per_ip_per_minute)
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
}
