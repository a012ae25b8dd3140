//! TLS for the QUIC endpoint: the certificate and key from the configuration, or a self-signed
//! development certificate generated once into `<data-dir>/tls/` and reused afterwards. Its
//! SHA-256 fingerprint is what clients pin (`--pin`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// ALPN protocol identifier; a client must offer it.
pub const ALPN: &[u8] = b"switchyard/1";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Pem { path: PathBuf, reason: String },
    #[error("generating the development certificate: {0}")]
    Generate(String),
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The server's certificate chain and key.
#[derive(Debug)]
pub struct TlsIdentity {
    pub certificates: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// Whether it was generated for development (and should be pinned, not trusted by CA).
    pub self_signed: bool,
}

impl TlsIdentity {
    /// Loads `cert` and `key` (PEM), or with neither, the development certificate in
    /// `data_dir/tls/`, generating it the first time.
    pub fn load_or_generate(
        cert: Option<&Path>,
        key: Option<&Path>,
        data_dir: &Path,
    ) -> Result<Self, TlsError> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(TlsIdentity {
                certificates: read_certificates(cert)?,
                key: read_key(key)?,
                self_signed: false,
            }),
            (Some(_), None) | (None, Some(_)) => Err(TlsError::Config(
                "give both a certificate and a key, or neither for a development certificate"
                    .into(),
            )),
            (None, None) => development_identity(&data_dir.join("tls")),
        }
    }

    /// Hex SHA-256 of the leaf certificate, as clients pin it.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.certificates[0])
    }

    /// The rustls server configuration: TLS 1.3 only, ALPN `switchyard/1`.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(self.certificates.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }

    /// The rustls server configuration for protocols over TCP (AMQPS): the same certificate,
    /// TLS 1.3, no ALPN (AMQP clients send none).
    pub fn server_config_for_tcp(&self) -> Result<rustls::ServerConfig, TlsError> {
        let mut config = self.server_config()?;
        config.alpn_protocols.clear();
        Ok(config)
    }
}

/// Hex SHA-256 of a certificate.
pub fn fingerprint(certificate: &CertificateDer<'_>) -> String {
    hex::encode(Sha256::digest(certificate.as_ref()))
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if certificates.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            reason: "no certificate found".into(),
        });
    }
    Ok(certificates)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Pem {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn development_identity(dir: &Path) -> Result<TlsIdentity, TlsError> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if !(cert_path.exists() && key_path.exists()) {
        let generated = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ])
        .map_err(|e| TlsError::Generate(e.to_string()))?;
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
            path: dir.to_owned(),
            source,
        })?;
        write_private(&key_path, generated.signing_key.serialize_pem().as_bytes())?;
        std::fs::write(&cert_path, generated.cert.pem()).map_err(|source| TlsError::Write {
            path: cert_path.clone(),
            source,
        })?;
    }
    Ok(TlsIdentity {
        certificates: read_certificates(&cert_path)?,
        key: read_key(&key_path)?,
        self_signed: true,
    })
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), TlsError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let write_error = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(write_error)?;
    file.write_all(contents).map_err(write_error)
}

/// Hex SHA-256 of the first certificate in a PEM text.
pub fn fingerprint_of_pem(pem: &str) -> Result<String, String> {
    let certificate = CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or_else(|| "no certificate in the PEM text".to_owned())?
        .map_err(|e| e.to_string())?;
    Ok(fingerprint(&certificate))
}
