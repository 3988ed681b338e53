//! TLS to PostgreSQL as libpq does it: `sslmode` (`disable` to `verify-full`), `sslrootcert`
//! (`~/.postgresql/root.crt` by default, `system` for the platform's roots) and
//! `tls-server-end-point` channel binding, over rustls.
//!
//! Architecture invariant: tokio-postgres knows only `disable`, `prefer` and `require`, and
//! refuses the other modes and `sslrootcert` in a URL: [`split_params`] takes them out of the
//! URL's text before tokio-postgres parses it, [`TlsSettings`] keeps them, and [`MakeRustls`]
//! (one connector for tokio-postgres's own [`Socket`] only, whose futures are `Send`) verifies
//! the server's certificate as the mode says.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::Digest as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::Socket;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// libpq's `sslmode`, all six of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// Plain first; TLS when the server refuses a plain connection.
    Allow,
    /// TLS when the server offers it (libpq's default), else plain.
    Prefer,
    /// TLS always; the certificate is checked only when a root certificate file exists.
    Require,
    /// TLS, the certificate signed by a trusted authority; any host name.
    VerifyCa,
    /// TLS, the certificate signed by a trusted authority and naming the host.
    VerifyFull,
}

impl SslMode {
    /// The mode a `sslmode` value names.
    pub fn parse(text: &str) -> Option<SslMode> {
        Some(match text {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// Its `sslmode` value.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres is told for the first attempt (`allow` tries plain first).
    pub fn wire(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable | SslMode::Allow => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        }
    }

    fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// Where the certificates of the authorities plat trusts come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file: the one `sslrootcert`/`PGSSLROOTCERT` names, or libpq's default
    /// `~/.postgresql/root.crt`.
    File(PathBuf),
    /// `sslrootcert=system`: the platform's trusted roots.
    System,
    /// No file named and no home directory to find the default one in.
    Unset,
}

impl std::fmt::Display for RootCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RootCert::File(path) => write!(f, "the root certificate file {}", path.display()),
            RootCert::System => f.write_str("the system's trusted roots (sslrootcert=system)"),
            RootCert::Unset => f.write_str("no root certificate file"),
        }
    }
}

/// How one database target talks TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The mode.
    pub mode: SslMode,
    /// The trusted roots.
    pub root_cert: RootCert,
}

impl TlsSettings {
    /// No TLS: the workspace's own database container, on this machine or its network.
    pub fn disabled() -> TlsSettings {
        TlsSettings { mode: SslMode::Disable, root_cert: RootCert::Unset }
    }

    /// The settings from the URL's `sslmode`/`sslrootcert`, else `PGSSLMODE`/`PGSSLROOTCERT`,
    /// else libpq's defaults (`prefer`, `~/.postgresql/root.crt`; `verify-full` with
    /// `sslrootcert=system`, which refuses weaker modes as libpq 16 does).
    pub fn resolve(params: &TlsParams, env: &dyn Fn(&str) -> Option<String>) -> Result<TlsSettings, String> {
        let env = |name: &str| env(name).filter(|value| !value.is_empty());
        let (mode, mode_from) = match (&params.sslmode, env("PGSSLMODE")) {
            (Some(mode), _) => (Some(mode.clone()), "sslmode"),
            (None, Some(mode)) => (Some(mode), "PGSSLMODE"),
            (None, None) => (None, ""),
        };
        let mode = match mode {
            Some(text) => Some(SslMode::parse(&text).ok_or_else(|| {
                format!(
                    "{mode_from} `{text}` is not an sslmode (disable, allow, prefer, require, verify-ca, verify-full)"
                )
            })?),
            None => None,
        };
        let root_cert = match params.sslrootcert.clone().or_else(|| env("PGSSLROOTCERT")) {
            Some(text) if text == "system" => RootCert::System,
            Some(text) => RootCert::File(PathBuf::from(text)),
            None => match env("HOME") {
                Some(home) => RootCert::File(Path::new(&home).join(".postgresql/root.crt")),
                None => RootCert::Unset,
            },
        };
        let mode = match (mode, &root_cert) {
            (None, RootCert::System) => SslMode::VerifyFull,
            (None, _) => SslMode::Prefer,
            (Some(mode), RootCert::System) if mode != SslMode::VerifyFull => {
                return Err(format!(
                    "sslmode={} may not be used with sslrootcert=system: the system's roots trust any public \
                     certificate, so only verify-full (the default with them) is safe",
                    mode.as_str()
                ));
            }
            (Some(mode), _) => mode,
        };
        Ok(TlsSettings { mode, root_cert })
    }

    /// The connector for a connection to `host`: rustls, verifying as the mode says. Fails when
    /// the mode needs roots that cannot be had.
    pub fn connector(&self) -> Result<MakeRustls, String> {
        let provider = crypto_provider();
        let roots = match self.mode {
            SslMode::Disable => None,
            _ => self.roots()?,
        };
        let (verifier, trusted): (Arc<dyn ServerCertVerifier>, _) = match roots {
            None => (Arc::new(AnyCertificate { provider: provider.clone() }), None),
            Some(store) => {
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                    .build()
                    .map_err(|error| format!("cannot use {}: {error}", self.root_cert))?;
                let verifier: Arc<dyn ServerCertVerifier> = match self.mode {
                    SslMode::VerifyFull => webpki,
                    _ => Arc::new(ChainOnly { inner: webpki }),
                };
                (verifier, Some(self.root_cert.clone()))
            }
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| format!("cannot set up TLS: {error}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustls { connector: tokio_rustls::TlsConnector::from(Arc::new(config)), trusted, mode: self.mode })
    }

    /// The trusted roots, or `None` when the mode checks no certificate: libpq checks the chain
    /// in every mode when the root certificate file exists, and requires it for verify-*.
    fn roots(&self) -> Result<Option<RootCertStore>, String> {
        let mut store = RootCertStore::empty();
        match &self.root_cert {
            RootCert::System => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = store.add_parsable_certificates(found.certs);
                if added == 0 {
                    let why = found.errors.first().map(|error| format!(" ({error})")).unwrap_or_default();
                    return Err(format!(
                        "sslrootcert=system, and this machine has no trusted root certificates{why}: install the \
                         ca-certificates package, or name the server's authority with sslrootcert=FILE"
                    ));
                }
            }
            RootCert::File(path) if path.exists() => {
                let read = CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|error| {
                    format!("cannot read the root certificate file {}: {error}", path.display())
                })?;
                let (added, _) = store.add_parsable_certificates(read);
                if added == 0 {
                    return Err(format!(
                        "the root certificate file {} holds no certificate (PEM, -----BEGIN CERTIFICATE-----)",
                        path.display()
                    ));
                }
            }
            RootCert::File(path) if self.mode.verifies() => {
                return Err(format!(
                    "sslmode={} needs the certificate of the server's authority, and the root certificate file {} \
                     does not exist: name it with sslrootcert=FILE (or PGSSLROOTCERT), use the system's roots \
                     with sslrootcert=system, or use sslmode=require to encrypt without checking the server",
                    self.mode.as_str(),
                    path.display()
                ));
            }
            RootCert::Unset if self.mode.verifies() => {
                return Err(format!(
                    "sslmode={} needs the certificate of the server's authority: name it with sslrootcert=FILE (or \
                     PGSSLROOTCERT); HOME is not set, so there is no ~/.postgresql/root.crt",
                    self.mode.as_str()
                ));
            }
            RootCert::File(_) | RootCert::Unset => return Ok(None),
        }
        Ok(Some(store))
    }
}

/// rustls's ring provider. rustls 0.23.48 deprecates it for lacking post-quantum key exchange
/// (aws-lc-rs has it); plat keeps ring, which builds with a C compiler alone (aws-lc-rs needs
/// cmake), and PostgreSQL servers built on OpenSSL 3 do not offer post-quantum groups anyway.
#[allow(deprecated)]
fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS parameters taken out of a URL's text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsParams {
    /// `sslmode`, as written.
    pub sslmode: Option<String>,
    /// `sslrootcert`, as written.
    pub sslrootcert: Option<String>,
}

/// `text` (a `postgres://` URL or `key=value` pairs) without its `sslmode` and `sslrootcert`,
/// and their values. Text that does not parse comes back whole, for tokio-postgres to report.
pub fn split_params(text: &str) -> (String, TlsParams) {
    let mut params = TlsParams::default();
    let mut take = |key: &str, value: String| match key {
        "sslmode" => {
            params.sslmode = Some(value);
            true
        }
        "sslrootcert" => {
            params.sslrootcert = Some(value);
            true
        }
        _ => false,
    };
    let trimmed = text.trim();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        let Some((base, query)) = trimmed.split_once('?') else { return (trimmed.to_owned(), params) };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                !take(&percent_decode(key), percent_decode(value))
            })
            .collect();
        let rest = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
        return (rest, params);
    }
    let Some(pairs) = key_value_pairs(trimmed) else { return (trimmed.to_owned(), TlsParams::default()) };
    let kept: Vec<&str> =
        pairs.into_iter().filter(|(key, value, _)| !take(key, value.clone())).map(|(_, _, raw)| raw).collect();
    (kept.join(" "), params)
}

/// libpq's `key = value` pairs (values optionally in single quotes, `\` escaping): each key,
/// its unescaped value and the pair's own text. `None` when the text is not such pairs.
fn key_value_pairs(text: &str) -> Option<Vec<(String, String, &str)>> {
    let bytes = text.as_bytes();
    let mut at = 0;
    let mut pairs = Vec::new();
    let skip_space = |at: &mut usize| {
        while *at < bytes.len() && bytes[*at].is_ascii_whitespace() {
            *at += 1;
        }
    };
    loop {
        skip_space(&mut at);
        if at == bytes.len() {
            return Some(pairs);
        }
        let start = at;
        while at < bytes.len() && !bytes[at].is_ascii_whitespace() && bytes[at] != b'=' {
            at += 1;
        }
        let key = text[start..at].to_owned();
        skip_space(&mut at);
        if bytes.get(at) != Some(&b'=') || key.is_empty() {
            return None;
        }
        at += 1;
        skip_space(&mut at);
        let mut value = Vec::new();
        if bytes.get(at) == Some(&b'\'') {
            at += 1;
            loop {
                match bytes.get(at)? {
                    b'\'' => break,
                    b'\\' => {
                        value.push(*bytes.get(at + 1)?);
                        at += 1;
                    }
                    &byte => value.push(byte),
                }
                at += 1;
            }
            at += 1;
        } else {
            while at < bytes.len() && !bytes[at].is_ascii_whitespace() {
                if bytes[at] == b'\\' {
                    at += 1;
                }
                value.push(*bytes.get(at)?);
                at += 1;
            }
        }
        pairs.push((key, String::from_utf8(value).ok()?, &text[start..at]));
    }
}

/// `%XX` decoded, as a URL's query parameters are.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let hex = bytes.get(at + 1..at + 3).and_then(|pair| std::str::from_utf8(pair).ok());
        match (bytes[at], hex.and_then(|hex| u8::from_str_radix(hex, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                at += 3;
            }
            (byte, _) => {
                out.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// tokio-postgres's `MakeTlsConnect` for its own `Socket`, over rustls.
#[derive(Clone)]
pub struct MakeRustls {
    connector: tokio_rustls::TlsConnector,
    /// The roots the certificate is checked against; `None` when it is not checked.
    trusted: Option<RootCert>,
    mode: SslMode,
}

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = HandshakeError;

    fn make_tls_connect(&mut self, host: &str) -> Result<RustlsConnect, HandshakeError> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| HandshakeError(format!("`{host}` is not a host name TLS can check a certificate against")))?;
        Ok(RustlsConnect { make: self.clone(), host: host.to_owned(), name })
    }
}

/// One TLS handshake with one host.
pub struct RustlsConnect {
    make: MakeRustls,
    host: String,
    name: ServerName<'static>,
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = HandshakeError;
    type Future = Pin<Box<dyn Future<Output = Result<RustlsStream, HandshakeError>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let RustlsConnect { make, host, name } = self;
            match make.connector.connect(name, stream).await {
                Ok(stream) => Ok(RustlsStream(Box::new(stream))),
                Err(error) => Err(HandshakeError(explain_handshake(&error, &host, &make))),
            }
        })
    }
}

/// Why a TLS handshake failed, in words that say what to do.
#[derive(Debug)]
pub struct HandshakeError(String);

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HandshakeError {}

fn explain_handshake(error: &std::io::Error, host: &str, make: &MakeRustls) -> String {
    let Some(rustls::Error::InvalidCertificate(problem)) = error.get_ref().and_then(|inner| inner.downcast_ref())
    else {
        return format!("TLS handshake with {host} failed: {error}");
    };
    let trusted = make.trusted.as_ref().map_or_else(|| "no roots".to_owned(), ToString::to_string);
    match problem {
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            let presented = match problem {
                CertificateError::NotValidForNameContext { presented, .. } if !presented.is_empty() => {
                    let names: Vec<String> = presented.iter().map(|name| presented_name(name)).collect();
                    format!("it is for {}", names.join(", "))
                }
                _ => "it names no host".to_owned(),
            };
            format!(
                "the server's certificate is not valid for the host `{host}` ({presented}); sslmode={} checks the \
                 host name: connect by a name the certificate holds, or use sslmode=verify-ca to check only that a \
                 trusted authority signed it",
                make.mode.as_str()
            )
        }
        CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
            "the server's certificate is not signed by an authority in {trusted}: name the certificate of the \
             authority that signed it with sslrootcert=FILE (or PGSSLROOTCERT){}",
            if make.mode.verifies() { "" } else { ", or remove the root certificate file to encrypt without checking" }
        ),
        other => format!("the server's certificate, checked against {trusted}, is not acceptable: {other}"),
    }
}

/// `DnsName("localhost")` as `localhost`, `IpAddress(127.0.0.1)` as `127.0.0.1`.
fn presented_name(name: &str) -> String {
    for prefix in ["DnsName(\"", "IpAddress("] {
        if let Some(inner) = name.strip_prefix(prefix) {
            return inner.trim_end_matches(')').trim_end_matches('"').to_owned();
        }
    }
    name.to_owned()
}

/// Accepts any certificate (`require` and `prefer` without a root certificate file, as libpq),
/// but still checks that the server holds its key: the handshake's signatures are verified.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca` (and `require` with a root certificate file): the chain up to a trusted root is
/// checked, the host name is not. webpki checks the name only after the chain, so a name
/// mismatch means the chain passed.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A TLS connection to the server.
pub struct RustlsStream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl AsyncRead for RustlsStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl TlsStream for RustlsStream {
    /// `tls-server-end-point` (RFC 5929): the server certificate's hash, by the hash of its
    /// signature algorithm (SHA-256 for MD5 and SHA-1), so that SCRAM can bind the password
    /// exchange to this TLS session (`SCRAM-SHA-256-PLUS`).
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        match session.peer_certificates().and_then(|certs| certs.first()).and_then(|cert| end_point_hash(cert)) {
            Some(hash) => ChannelBinding::tls_server_end_point(hash),
            None => ChannelBinding::none(),
        }
    }
}

/// The certificate's `tls-server-end-point` hash; `None` for a signature algorithm with no
/// single hash (Ed25519), which PostgreSQL cannot bind to either.
fn end_point_hash(cert: &[u8]) -> Option<Vec<u8>> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE { OID, .. }, .. }
    let (_, certificate, _) = der_element(cert)?;
    let (_, _, after_tbs) = der_element(certificate)?;
    let (_, algorithm, _) = der_element(after_tbs)?;
    let (tag, oid, _) = der_element(algorithm)?;
    if tag != 0x06 {
        return None;
    }
    const SHA384: [&[u8]; 2] = [
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c], // sha384WithRSAEncryption
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],       // ecdsa-with-SHA384
    ];
    const SHA512: [&[u8]; 2] = [
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d], // sha512WithRSAEncryption
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],       // ecdsa-with-SHA512
    ];
    const EDWARDS: [&[u8]; 2] = [&[0x2b, 0x65, 0x70], &[0x2b, 0x65, 0x71]]; // Ed25519, Ed448
    Some(if SHA384.contains(&oid) {
        sha2::Sha384::digest(cert).to_vec()
    } else if SHA512.contains(&oid) {
        sha2::Sha512::digest(cert).to_vec()
    } else if EDWARDS.contains(&oid) {
        return None;
    } else {
        sha2::Sha256::digest(cert).to_vec()
    })
}

/// One DER element: its tag, its contents and what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let length = rest[..count].iter().fold(0usize, |length, &byte| (length << 8) | usize::from(byte));
        (length, &rest[count..])
    };
    (rest.len() >= length).then(|| (tag, &rest[..length], &rest[length..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_only_what_tokio_postgres_cannot_parse() {
        let (rest, params) =
            split_params("postgres://u@h/db?sslmode=verify-full&connect_timeout=3&sslrootcert=%2Ftmp%2Fca.pem");
        assert_eq!(rest, "postgres://u@h/db?connect_timeout=3");
        assert_eq!(params, TlsParams { sslmode: Some("verify-full".into()), sslrootcert: Some("/tmp/ca.pem".into()) });
        let (rest, params) = split_params("postgresql://u@h/db?sslmode=require");
        assert_eq!((rest.as_str(), params.sslmode.as_deref()), ("postgresql://u@h/db", Some("require")));
        let (rest, params) = split_params("postgres://u@h/db");
        assert_eq!((rest.as_str(), params), ("postgres://u@h/db", TlsParams::default()));
    }

    #[test]
    fn key_value_pairs_lose_them_too() {
        let (rest, params) = split_params("host=h sslmode = verify-ca sslrootcert='/my dir/ca\\'s.pem' dbname=x");
        assert_eq!(rest, "host=h dbname=x");
        assert_eq!(params.sslmode.as_deref(), Some("verify-ca"));
        assert_eq!(params.sslrootcert.as_deref(), Some("/my dir/ca's.pem"));
        let (rest, params) = split_params("host=h user");
        assert_eq!((rest.as_str(), params), ("host=h user", TlsParams::default()));
    }

    fn settings(params: TlsParams, vars: &[(&str, &str)]) -> Result<TlsSettings, String> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let env = move |name: &str| vars.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
        TlsSettings::resolve(&params, &env)
    }

    #[test]
    fn settings_follow_libpq() {
        let none = TlsParams::default();
        let home = settings(none.clone(), &[("HOME", "/home/me")]).unwrap();
        assert_eq!(home.mode, SslMode::Prefer);
        assert_eq!(home.root_cert, RootCert::File(PathBuf::from("/home/me/.postgresql/root.crt")));
        let from_env = settings(none.clone(), &[("PGSSLMODE", "verify-ca"), ("PGSSLROOTCERT", "/ca.pem")]).unwrap();
        assert_eq!(from_env.mode, SslMode::VerifyCa);
        assert_eq!(from_env.root_cert, RootCert::File(PathBuf::from("/ca.pem")));
        let url = TlsParams { sslmode: Some("disable".into()), sslrootcert: None };
        assert_eq!(settings(url, &[("PGSSLMODE", "require")]).unwrap().mode, SslMode::Disable, "the URL wins");
        let system = TlsParams { sslmode: None, sslrootcert: Some("system".into()) };
        assert_eq!(settings(system.clone(), &[]).unwrap().mode, SslMode::VerifyFull);
        let weak = TlsParams { sslmode: Some("require".into()), ..system };
        assert!(settings(weak, &[]).unwrap_err().contains("only verify-full"));
        assert_eq!(
            settings(TlsParams { sslmode: Some("on".into()), sslrootcert: None }, &[]).unwrap_err(),
            "sslmode `on` is not an sslmode (disable, allow, prefer, require, verify-ca, verify-full)"
        );
    }

    #[test]
    fn verifying_modes_need_their_roots() {
        let missing = RootCert::File(PathBuf::from("/nonexistent/root.crt"));
        for mode in [SslMode::Prefer, SslMode::Require] {
            assert!(TlsSettings { mode, root_cert: missing.clone() }.connector().unwrap().trusted.is_none());
        }
        let Err(error) = (TlsSettings { mode: SslMode::VerifyFull, root_cert: missing }).connector() else {
            panic!("verify-full without roots connected")
        };
        assert!(error.contains("/nonexistent/root.crt does not exist"), "{error}");
        assert!(error.contains("sslrootcert=FILE"), "{error}");
    }

    #[test]
    fn der_elements_with_long_lengths() {
        let mut long = vec![0x30, 0x82, 0x01, 0x00];
        long.extend(std::iter::repeat_n(7, 256));
        long.push(0xff);
        let (tag, contents, rest) = der_element(&long).unwrap();
        assert_eq!((tag, contents.len(), rest), (0x30, 256, &[0xff][..]));
        assert!(der_element(&[0x30, 0x05, 0x00]).is_none(), "shorter than it says");
        assert!(end_point_hash(b"not a certificate").is_none());
    }
}
