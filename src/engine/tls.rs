//! An engine over `tcp://` with TLS, as `DOCKER_TLS_VERIFY=1` asks: the docker CLI's three
//! files checked before dialling, and a handshake's failure told as which side refused
//! which certificate and what to change.

use std::error::Error as StdError;
use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{AlertDescription, CertificateError};

use super::endpoint::{CertDirOrigin, TlsFiles};
use super::EngineError;

/// Each file is there and holds what it should: `ca.pem` and `cert.pem` certificates,
/// `key.pem` one private key. (The client's files are otherwise read only during the
/// handshake, and one that is missing or broken then just sends no certificate.)
pub(super) fn check_files(endpoint: &str, files: &TlsFiles) -> Result<(), EngineError> {
    let problem = |path: &Path, problem: String| {
        EngineError::TlsFile {
        endpoint: endpoint.to_string(),
        path: path.display().to_string(),
        problem,
        hint: match files.origin {
            CertDirOrigin::Context(_) => format!(
                "{} must hold ca.pem, cert.pem and key.pem: {}",
                files.where_from(),
                files.how_to_change()
            ),
            _ => format!(
                "{} must hold ca.pem, cert.pem and key.pem, as for the docker CLI; or unset DOCKER_TLS_VERIFY for an engine without TLS",
                files.where_from()
            ),
        },
    }
    };
    for (path, key) in [
        (files.ca(), false),
        (files.cert(), false),
        (files.key(), true),
    ] {
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(problem(&path, "is missing".into()))
            }
            Err(e) => return Err(problem(&path, format!("cannot be read: {e}"))),
        };
        if key {
            if PrivateKeyDer::from_pem_slice(&bytes).is_err() {
                return Err(problem(&path, "holds no PEM private key".into()));
            }
        } else if !CertificateDer::pem_slice_iter(&bytes).any(|c| c.is_ok()) {
            return Err(problem(&path, "holds no PEM certificate".into()));
        }
    }
    Ok(())
}

/// The TLS error somewhere in `err`'s chain, told for a person; `None` when the failure
/// was not TLS's.
pub(super) fn explain(
    endpoint: &str,
    address: &str,
    files: &TlsFiles,
    err: &(dyn StdError + 'static),
) -> Option<EngineError> {
    let tls = super::connect::find_in_chain::<rustls::Error>(err)?;
    let endpoint = endpoint.to_string();
    let ca = files.ca().display().to_string();
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    let detail = tls.to_string();
    let engine_cert = |problem: String, hint: String| EngineError::TlsEngineCertRejected {
        endpoint: endpoint.clone(),
        problem,
        detail: detail.clone(),
        hint,
    };
    Some(match tls {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => engine_cert(
                format!("not signed by the CA in {ca}"),
                format!("{ca} must hold the certificate of the CA that signed the engine's: copy the engine's CA there, or {}", files.how_to_change()),
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => engine_cert(
                format!("that is not valid for {host}"),
                format!("connect with a name or address the engine's certificate lists (its subjectAltName), or have it reissued with {host} in it"),
            ),
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => engine_cert(
                "outside its validity period".into(),
                "have the engine's certificate renewed, or check this machine's clock".into(),
            ),
            _ => engine_cert(
                format!("that this client refuses (checked against {ca})"),
                format!("`openssl s_client -connect {address} -CAfile {ca}` shows the engine's certificate"),
            ),
        },
        rustls::Error::AlertReceived(
            AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateRequired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::AccessDenied,
        ) => EngineError::TlsClientCertRejected {
            endpoint,
            cert: files.cert().display().to_string(),
            detail,
            hint: format!(
                "the engine takes only client certificates signed by the CA it trusts (its --tlscacert): {} must hold a cert.pem and key.pem that CA issued",
                files.where_from()
            ),
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            EngineError::Unreachable {
                endpoint,
                detail,
                hint: "the engine does not speak TLS on that port: unset DOCKER_TLS_VERIFY, or use its TLS port (2376 by convention)".into(),
            }
        }
        _ => EngineError::Unreachable {
            endpoint,
            detail,
            hint: format!("the TLS handshake failed: `openssl s_client -connect {address} -CAfile {ca}` shows why"),
        },
    })
}
