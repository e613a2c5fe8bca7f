//! A Flight SQL connection for the command line: auth, TLS, queries and actions,
//! with errors that keep the server's status code and message.

use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::{Any, CommandStatementQuery, ProstMessageExt};
use arrow_flight::{
    Action, CancelFlightInfoRequest, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest,
    PutResult,
};
use base64::Engine;
use clap::Args;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request, Status};

/// Where the server is and how to log in; each flag also reads its variable.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Server URL: grpc://host:port, or grpc+tls://host:port for TLS.
    #[arg(
        long,
        env = "LAKEHOUSE_URL",
        default_value = "grpc://127.0.0.1:50051",
        global = true
    )]
    pub url: String,
    /// Bearer token (from a Handshake or an operator).
    #[arg(long, env = "LAKEHOUSE_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// User name: logs in with a Basic-auth Handshake (needs --password).
    #[arg(long, env = "LAKEHOUSE_USER", global = true)]
    pub user: Option<String>,
    /// Password of --user.
    #[arg(
        long,
        env = "LAKEHOUSE_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub password: Option<String>,
    /// PEM file of the CA that signed the server's certificate [default: the system's roots].
    #[arg(long, env = "LAKEHOUSE_TLS_CA", global = true)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// PEM client certificate, for servers that require one (with --tls-key).
    #[arg(long, env = "LAKEHOUSE_TLS_CERT", global = true)]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "LAKEHOUSE_TLS_KEY", global = true)]
    pub tls_key: Option<std::path::PathBuf>,
}

/// A failed command: the server's status (when it answered), its message and what
/// the user can do about it.
#[derive(Debug)]
pub struct CliError {
    /// The gRPC code, when the server (or the transport) gave one.
    pub code: Option<Code>,
    /// What went wrong.
    pub message: String,
    /// What to try.
    pub hint: Option<String>,
}

impl CliError {
    /// An error of the command line itself (bad flags, local files).
    pub fn local(message: impl Into<String>) -> Self {
        Self {
            code: None,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds or replaces the hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The process exit code: 1 for a server-side refusal, 2 for bad usage, 3 when
    /// the server cannot be reached or logged into.
    pub fn exit_code(&self) -> u8 {
        match self.code {
            Some(Code::Unavailable | Code::Unauthenticated) => 3,
            None => 2,
            Some(_) => 1,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            Some(code) => write!(f, "error ({}): {}", code_name(code), self.message)?,
            None => write!(f, "error: {}", self.message)?,
        }
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl From<Status> for CliError {
    fn from(status: Status) -> Self {
        let code = status.code();
        let mut message = status.message().to_string();
        if message.is_empty() {
            message = format!("the call failed with {}", code_name(code));
        }
        Self {
            code: Some(code),
            hint: hint_for(code, &message),
            message,
        }
    }
}

impl From<FlightError> for CliError {
    fn from(error: FlightError) -> Self {
        match error {
            FlightError::Tonic(status) => (*status).into(),
            other => Self {
                code: Some(Code::Internal),
                message: other.to_string(),
                hint: None,
            },
        }
    }
}

/// `INVALID_ARGUMENT` for `Code::InvalidArgument` (the names jobs report).
pub(crate) fn code_name(code: Code) -> &'static str {
    lakehouse_flight_ext::names::code_name(code as i32)
}

fn hint_for(code: Code, message: &str) -> Option<String> {
    let hint = match code {
        Code::Unavailable => {
            "is the server running and reachable? Start one with `lakehouse serve`; \
             point the CLI at it with --url or LAKEHOUSE_URL"
        }
        Code::Unauthenticated => {
            "log in with --user and --password (LAKEHOUSE_USER, LAKEHOUSE_PASSWORD) or pass \
             a token with --token (LAKEHOUSE_TOKEN)"
        }
        Code::PermissionDenied => "the server does not allow this; see the message for why",
        Code::NotFound if message.contains("index") => {
            "list indexes with: lakehouse sql -c \"SELECT name, table_name FROM system.vector_indexes\""
        }
        Code::NotFound if message.contains("bucket") => "list buckets with: lakehouse bucket list",
        Code::NotFound if message.contains("job") => "list jobs with: lakehouse job list",
        Code::NotFound => {
            "list tables with: lakehouse sql -c \"SELECT table_schema, table_name FROM information_schema.tables\""
        }
        Code::ResourceExhausted => "the server is busy or the result too large; retry later",
        Code::DeadlineExceeded => "the server's query timeout stopped it",
        _ => return None,
    };
    Some(hint.to_string())
}

/// An open connection.
pub struct Client {
    flight: FlightServiceClient<Channel>,
    authorization: Option<MetadataValue<tonic::metadata::Ascii>>,
}

/// The largest message the CLI accepts from the server.
const MAX_MESSAGE_BYTES: usize = 256 << 20;

impl Client {
    /// Connects to `args.url`, logging in when a user or token is given.
    pub async fn connect(args: &ConnectArgs) -> Result<Self, CliError> {
        let (tls, address) = if let Some(rest) = args.url.strip_prefix("grpc+tls://") {
            (true, format!("https://{rest}"))
        } else if let Some(rest) = args.url.strip_prefix("grpc://") {
            (false, format!("http://{rest}"))
        } else if let Some(rest) = args.url.strip_prefix("grpc+tcp://") {
            (false, format!("http://{rest}"))
        } else {
            return Err(CliError::local(format!(
                "--url {:?} is not grpc://host:port or grpc+tls://host:port",
                args.url
            )));
        };
        let mut endpoint = Endpoint::from_shared(address)
            .map_err(|e| CliError::local(format!("--url {:?}: {e}", args.url)))?
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true);
        if tls {
            endpoint = endpoint
                .tls_config(tls_config(args)?)
                .map_err(|e| CliError::local(format!("TLS settings: {e}")))?;
        } else if args.tls_ca.is_some() || args.tls_cert.is_some() {
            return Err(CliError::local(
                "TLS files were given but the URL is grpc://; use grpc+tls://",
            ));
        }
        let channel = endpoint.connect().await.map_err(|e| CliError {
            code: Some(Code::Unavailable),
            message: format!("cannot connect to {}: {}", args.url, source_chain(&e)),
            hint: hint_for(Code::Unavailable, ""),
        })?;
        let flight = FlightServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let mut client = Self {
            flight,
            authorization: None,
        };
        match (&args.user, &args.password, &args.token) {
            (Some(user), Some(password), _) => client.handshake(user, password).await?,
            (Some(_), None, _) => {
                return Err(CliError::local(
                    "--user needs --password (or LAKEHOUSE_PASSWORD)",
                ));
            }
            (None, _, Some(token)) => {
                client.authorization = Some(header(&format!("Bearer {token}"))?);
            }
            (None, _, None) => {}
        }
        Ok(client)
    }

    async fn handshake(&mut self, user: &str, password: &str) -> Result<(), CliError> {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let mut request = Request::new(futures::stream::iter([HandshakeRequest::default()]));
        request
            .metadata_mut()
            .insert("authorization", header(&format!("Basic {basic}"))?);
        let response = self.flight.handshake(request).await?;
        let bearer = response
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // Drain the (empty) handshake stream.
        let _: Vec<_> = response.into_inner().try_collect().await?;
        match bearer {
            Some(bearer) if bearer.starts_with("Bearer ") => {
                self.authorization = Some(header(&bearer)?);
                Ok(())
            }
            _ => Err(CliError::local(
                "the server answered the handshake without a bearer token",
            )),
        }
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        request
    }

    /// Plans `sql` (GetFlightInfo); a write runs here already.
    pub async fn plan(&mut self, sql: &str) -> Result<FlightInfo, CliError> {
        let command = CommandStatementQuery {
            query: sql.to_string(),
            transaction_id: None,
        };
        self.flight_info(command.as_any().encode_to_vec()).await
    }

    /// FlightInfo of a command packed as `Any` (`type_url`, protobuf `value`).
    pub async fn plan_command(
        &mut self,
        type_url: &str,
        value: Vec<u8>,
    ) -> Result<FlightInfo, CliError> {
        let any = Any {
            type_url: type_url.to_string(),
            value: value.into(),
        };
        self.flight_info(any.encode_to_vec()).await
    }

    /// GetFlightInfo of a command descriptor.
    async fn flight_info(&mut self, command: Vec<u8>) -> Result<FlightInfo, CliError> {
        let descriptor = FlightDescriptor::new_cmd(command);
        Ok(self
            .flight
            .get_flight_info(self.request(descriptor))
            .await?
            .into_inner())
    }

    /// The batches of every endpoint of `info`, one endpoint after the other.
    pub async fn fetch(
        &mut self,
        info: &FlightInfo,
    ) -> Result<impl Stream<Item = Result<RecordBatch, CliError>> + use<>, CliError> {
        let mut streams = Vec::new();
        for endpoint in &info.endpoint {
            let ticket = endpoint
                .ticket
                .clone()
                .ok_or_else(|| CliError::local("the server sent an endpoint without a ticket"))?;
            let data = self.flight.do_get(self.request(ticket)).await?.into_inner();
            streams.push(FlightRecordBatchStream::new_from_flight_data(
                data.map_err(FlightError::from),
            ));
        }
        Ok(futures::stream::iter(streams)
            .flatten()
            .map(|batch| batch.map_err(CliError::from)))
    }

    /// Asks the server to stop the query of `info` (CancelFlightInfo).
    pub async fn cancel(&mut self, info: FlightInfo) -> Result<(), CliError> {
        let body = CancelFlightInfoRequest { info: Some(info) }.encode_to_vec();
        self.action_stream("CancelFlightInfo", body)
            .await?
            .try_collect::<Vec<_>>()
            .await
            .map(drop)
    }

    /// Runs `sql` and collects its result.
    pub async fn query(&mut self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), CliError> {
        let info = self.plan(sql).await?;
        let schema = info_schema(&info)?;
        let batches = self.fetch(&info).await?.try_collect().await?;
        Ok((schema, batches))
    }

    /// The result bodies of action `name`.
    pub async fn action_stream(
        &mut self,
        name: &str,
        body: Vec<u8>,
    ) -> Result<impl Stream<Item = Result<bytes::Bytes, CliError>> + use<>, CliError> {
        let action = Action {
            r#type: name.to_string(),
            body: body.into(),
        };
        let results = self
            .flight
            .do_action(self.request(action))
            .await?
            .into_inner();
        Ok(results.map_ok(|result| result.body).map_err(CliError::from))
    }

    /// Runs action `name` with a protobuf body and decodes its one result.
    pub async fn action<R: Message + Default>(
        &mut self,
        name: &str,
        body: &impl Message,
    ) -> Result<R, CliError> {
        let mut results = self.action_stream(name, body.encode_to_vec()).await?;
        let first = results
            .next()
            .await
            .ok_or_else(|| CliError::local(format!("action {name} answered nothing")))??;
        R::decode(first).map_err(|e| CliError::local(format!("the answer of {name}: {e}")))
    }

    /// DoPut of `data` under `descriptor`; the first PutResult.
    pub async fn put(
        &mut self,
        data: impl Stream<Item = FlightData> + Send + 'static,
    ) -> Result<PutResult, CliError> {
        let mut results = self.flight.do_put(self.request(data)).await?.into_inner();
        results
            .message()
            .await?
            .ok_or_else(|| CliError::local("the upload was answered with nothing"))
    }
}

/// The result schema a FlightInfo announces.
pub(crate) fn info_schema(info: &FlightInfo) -> Result<SchemaRef, CliError> {
    info.clone()
        .try_decode_schema()
        .map(std::sync::Arc::new)
        .map_err(|e| CliError::local(format!("the server sent an unreadable schema: {e}")))
}

fn header(value: &str) -> Result<MetadataValue<tonic::metadata::Ascii>, CliError> {
    value
        .parse()
        .map_err(|_| CliError::local("the token or credentials hold characters a header cannot"))
}

fn tls_config(args: &ConnectArgs) -> Result<ClientTlsConfig, CliError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| CliError::local(format!("{}: {e}", path.display())))
    };
    let mut config = ClientTlsConfig::new();
    config = match &args.tls_ca {
        Some(ca) => config.ca_certificate(Certificate::from_pem(read(ca)?)),
        None => config.with_native_roots(),
    };
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        (None, None) => {}
        _ => {
            return Err(CliError::local(
                "a client certificate needs both --tls-cert and --tls-key",
            ));
        }
    }
    Ok(config)
}

/// "transport error: tcp connect error: Connection refused" rather than only the outer error.
fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = inner.source();
    }
    text
}
