//! TLS, on rustls with its safe defaults (TLS 1.3 and 1.2, forward-secret AEAD
//! suites only): a listener's certificates, chosen by the name the client asks
//! for, and the client side of TLS to an origin.
//!
//! Every file is read and checked when a node is built: a missing file, PEM
//! without the expected block, or a key that does not belong to its certificate
//! is an error at the config line that names it. A reload that fails so leaves the
//! running node, and its certificates, serving.

use std::collections::HashMap;
use std::sync::Arc;

use edge_config::{Certificate, Config, Diagnostic, ListenerTls, OriginTls, Spanned};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// The largest PEM file read (a chain, a key, a CA bundle).
const MAX_PEM_BYTES: u64 = 4 << 20;

/// The crypto provider every config uses: ring's.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// ALPN protocols a listener offers, preferred first.
const SERVER_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// A listener's TLS config: its certificates behind an SNI resolver, ALPN `h2` and
/// `http/1.1`, a session cache and (unless turned off) session tickets.
pub fn listener_config(
    config: &Config,
    tls: &Spanned<ListenerTls>,
) -> Result<Arc<ServerConfig>, Vec<Diagnostic>> {
    let src = config.source();
    let mut errors = Vec::new();
    let mut sni = SniResolver::default();
    for (i, c) in tls.get_ref().certificates.iter().enumerate() {
        match certified_key(config, c.get_ref()) {
            Ok((key, names)) => {
                let names = if c.get_ref().names.is_empty() {
                    names
                } else {
                    c.get_ref()
                        .names
                        .iter()
                        .map(|n| n.get_ref().clone())
                        .collect()
                };
                if names.is_empty() && i > 0 {
                    errors.push(src.diagnostic(
                        c.span(),
                        "the certificate lists no DNS name and sets no `names`: no client \
                         could reach it (only the first certificate serves clients that \
                         send no name)",
                    ));
                }
                sni.add(&names, Arc::new(key));
            }
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| vec![src.diagnostic(tls.span(), format!("TLS: {e}"))])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(sni));
    let mut server = server;
    server.alpn_protocols = SERVER_ALPN.iter().map(|p| p.to_vec()).collect();
    server.session_storage = rustls::server::ServerSessionMemoryCache::new(16 * 1024);
    if tls.get_ref().session_tickets {
        server.ticketer = rustls::crypto::ring::Ticketer::new()
            .map_err(|e| vec![src.diagnostic(tls.span(), format!("TLS session tickets: {e}"))])?;
    }
    Ok(Arc::new(server))
}

/// Certificates by the names they serve.
#[derive(Debug, Default)]
struct SniResolver {
    /// `www.example.com` → its certificate.
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `example.com` → the certificate for `*.example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// For a client that sends no name, or one no certificate holds: the first.
    default: Option<Arc<CertifiedKey>>,
}

impl SniResolver {
    /// Serve `names` with `key`; a name already served keeps its first certificate.
    fn add(&mut self, names: &[String], key: Arc<CertifiedKey>) {
        for n in names {
            let n = normalize(n);
            match n.strip_prefix("*.") {
                Some(parent) => self.wildcard.entry(parent.to_string()),
                None => self.exact.entry(n),
            }
            .or_insert_with(|| key.clone());
        }
        self.default.get_or_insert(key);
    }

    /// The certificate for server name `name`.
    fn pick(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let found = name.and_then(|n| {
            let n = normalize(n);
            self.exact.get(&n).or_else(|| {
                // A wildcard covers exactly one label (RFC 6125, 6.4.3).
                let (_, parent) = n.split_once('.')?;
                self.wildcard.get(parent)
            })
        });
        found.or(self.default.as_ref()).cloned()
    }
}

/// A DNS name as compared: lower case, without a trailing dot.
fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name())
    }
}

/// Read `c`'s chain and key, check they belong together; the key and the DNS
/// names the leaf lists.
fn certified_key(
    config: &Config,
    c: &Certificate,
) -> Result<(CertifiedKey, Vec<String>), Diagnostic> {
    let src = config.source();
    let chain = read_certs(config, &c.cert)?;
    let key_bytes = read_pem(config, &c.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| {
        src.diagnostic(
            c.key.span(),
            format!(
                "`{}`: expected a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
                c.key.get_ref()
            ),
        )
    })?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| src.diagnostic(c.key.span(), format!("`{}`: {e}", c.key.get_ref())))?;
    let names = leaf_names(&chain[0]);
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => {
            return Err(src.diagnostic(
                c.key.span(),
                format!(
                    "`{}` is not the private key of `{}`'s certificate: {e}",
                    c.key.get_ref(),
                    c.cert.get_ref()
                ),
            ));
        }
    }
    Ok((certified, names))
}

/// The DNS names (subject alternative names) of a leaf certificate; a warning
/// when it is outside its validity period.
fn leaf_names(leaf: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
        return Vec::new();
    };
    if !cert.validity().is_valid() {
        tracing::warn!(
            subject = %cert.subject(),
            "a configured certificate is outside its validity period ({} to {})",
            cert.validity().not_before,
            cert.validity().not_after
        );
    }
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_string()),
            _ => None,
        })
        .collect()
}

/// The bytes of the PEM file `path` names.
fn read_pem(config: &Config, path: &Spanned<String>) -> Result<Vec<u8>, Diagnostic> {
    let full = config.resolve_path(path.get_ref());
    edge_config::read_capped(&full, MAX_PEM_BYTES).map_err(|e| {
        config.source().diagnostic(
            path.span(),
            format!("cannot read `{}`: {e}", full.display()),
        )
    })
}

/// The certificates of a PEM file, at least one.
fn read_certs(
    config: &Config,
    path: &Spanned<String>,
) -> Result<Vec<CertificateDer<'static>>, Diagnostic> {
    let bytes = read_pem(config, path)?;
    let at = |m: String| config.source().diagnostic(path.span(), m);
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| at(format!("`{}`: not PEM certificates: {e}", path.get_ref())))?;
    if certs.is_empty() {
        return Err(at(format!(
            "`{}` holds no `BEGIN CERTIFICATE` block",
            path.get_ref()
        )));
    }
    Ok(certs)
}

/// The client config for TLS to an origin: verification against the configured
/// CA or the system's roots, an optional client certificate, ALPN.
pub fn origin_config(
    config: &Config,
    tls: &Spanned<OriginTls>,
) -> Result<Arc<ClientConfig>, Diagnostic> {
    let t = tls.get_ref();
    let src = config.source();
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| src.diagnostic(tls.span(), format!("TLS: {e}")))?;
    let builder = if t.verify {
        builder.with_root_certificates(roots(config, tls)?)
    } else {
        tracing::warn!(
            "an origin's TLS certificate is not verified (`verify = false`): anyone on \
             the path can impersonate it"
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
    };
    let mut client = match &t.client_certificate {
        Some(c) => {
            let chain = read_certs(config, &c.get_ref().cert)?;
            let key_bytes = read_pem(config, &c.get_ref().key)?;
            let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| {
                src.diagnostic(
                    c.get_ref().key.span(),
                    format!("not a PEM private key: {e}"),
                )
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| src.diagnostic(c.span(), format!("client certificate: {e}")))?
        }
        None => builder.with_no_client_auth(),
    };
    client.alpn_protocols = if t.http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Arc::new(client))
}

/// The trust anchors for an origin: its `ca` file, or the system's roots.
fn roots(config: &Config, tls: &Spanned<OriginTls>) -> Result<RootCertStore, Diagnostic> {
    let mut store = RootCertStore::empty();
    if let Some(ca) = &tls.get_ref().ca {
        for cert in read_certs(config, ca)? {
            store.add(cert).map_err(|e| {
                config
                    .source()
                    .diagnostic(ca.span(), format!("`{}`: {e}", ca.get_ref()))
            })?;
        }
        return Ok(store);
    }
    let found = rustls_native_certs::load_native_certs();
    let (added, _) = store.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(config.source().diagnostic(
            tls.span(),
            format!(
                "no system CA certificates found ({}); install `ca-certificates` or set `ca`",
                found
                    .errors
                    .first()
                    .map_or_else(|| "none readable".to_string(), ToString::to_string)
            ),
        ));
    }
    Ok(store)
}

/// The name to send as SNI and verify: `explicit`, else the host of `host_header`,
/// else of `address`.
pub fn origin_server_name(
    explicit: Option<&str>,
    host_header: Option<&str>,
    address: &str,
) -> Result<ServerName<'static>, String> {
    let host = explicit.or(host_header).unwrap_or(address);
    let host = match host.parse::<http::uri::Authority>() {
        Ok(a) => a
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        Err(_) => host.to_string(),
    };
    ServerName::try_from(host.clone())
        .map_err(|e| format!("`{host}` is not a valid TLS server name: {e}"))
}

/// A verifier that accepts any certificate (`verify = false`), still checking the
/// handshake's signatures.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_server_names_come_from_the_explicit_name_then_the_host_header_then_the_address() {
        let name = |e, h, a| origin_server_name(e, h, a).map(|n| n.to_str().into_owned());
        assert_eq!(
            name(Some("o.example"), Some("h.example"), "10.0.0.1:443").as_deref(),
            Ok("o.example")
        );
        assert_eq!(
            name(None, Some("h.example:8443"), "10.0.0.1:443").as_deref(),
            Ok("h.example")
        );
        assert_eq!(
            name(None, None, "origin.example:443").as_deref(),
            Ok("origin.example")
        );
        assert_eq!(name(None, None, "10.0.0.1:443").as_deref(), Ok("10.0.0.1"));
        assert!(name(Some("bad name!"), None, "x:1").is_err());
    }
}
