//! The attestation CA's issuing (intermediate) key in a PKCS#11 token: an HSM, a YubiHSM
//! or Nitrokey HSM, or SoftHSM2.
//!
//! The token is named by a PKCS#11 URI (RFC 7512), of which this subset is understood:
//!
//! ```text
//! pkcs11:token=posture-ca;object=intermediate?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/posture/ca-pin
//! ```
//!
//! - path attributes `token` (the token label, required), `serial` (the token serial),
//!   `object` (the key's label) and/or `id` (its `CKA_ID`, percent-encoded bytes), and
//!   `type=private`;
//! - query attributes `module-path` (required: the PKCS#11 module to load) and
//!   `pin-source`: `file:/path` (a regular file of mode 0600 or stricter, owned by this
//!   process's user, holding the user PIN; a trailing newline is ignored) or `env:NAME` (an environment variable; posture's own
//!   form, RFC 7512 only defines URIs).
//!
//! `pin-value` is refused: a PIN must not be on a command line, in a configuration file
//! or in a log. The PIN is zeroized once the session is logged in.
//!
//! The key is an EC P-256 key pair: a private key (`CKA_SIGN`) and its public key
//! (`CKA_EC_POINT`) with the same label/id. Signatures are `CKM_ECDSA` over a SHA-256
//! digest computed here (every token with P-256 has `CKM_ECDSA`; not all have
//! `CKM_ECDSA_SHA256`), and each is checked against the public key before it is used.
//!
//! The module is loaded with `dlopen` when the key is opened; this file is compiled only
//! with posture-core's `pkcs11` feature.

use std::path::PathBuf;
use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use der::asn1::OctetString;
use der::Decode as _;
use p256::ecdsa::{DerSignature, Signature, VerifyingKey};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use super::AttestationError;

/// The DER of the P-256 curve's OID (prime256v1): `CKA_EC_PARAMS` of P-256 keys.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

fn err(message: impl std::fmt::Display) -> AttestationError {
    AttestationError::Rejected(format!("attestation CA key (PKCS#11): {message}"))
}

/// Where the user PIN comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PinSource {
    /// A file (mode 0600 or stricter) holding the PIN.
    File(PathBuf),
    /// An environment variable holding the PIN.
    Env(String),
}

/// A parsed PKCS#11 URI (the subset described in the module documentation). Holds no
/// secret: the PIN is read from its source only when the key is opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// The PKCS#11 module (shared library) to load.
    pub module_path: PathBuf,
    /// The token label.
    pub token: String,
    /// The token serial number, when given.
    pub serial: Option<String>,
    /// The key's `CKA_LABEL`.
    pub object: Option<String>,
    /// The key's `CKA_ID`.
    pub id: Option<Vec<u8>>,
    /// Where the user PIN comes from.
    pub pin_source: PinSource,
}

/// Percent-decoding of one attribute value (RFC 7512 §2.3, RFC 3986 §2.1).
fn percent_decode(value: &str) -> Result<Vec<u8>, AttestationError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| err(format!("bad percent-encoding in {value:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn percent_decode_text(value: &str) -> Result<String, AttestationError> {
    String::from_utf8(percent_decode(value)?)
        .map_err(|_| err(format!("{value:?} is not UTF-8 once decoded")))
}

impl std::str::FromStr for Pkcs11Uri {
    type Err = AttestationError;

    fn from_str(uri: &str) -> Result<Self, Self::Err> {
        let rest = uri
            .strip_prefix("pkcs11:")
            .ok_or_else(|| err("the URI must start with pkcs11:"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (mut token, mut serial, mut object, mut id) = (None, None, None, None);
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (name, value) = attr
                .split_once('=')
                .ok_or_else(|| err(format!("path attribute {attr:?} has no value")))?;
            match name {
                "token" => token = Some(percent_decode_text(value)?),
                "serial" => serial = Some(percent_decode_text(value)?),
                "object" => object = Some(percent_decode_text(value)?),
                "id" => id = Some(percent_decode(value)?),
                "type" if value == "private" => {}
                "type" => return Err(err("type must be private (the signing key)")),
                other => {
                    return Err(err(format!(
                    "path attribute {other:?} is not supported (token, serial, object, id, type)"
                )))
                }
            }
        }
        let (mut module_path, mut pin_source) = (None, None);
        for attr in query.split('&').filter(|a| !a.is_empty()) {
            let (name, value) = attr
                .split_once('=')
                .ok_or_else(|| err(format!("query attribute {attr:?} has no value")))?;
            match name {
                "module-path" => module_path = Some(PathBuf::from(percent_decode_text(value)?)),
                "pin-source" => {
                    let source = percent_decode_text(value)?;
                    pin_source = Some(if let Some(path) = source.strip_prefix("file:") {
                        // file:/path and file:///path
                        let path = path.strip_prefix("//").unwrap_or(path);
                        PinSource::File(PathBuf::from(path))
                    } else if let Some(var) = source.strip_prefix("env:") {
                        PinSource::Env(var.to_owned())
                    } else {
                        return Err(err("pin-source must be file:/path or env:NAME"));
                    });
                }
                // Never echo the value.
                "pin-value" => {
                    return Err(err(
                        "pin-value is refused (a PIN must not be in a URI): use pin-source=file:/path or env:NAME",
                    ))
                }
                other => {
                    return Err(err(format!(
                        "query attribute {other:?} is not supported (module-path, pin-source)"
                    )))
                }
            }
        }
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| err("the URI must name the token (token=LABEL)"))?;
        if object.is_none() && id.is_none() {
            return Err(err("the URI must name the key (object=LABEL and/or id=ID)"));
        }
        Ok(Pkcs11Uri {
            module_path: module_path.ok_or_else(|| {
                err("the URI must name the module (?module-path=/path/to/module.so)")
            })?,
            token,
            serial,
            object,
            id,
            pin_source: pin_source.ok_or_else(|| {
                err("the URI must say where the PIN is (pin-source=file:/path or env:NAME)")
            })?,
        })
    }
}

impl Pkcs11Uri {
    /// The key's name for messages: label and/or id, token. Never the PIN.
    fn key_name(&self) -> String {
        let mut name = String::new();
        if let Some(label) = &self.object {
            name.push_str(&format!("object {label:?}"));
        }
        if let Some(id) = &self.id {
            if !name.is_empty() {
                name.push(' ');
            }
            name.push_str(&format!("id {}", crate::hex::encode(id)));
        }
        format!("{name} in token {:?}", self.token)
    }

    /// Reads the PIN from its source.
    fn read_pin(&self) -> Result<AuthPin, AttestationError> {
        let pin: Zeroizing<String> = match &self.pin_source {
            PinSource::File(path) => {
                if let Some(problem) =
                    crate::files::private_problem(path, crate::files::PrivateKind::File)
                        .map_err(|e| err(format!("PIN file {}: {e}", path.display())))?
                {
                    return Err(err(format!("PIN file {}: {problem}", path.display())));
                }
                Zeroizing::new(
                    std::fs::read_to_string(path)
                        .map_err(|e| err(format!("PIN file {}: {e}", path.display())))?,
                )
            }
            PinSource::Env(var) => Zeroizing::new(std::env::var(var).map_err(|_| {
                err(format!(
                    "the PIN environment variable {var} is not set (or not UTF-8)"
                ))
            })?),
        };
        let trimmed = pin.trim_end_matches(['\n', '\r']);
        if trimmed.is_empty() {
            return Err(err("the PIN is empty"));
        }
        // AuthPin (secrecy) zeroizes its copy when dropped.
        Ok(AuthPin::from(trimmed))
    }
}

/// A P-256 key pair in a PKCS#11 token, logged in, ready to sign.
pub struct Pkcs11Key {
    /// One session; PKCS#11 sessions are not to be used by two threads at once.
    session: Mutex<Session>,
    private: ObjectHandle,
    public: VerifyingKey,
    name: String,
    generated: bool,
}

impl std::fmt::Debug for Pkcs11Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Key")
            .field("key", &self.name)
            .finish_non_exhaustive()
    }
}

/// What went wrong in a PKCS#11 call, with the return value's name for the usual ones.
fn ck(doing: &str) -> impl FnOnce(CkError) -> AttestationError + '_ {
    move |e| match e {
        CkError::Pkcs11(RvError::PinIncorrect, _) => {
            err(format!("{doing}: the PIN is incorrect (CKR_PIN_INCORRECT)"))
        }
        CkError::Pkcs11(RvError::PinLocked, _) => {
            err(format!("{doing}: the PIN is locked (CKR_PIN_LOCKED)"))
        }
        CkError::Pkcs11(rv, function) => err(format!("{doing}: {function} failed: {rv:?}")),
        other => err(format!("{doing}: {other}")),
    }
}

impl Pkcs11Key {
    /// Opens the key the URI names, logging in with its PIN. Errors name the token and
    /// key, never the PIN.
    pub fn open(uri: &Pkcs11Uri) -> Result<Pkcs11Key, AttestationError> {
        Self::open_or_generate(uri, false)
    }

    /// Opens the key the URI names, or generates it in the token (non-extractable,
    /// sensitive) when the token has no such key. Generating needs `object=LABEL`.
    pub fn open_or_generate(
        uri: &Pkcs11Uri,
        generate: bool,
    ) -> Result<Pkcs11Key, AttestationError> {
        let name = uri.key_name();
        let pin = uri.read_pin()?;
        let module = &uri.module_path;
        let pkcs11 = Pkcs11::new(module)
            .map_err(|e| err(format!("cannot load the module {}: {e}", module.display())))?;
        match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(ck("C_Initialize")(e)),
        }
        let mut slot = None;
        for s in pkcs11
            .get_slots_with_initialized_token()
            .map_err(ck("listing the tokens"))?
        {
            let info = pkcs11.get_token_info(s).map_err(ck("reading a token"))?;
            let serial_ok = uri
                .serial
                .as_deref()
                .is_none_or(|want| info.serial_number().trim() == want);
            if info.label().trim_end() == uri.token && serial_ok {
                slot = Some(s);
                break;
            }
        }
        let slot = slot.ok_or_else(|| {
            err(format!(
                "no token labelled {:?} in {}",
                uri.token,
                module.display()
            ))
        })?;
        let session = if generate {
            pkcs11.open_rw_session(slot)
        } else {
            pkcs11.open_ro_session(slot)
        }
        .map_err(ck("opening a session"))?;
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(ck(&format!("logging in to token {:?}", uri.token))(e)),
        }
        drop(pin);

        let mut template = vec![Attribute::KeyType(KeyType::EC)];
        if let Some(label) = &uri.object {
            template.push(Attribute::Label(label.as_bytes().to_vec()));
        }
        if let Some(id) = &uri.id {
            template.push(Attribute::Id(id.clone()));
        }
        let find = |class: ObjectClass| -> Result<Option<ObjectHandle>, AttestationError> {
            let mut t = template.clone();
            t.push(Attribute::Class(class));
            let found = session
                .find_objects(&t)
                .map_err(ck("looking for the key"))?;
            match found.as_slice() {
                [] => Ok(None),
                [one] => Ok(Some(*one)),
                _ => Err(err(format!(
                    "{} matches several keys: name one by object and id",
                    name
                ))),
            }
        };
        let mut generated = false;
        let (private, public) = match (find(ObjectClass::PRIVATE_KEY)?, generate) {
            (Some(private), _) => {
                let public = find(ObjectClass::PUBLIC_KEY)?.ok_or_else(|| {
                    err(format!(
                        "{name}: the private key has no public key object beside it"
                    ))
                })?;
                (private, public)
            }
            (None, false) => return Err(err(format!("no EC private key {name}"))),
            (None, true) => {
                let label = uri
                    .object
                    .as_ref()
                    .ok_or_else(|| err("generating a key needs its label (object=LABEL)"))?;
                let mut common = vec![
                    Attribute::Token(true),
                    Attribute::Label(label.as_bytes().to_vec()),
                ];
                if let Some(id) = &uri.id {
                    common.push(Attribute::Id(id.clone()));
                }
                let mut public_t = common.clone();
                public_t.extend([
                    Attribute::EcParams(P256_PARAMS.to_vec()),
                    Attribute::Verify(true),
                ]);
                let mut private_t = common;
                private_t.extend([
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Sign(true),
                ]);
                let (public, private) = session
                    .generate_key_pair(&Mechanism::EccKeyPairGen, &public_t, &private_t)
                    .map_err(ck(&format!("generating {name}")))?;
                generated = true;
                (private, public)
            }
        };
        let public = read_public(&session, public, &name)?;
        Ok(Pkcs11Key {
            session: Mutex::new(session),
            private,
            public,
            name,
            generated,
        })
    }

    /// Whether [`Self::open_or_generate`] generated the key (rather than found it).
    pub fn generated(&self) -> bool {
        self.generated
    }

    /// The key's name for messages (label and/or id, token).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key's public half.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.public
    }

    /// Signs `message` (ECDSA P-256 over its SHA-256), checked against the public key.
    pub fn sign(&self, message: &[u8]) -> Result<DerSignature, AttestationError> {
        let digest = Sha256::digest(message);
        let raw = {
            let session = self
                .session
                .lock()
                .map_err(|_| err("the token session lock is poisoned"))?;
            session
                .sign(&Mechanism::Ecdsa, self.private, &digest)
                .map_err(ck(&format!("signing with {}", self.name)))?
        };
        let signature = Signature::from_slice(&raw).map_err(|e| {
            err(format!(
                "{}: the token's signature is malformed: {e}",
                self.name
            ))
        })?;
        use p256::ecdsa::signature::Verifier as _;
        self.public.verify(message, &signature).map_err(|_| {
            err(format!(
                "{}: the token's signature does not verify",
                self.name
            ))
        })?;
        Ok(signature.to_der())
    }
}

/// The P-256 public key of a public key object (`CKA_EC_POINT`: an OCTET STRING holding
/// the SEC1 point, or the bare point from some tokens).
fn read_public(
    session: &Session,
    public: ObjectHandle,
    name: &str,
) -> Result<VerifyingKey, AttestationError> {
    let attrs = session
        .get_attributes(public, &[AttributeType::EcParams, AttributeType::EcPoint])
        .map_err(ck(&format!("reading the public key of {name}")))?;
    let (mut params, mut point) = (None, None);
    for attr in attrs {
        match attr {
            Attribute::EcParams(p) => params = Some(p),
            Attribute::EcPoint(p) => point = Some(p),
            _ => {}
        }
    }
    if params.as_deref() != Some(P256_PARAMS) {
        return Err(err(format!("{name} is not a P-256 key")));
    }
    let point = point.ok_or_else(|| err(format!("{name}: no CKA_EC_POINT")))?;
    let sec1 = match OctetString::from_der(&point) {
        Ok(octets) => octets.as_bytes().to_vec(),
        Err(_) => point,
    };
    VerifyingKey::from_sec1_bytes(&sec1).map_err(|e| err(format!("{name}: bad public key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(uri: &str) -> Result<Pkcs11Uri, AttestationError> {
        uri.parse()
    }

    #[test]
    fn parses_the_subset_of_rfc_7512() {
        let uri = parse(
            "pkcs11:token=posture%20ca;object=intermediate;id=%01%02;type=private\
             ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/posture/pin",
        )
        .unwrap();
        assert_eq!(uri.token, "posture ca");
        assert_eq!(uri.object.as_deref(), Some("intermediate"));
        assert_eq!(uri.id, Some(vec![1, 2]));
        assert_eq!(
            uri.module_path,
            PathBuf::from("/usr/lib/softhsm/libsofthsm2.so")
        );
        assert_eq!(uri.pin_source, PinSource::File("/etc/posture/pin".into()));
        let env = parse("pkcs11:token=t;id=%aa?module-path=/m.so&pin-source=env:CA_PIN").unwrap();
        assert_eq!(env.pin_source, PinSource::Env("CA_PIN".into()));
        assert_eq!(env.object, None);
    }

    #[test]
    fn refuses_a_pin_in_the_uri_and_incomplete_or_unknown_uris() {
        let e = parse("pkcs11:token=t;object=k?module-path=/m.so&pin-value=123456").unwrap_err();
        assert!(e.to_string().contains("pin-value is refused"), "{e}");
        assert!(!e.to_string().contains("123456"), "{e}");
        for (uri, says) in [
            ("file:/x", "must start with pkcs11:"),
            (
                "pkcs11:object=k?module-path=/m.so&pin-source=env:P",
                "name the token",
            ),
            (
                "pkcs11:token=t?module-path=/m.so&pin-source=env:P",
                "name the key",
            ),
            (
                "pkcs11:token=t;object=k?pin-source=env:P",
                "name the module",
            ),
            (
                "pkcs11:token=t;object=k?module-path=/m.so",
                "where the PIN is",
            ),
            (
                "pkcs11:token=t;object=k;slot-id=1?module-path=/m.so&pin-source=env:P",
                "not supported",
            ),
            (
                "pkcs11:token=t;object=k%zz?module-path=/m.so&pin-source=env:P",
                "percent-encoding",
            ),
            (
                "pkcs11:token=t;object=k;type=cert?module-path=/m.so&pin-source=env:P",
                "type must be private",
            ),
            (
                "pkcs11:token=t;object=k?module-path=/m.so&pin-source=https://x",
                "pin-source must be",
            ),
        ] {
            let e = parse(uri).unwrap_err().to_string();
            assert!(e.contains(says), "{uri}: {e}");
        }
    }
}
