//! Flight sessions: per-client defaults set with SetSessionOptions.
//!
//! A session is found by the `arrow_flight_session_id` cookie (set on the
//! response that created it) or, failing that, by the bearer token the
//! handshake issued, so clients without cookie support keep their options too.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lakehouse_flight_ext::v1::session_option_value::OptionValue;
use lakehouse_flight_ext::v1::set_session_options_result::{Error as OptionError, ErrorValue};
use lakehouse_flight_ext::v1::{SessionOptionValue, SetSessionOptionsResult};
use tonic::metadata::MetadataMap;

use crate::catalog::{CATALOG_NAME, Catalog};
use crate::query::SessionDefaults;

/// Cookie carrying the session id.
pub const SESSION_COOKIE: &str = "arrow_flight_session_id";
/// Sessions idle longer than this are forgotten.
const IDLE_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// At most this many sessions are kept; the least recently used go first.
const MAX_SESSIONS: usize = 10_000;

#[derive(Debug)]
struct Session {
    defaults: SessionDefaults,
    last_used: Instant,
}

/// All open sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    sessions: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// The key of the caller's session, if it sent one.
    pub fn key(metadata: &MetadataMap) -> Option<String> {
        for cookie in metadata.get_all("cookie") {
            let Ok(cookie) = cookie.to_str() else {
                continue;
            };
            for pair in cookie.split(';') {
                if let Some((name, value)) = pair.trim().split_once('=')
                    && name == SESSION_COOKIE
                    && !value.is_empty()
                {
                    return Some(format!("cookie:{value}"));
                }
            }
        }
        let auth = metadata.get("authorization")?.to_str().ok()?;
        let token = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))?;
        Some(format!("bearer:{token}"))
    }

    /// The caller's defaults (the server's defaults without a session).
    pub fn defaults(&self, metadata: &MetadataMap) -> SessionDefaults {
        let Some(key) = Self::key(metadata) else {
            return SessionDefaults::default();
        };
        let mut sessions = self.lock();
        match sessions.get_mut(&key) {
            Some(session) => {
                session.last_used = Instant::now();
                session.defaults.clone()
            }
            None => SessionDefaults::default(),
        }
    }

    /// Applies options; returns per-option errors (empty when all applied) and,
    /// when a session had to be created, the cookie value to set.
    pub fn set(
        &self,
        metadata: &MetadataMap,
        catalog: &Catalog,
        options: HashMap<String, SessionOptionValue>,
    ) -> (SetSessionOptionsResult, Option<String>) {
        let (key, new_cookie) = match Self::key(metadata) {
            Some(key) => (key, None),
            None => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                (format!("cookie:{id}"), Some(id))
            }
        };
        let mut sessions = self.lock();
        evict(&mut sessions);
        let session = sessions.entry(key).or_insert_with(|| Session {
            defaults: SessionDefaults::default(),
            last_used: Instant::now(),
        });
        session.last_used = Instant::now();
        let mut errors = HashMap::new();
        for (name, value) in options {
            let outcome = match (name.as_str(), value.option_value) {
                ("catalog", Some(OptionValue::StringValue(c))) if c == CATALOG_NAME => {
                    session.defaults.catalog = c;
                    Ok(())
                }
                ("schema", Some(OptionValue::StringValue(s)))
                    if catalog.schema_names().contains(&s) || is_builtin(&s) =>
                {
                    session.defaults.schema = s;
                    Ok(())
                }
                // A valueless option resets it to the server default.
                ("catalog", None) => {
                    session.defaults.catalog = SessionDefaults::default().catalog;
                    Ok(())
                }
                ("schema", None) => {
                    session.defaults.schema = SessionDefaults::default().schema;
                    Ok(())
                }
                ("catalog" | "schema", _) => Err(ErrorValue::InvalidValue),
                _ => Err(ErrorValue::InvalidName),
            };
            if let Err(error) = outcome {
                errors.insert(
                    name,
                    OptionError {
                        value: error as i32,
                    },
                );
            }
        }
        (SetSessionOptionsResult { errors }, new_cookie)
    }

    /// Forgets the caller's session; false when it had none.
    pub fn close(&self, metadata: &MetadataMap) -> bool {
        Self::key(metadata).is_some_and(|key| self.lock().remove(&key).is_some())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn is_builtin(schema: &str) -> bool {
    schema == crate::catalog::SYSTEM_SCHEMA || schema == crate::catalog::INFORMATION_SCHEMA
}

fn evict(sessions: &mut HashMap<String, Session>) {
    sessions.retain(|_, s| s.last_used.elapsed() < IDLE_TIMEOUT);
    while sessions.len() >= MAX_SESSIONS {
        let Some(oldest) = sessions
            .iter()
            .min_by_key(|(_, s)| s.last_used)
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        sessions.remove(&oldest);
    }
}

/// The options of a session, as GetSessionOptions reports them.
pub fn options_of(defaults: &SessionDefaults) -> HashMap<String, SessionOptionValue> {
    let string = |s: &str| SessionOptionValue {
        option_value: Some(OptionValue::StringValue(s.to_string())),
    };
    HashMap::from([
        ("catalog".to_string(), string(&defaults.catalog)),
        ("schema".to_string(), string(&defaults.schema)),
    ])
}
