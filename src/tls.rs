//! TLS for STARTTLS (RFC 3207) and implicit TLS (RFC 8314 §3.3): the
//! rustls server configuration from the PEM files of `tls_cert` and
//! `tls_key`, the self-signed pair `maildoor gen-cert` writes, and the
//! words the `Received:` header uses for a negotiated session.
//!
//! rustls runs on the `ring` provider: pure Rust plus a little C and
//! assembly that cc builds in seconds, no cmake or Go as aws-lc needs.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};

/// Why the TLS configuration could not be built; names the setting.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {why}")]
pub struct TlsError {
    /// The setting at fault: `tls_cert` or `tls_key`.
    pub key: &'static str,
    /// What is wrong with it.
    pub why: String,
}

/// Reads a PEM certificate chain and private key and builds the server
/// configuration (TLS 1.2 and 1.3, rustls' safe defaults).
pub fn load_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError {
            key: "tls_cert",
            why: format!("{}: {e}", cert.display()),
        })?;
    if chain.is_empty() {
        return Err(TlsError {
            key: "tls_cert",
            why: format!("{}: no PEM certificate in it", cert.display()),
        });
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError {
        key: "tls_key",
        why: match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                format!("{}: no PEM private key in it", key.display())
            }
            e => format!("{}: {e}", key.display()),
        },
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, private))
        .map_err(|e| TlsError {
            key: "tls_key",
            why: match e {
                rustls::Error::InconsistentKeys(_) => format!(
                    "{} is not the key of the certificate in {}",
                    key.display(),
                    cert.display()
                ),
                e => format!(
                    "{}: unusable with the certificate in {}: {e}",
                    key.display(),
                    cert.display()
                ),
            },
        })?;
    Ok(Arc::new(config))
}

/// A self-signed certificate for `hostname` and its key, both PEM:
/// `(cert, key)`. For tests and first steps, not for the internet.
/// The name is the subject alternative name clients check, and (up to 64
/// characters) the subject's common name that people read (`openssl x509
/// -subject`).
pub fn self_signed(hostname: &str) -> Result<(String, String), rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(vec![hostname.to_string()])?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    // X.520 caps a common name at 64 characters; the SAN has no such cap.
    if hostname.len() <= 64 {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, hostname);
    }
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The protocol version and cipher suite of an established session, as
/// the `Received:` comment says them: `TLSv1.3 with cipher
/// TLS13_AES_256_GCM_SHA384`.
pub fn describe(conn: &ServerConnection) -> String {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(v) => format!("{v:?}"),
        None => "TLS".to_string(),
    };
    match conn.negotiated_cipher_suite() {
        Some(s) => format!("{version} with cipher {:?}", s.suite()),
        None => version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_pair_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed("mx.test").unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.contains("PRIVATE KEY-----"));
        let (c, k) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&c, &cert).unwrap();
        std::fs::write(&k, &key).unwrap();
        load_config(&c, &k).unwrap();
        // Swapped files: the error names the setting.
        assert_eq!(load_config(&k, &c).unwrap_err().key, "tls_cert");
        let (_, other_key) = self_signed("other.test").unwrap();
        std::fs::write(&k, other_key).unwrap();
        let e = load_config(&c, &k).unwrap_err();
        assert_eq!(e.key, "tls_key");
        let mismatch = format!("is not the key of the certificate in {}", c.display());
        assert!(e.why.ends_with(&mismatch), "{e}");
        std::fs::write(&k, "junk\n").unwrap();
        let e = load_config(&c, &k).unwrap_err();
        assert!(e.why.ends_with("no PEM private key in it"), "{e}");
        assert_eq!(
            load_config(&c, &dir.path().join("missing.pem")).unwrap_err().key,
            "tls_key"
        );
    }
}
