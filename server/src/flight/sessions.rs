//! Flight sessions: per-client defaults set with SetSessionOptions.
//!
//! A session is found by, in order: the `arrow_flight_session_id` cookie (set on
//! the response that created it), the bearer token the handshake issued, or the
//! client's TCP connection. The last one matters: the ADBC Go driver sends no
//! cookies unless asked to, and without authentication it has no token, yet one
//! ADBC connection is one gRPC connection, so its options still stick.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lakehouse_flight_ext::v1::session_option_value::OptionValue;
use lakehouse_flight_ext::v1::set_session_options_result::{Error as OptionError, ErrorValue};
use lakehouse_flight_ext::v1::{SessionOptionValue, SetSessionOptionsResult};
use tonic::Request;

use crate::catalog::{CATALOG_NAME, Catalog};
use crate::query::SessionDefaults;

/// Cookie carrying the session id.
pub(super) const SESSION_COOKIE: &str = "arrow_flight_session_id";
/// Sessions idle longer than this are forgotten.
const IDLE_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// At most this many sessions are kept; the least recently used go first.
const MAX_SESSIONS: usize = 10_000;

#[derive(Debug)]
struct Session {
    defaults: SessionDefaults,
    last_used: Instant,
}

type SharedSession = Arc<Mutex<Session>>;

/// All open sessions. One session may be reachable under several keys (its
/// cookie and the connection that created it).
#[derive(Debug, Default)]
pub(super) struct Sessions {
    sessions: Mutex<HashMap<String, SharedSession>>,
}

impl Sessions {
    /// The key of the caller's session: cookie, else bearer token, else connection.
    pub(super) fn key<T>(request: &Request<T>) -> Option<String> {
        Self::cookie_key(request).or_else(|| Self::connection_key(request))
    }

    fn cookie_key<T>(request: &Request<T>) -> Option<String> {
        for cookie in request.metadata().get_all("cookie") {
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
        None
    }

    fn connection_key<T>(request: &Request<T>) -> Option<String> {
        let bearer = request
            .metadata()
            .get("authorization")
            .and_then(|auth| auth.to_str().ok())
            .and_then(|auth| {
                auth.strip_prefix("Bearer ")
                    .or_else(|| auth.strip_prefix("bearer "))
            });
        if let Some(token) = bearer {
            return Some(format!("bearer:{token}"));
        }
        request.remote_addr().map(|peer| format!("peer:{peer}"))
    }

    fn find<T>(&self, request: &Request<T>) -> Option<SharedSession> {
        let sessions = self.lock();
        [Self::cookie_key(request), Self::connection_key(request)]
            .into_iter()
            .flatten()
            .find_map(|key| sessions.get(&key).cloned())
    }

    /// The caller's defaults (the server's defaults without a session).
    pub(super) fn defaults<T>(&self, request: &Request<T>) -> SessionDefaults {
        match self.find(request) {
            Some(session) => {
                let mut session = lock(&session);
                session.last_used = Instant::now();
                session.defaults.clone()
            }
            None => SessionDefaults::default(),
        }
    }

    /// Applies options; returns per-option errors (empty when all applied) and,
    /// when a session had to be created, the cookie value to set.
    pub(super) fn set<T>(
        &self,
        request: &Request<T>,
        catalog: &Catalog,
        options: BTreeMap<String, SessionOptionValue>,
    ) -> (SetSessionOptionsResult, Option<String>) {
        let (session, new_cookie) = match self.find(request) {
            Some(session) => (session, None),
            None => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                let session = Arc::new(Mutex::new(Session {
                    defaults: SessionDefaults::default(),
                    last_used: Instant::now(),
                }));
                let mut sessions = self.lock();
                evict(&mut sessions);
                sessions.insert(format!("cookie:{id}"), Arc::clone(&session));
                if let Some(key) = Self::connection_key(request) {
                    sessions.insert(key, Arc::clone(&session));
                }
                (session, Some(id))
            }
        };
        let mut session = lock(&session);
        session.last_used = Instant::now();
        let mut errors = BTreeMap::new();
        for (name, value) in options {
            if let Err(error) = apply(&mut session.defaults, catalog, &name, value.option_value) {
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

    /// Forgets the caller's session under all its keys; false when it had none.
    pub(super) fn close<T>(&self, request: &Request<T>) -> bool {
        let Some(session) = self.find(request) else {
            return false;
        };
        self.lock().retain(|_, s| !Arc::ptr_eq(s, &session));
        true
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, SharedSession>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn lock(session: &SharedSession) -> MutexGuard<'_, Session> {
    session.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sets one option; a valueless option resets it to the server default.
fn apply(
    defaults: &mut SessionDefaults,
    catalog: &Catalog,
    name: &str,
    value: Option<OptionValue>,
) -> Result<(), ErrorValue> {
    match (name, value) {
        ("catalog", Some(OptionValue::StringValue(c))) if c == CATALOG_NAME => defaults.catalog = c,
        ("schema", Some(OptionValue::StringValue(s)))
            if catalog.schema_names().contains(&s) || is_builtin(&s) =>
        {
            defaults.schema = s
        }
        ("catalog", None) => defaults.catalog = SessionDefaults::default().catalog,
        ("schema", None) => defaults.schema = SessionDefaults::default().schema,
        // Binding to a profile: its indexes only, anything else is PermissionDenied.
        ("profile", Some(OptionValue::StringValue(p))) if p.is_empty() => defaults.profile = None,
        ("profile", Some(OptionValue::StringValue(p)))
            if catalog.snapshot().profile(&p).is_some() =>
        {
            defaults.profile = Some(p)
        }
        ("profile", None) => defaults.profile = None,
        ("catalog" | "schema" | "profile", _) => return Err(ErrorValue::InvalidValue),
        _ => return Err(ErrorValue::InvalidName),
    }
    Ok(())
}

fn is_builtin(schema: &str) -> bool {
    schema == crate::catalog::SYSTEM_SCHEMA || schema == crate::catalog::INFORMATION_SCHEMA
}

fn evict(sessions: &mut HashMap<String, SharedSession>) {
    sessions.retain(|_, s| lock(s).last_used.elapsed() < IDLE_TIMEOUT);
    while sessions.len() >= MAX_SESSIONS {
        let oldest = sessions.values().min_by_key(|s| lock(s).last_used).cloned();
        let Some(oldest) = oldest else { break };
        sessions.retain(|_, s| !Arc::ptr_eq(s, &oldest));
    }
}

/// The options of a session, as GetSessionOptions reports them.
pub(super) fn options_of(defaults: &SessionDefaults) -> BTreeMap<String, SessionOptionValue> {
    let string = |s: &str| SessionOptionValue {
        option_value: Some(OptionValue::StringValue(s.to_string())),
    };
    let mut options = BTreeMap::from([
        ("catalog".to_string(), string(&defaults.catalog)),
        ("schema".to_string(), string(&defaults.schema)),
    ]);
    if let Some(profile) = &defaults.profile {
        options.insert("profile".to_string(), string(profile));
    }
    options
}
