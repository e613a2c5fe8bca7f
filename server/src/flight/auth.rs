//! Authentication: Basic credentials in the Handshake, bearer tokens after.
//!
//! ```text
//! Handshake  authorization: Basic base64(user:password)  ──► argon2 check ──► token
//!            ◄── authorization: Bearer <token>  (response header; also the payload)
//! any RPC    authorization: Bearer <token>  ──► known and not expired, or UNAUTHENTICATED
//! ```
//! Users and their argon2 PHC hashes come from configuration (`lakehouse
//! hash-password` makes one). With no users configured, authentication is off;
//! the server then says so at start and only listens on loopback unless
//! `allow_anonymous` is set.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::PasswordVerifier;
use argon2::password_hash::phc::PasswordHash;
use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

#[derive(Debug)]
struct Token {
    user: String,
    expires: Instant,
}

/// Checks credentials and tokens.
#[derive(Debug)]
pub(crate) struct Authenticator {
    /// User name → argon2 PHC string. Empty: authentication is off.
    users: HashMap<String, String>,
    ttl: Duration,
    tokens: Mutex<HashMap<String, Token>>,
}

impl Authenticator {
    /// An authenticator for `users` (name → PHC hash) issuing tokens valid for `ttl`.
    pub(crate) fn new(users: HashMap<String, String>, ttl: Duration) -> Self {
        Self {
            users,
            ttl,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Whether credentials are required.
    pub(crate) fn enabled(&self) -> bool {
        !self.users.is_empty()
    }

    /// Handshake: checks Basic credentials (or an existing bearer token) and
    /// returns the bearer token to hand back.
    pub(crate) async fn login(&self, metadata: &MetadataMap) -> Result<String, Status> {
        if !self.enabled() {
            // A token anyway: clients expect one, and it names their session.
            return Ok(new_token());
        }
        let header = header(metadata).ok_or_else(|| {
            Status::unauthenticated(
                "credentials required: send `authorization: Basic base64(user:password)`",
            )
        })?;
        if let Some(token) = bearer(header) {
            self.user_of(token)?;
            return Ok(token.to_string());
        }
        let (user, password) = basic(header)?;
        let hash = self.users.get(&user).cloned();
        // argon2 is deliberately slow: keep it off the async workers.
        let verified = tokio::task::spawn_blocking(move || match hash {
            Some(hash) => PasswordHash::new(&hash)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false),
            None => false,
        })
        .await
        .map_err(|e| Status::internal(format!("password check failed: {e}")))?;
        if !verified {
            tracing::warn!(user = %user, "failed login");
            return Err(Status::unauthenticated("invalid user name or password"));
        }
        let token = new_token();
        let mut tokens = self.lock();
        tokens.retain(|_, t| t.expires > Instant::now());
        tokens.insert(
            token.clone(),
            Token {
                user: user.clone(),
                expires: Instant::now() + self.ttl,
            },
        );
        tracing::info!(user = %user, "login");
        Ok(token)
    }

    /// Every other RPC: the bearer token must be known and unexpired. Returns the
    /// caller's user name ("" when authentication is off).
    pub(crate) fn check<T>(&self, request: &Request<T>) -> Result<String, Status> {
        if !self.enabled() {
            return Ok(String::new());
        }
        let token = header(request.metadata()).and_then(bearer).ok_or_else(|| {
            Status::unauthenticated("missing bearer token: authenticate with a Handshake first")
        })?;
        self.user_of(token)
    }

    fn user_of(&self, token: &str) -> Result<String, Status> {
        let tokens = self.lock();
        match tokens.get(token) {
            Some(t) if t.expires > Instant::now() => Ok(t.user.clone()),
            Some(_) => Err(Status::unauthenticated("token expired: authenticate again")),
            None => Err(Status::unauthenticated("unknown token: authenticate again")),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Token>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The authenticated caller of a request, set by the front door.
#[derive(Debug, Clone, Default)]
pub(super) struct Caller(pub String);

impl Caller {
    /// The caller of `request` ("" when unknown or authentication is off).
    pub(super) fn of<T>(request: &Request<T>) -> String {
        request
            .extensions()
            .get::<Caller>()
            .map(|c| c.0.clone())
            .unwrap_or_default()
    }
}

fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn header(metadata: &MetadataMap) -> Option<&str> {
    metadata.get("authorization")?.to_str().ok()
}

fn bearer(header: &str) -> Option<&str> {
    header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
}

/// Standard base64, padding optional: the Go Flight client (ADBC) encodes Basic
/// credentials without padding, most others with it.
const BASIC: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn basic(header: &str) -> Result<(String, String), Status> {
    let encoded = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))
        .ok_or_else(|| Status::unauthenticated("authorization must be `Basic …` or `Bearer …`"))?;
    let decoded = BASIC
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| Status::unauthenticated("malformed Basic credentials"))?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or_else(|| Status::unauthenticated("malformed Basic credentials"))?;
    Ok((user.to_string(), password.to_string()))
}

/// An argon2id PHC string for `password` (for `lakehouse hash-password`).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::PasswordHasher;
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

    #[test]
    fn basic_credentials_with_or_without_padding() {
        // 16 bytes: padded "==" by most clients, unpadded by the Go Flight client.
        for engine in [STANDARD, STANDARD_NO_PAD] {
            let header = format!("Basic {}", engine.encode("alice:tls-s3cret"));
            assert_eq!(
                basic(&header).unwrap(),
                ("alice".to_string(), "tls-s3cret".to_string())
            );
        }
        assert!(basic("Basic !!!").is_err());
    }

    fn basic_header(user: &str, password: &str) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        let value = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
        metadata.insert("authorization", value.parse().unwrap());
        metadata
    }

    #[tokio::test]
    async fn logs_in_checks_and_expires_tokens() {
        let users = HashMap::from([("alice".to_string(), hash_password("s3cret").unwrap())]);
        let auth = Authenticator::new(users, Duration::from_millis(200));
        assert!(auth.login(&basic_header("alice", "wrong")).await.is_err());
        assert!(auth.login(&basic_header("bob", "s3cret")).await.is_err());
        assert!(auth.login(&MetadataMap::new()).await.is_err());
        let token = auth.login(&basic_header("alice", "s3cret")).await.unwrap();
        let mut request = Request::new(());
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        auth.check(&request).unwrap();
        assert_eq!(
            auth.check(&Request::new(())).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        std::thread::sleep(Duration::from_millis(250));
        let err = auth.check(&request).unwrap_err();
        assert!(err.message().contains("expired"), "{err}");
    }

    #[tokio::test]
    async fn disabled_without_users() {
        let auth = Authenticator::new(HashMap::new(), Duration::from_secs(60));
        assert!(!auth.enabled());
        auth.check(&Request::new(())).unwrap();
        assert!(!auth.login(&MetadataMap::new()).await.unwrap().is_empty());
    }
}
