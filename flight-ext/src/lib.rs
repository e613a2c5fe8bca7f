//! The Lakehouse extension protocol, shared by the server, workers and clients.
//!
//! `proto/lakehouse/v1/*.proto` is the single source of truth; this crate holds
//! the generated types and the codecs around them.

/// Generated `lakehouse.v1` messages.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/lakehouse.v1.rs"));
}

mod handle;

pub use handle::{HANDLE_VERSION, HandleError, MAX_HANDLE_BYTES, decode_handle, encode_handle};

/// Names of the standard Flight session actions (bodies are raw, not `Any`-wrapped).
pub mod session_actions {
    /// `SetSessionOptionsRequest` → `SetSessionOptionsResult`.
    pub const SET_SESSION_OPTIONS: &str = "SetSessionOptions";
    /// `GetSessionOptionsRequest` → `GetSessionOptionsResult`.
    pub const GET_SESSION_OPTIONS: &str = "GetSessionOptions";
    /// `CloseSessionRequest` → `CloseSessionResult`.
    pub const CLOSE_SESSION: &str = "CloseSession";
    /// `CancelFlightInfoRequest` → `CancelFlightInfoResult`.
    pub const CANCEL_FLIGHT_INFO: &str = "CancelFlightInfo";
}
