//! The server key that seals secrets at rest. It lives outside the database (the environment or
//! a key file in the data directory), so a database dump alone reveals no secret. Sealed texts
//! name their key, so a rotation can keep opening old rows until they are re-sealed.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{
    STANDARD_PAD_INDIFFERENT, URL_SAFE_NO_PAD, URL_SAFE_PAD_INDIFFERENT,
};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::auth::tokens::random_bytes;

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "secret.key";
/// Keys replaced by a rotation, kept until every secret is re-sealed (one per line).
pub const PREVIOUS_KEY_FILE: &str = "secret.key.previous";

const ENV_KEY: &str = "MERIDIAN_SECRET_KEY";
const ENV_PREVIOUS: &str = "MERIDIAN_SECRET_KEY_PREVIOUS";
const KEY_FORMS: &str = "64 hex characters, or 43-44 base64 characters encoding 32 bytes";
const SEALED_VERSION: &str = "v1";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// A 256-bit key and its id (first 8 bytes of SHA-256 of the key, hex: 16 chars) so a ciphertext
/// names the key that sealed it.
#[derive(Clone)]
pub struct SecretKey {
    bytes: [u8; 32],
    id: String,
}

impl SecretKey {
    pub fn generate() -> SecretKey {
        Self::from_bytes(random_bytes::<32>())
    }

    fn from_bytes(bytes: [u8; 32]) -> SecretKey {
        let digest = Sha256::digest(bytes);
        let id = hex::encode(&digest[..8]);
        SecretKey { bytes, id }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Accepts the forms operators produce with common tools (`openssl rand -hex 32`,
    /// `openssl rand -base64 32`, our own key files). The error never echoes the text: it is a key.
    pub fn parse(text: &str) -> Result<SecretKey, KeyError> {
        let text = text.trim();
        let decoded = match text.len() {
            64 => hex::decode(text).ok(),
            43 | 44 => URL_SAFE_PAD_INDIFFERENT
                .decode(text)
                .or_else(|_| STANDARD_PAD_INDIFFERENT.decode(text))
                .ok(),
            _ => None,
        };
        decoded
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .map(Self::from_bytes)
            .ok_or(KeyError::InvalidKey { length: text.len() })
    }

    /// Base64url without padding: safe in files, environment variables and shell quoting.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.bytes)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The key that seals new secrets plus earlier keys that may still open old ones (during a
/// rotation). Debug shows key ids only.
#[derive(Debug, Clone)]
pub struct KeyRing {
    current: SecretKey,
    previous: Vec<SecretKey>,
}

impl KeyRing {
    /// Drops previous keys that repeat the current one or each other, so a key listed in both
    /// the environment and the previous-keys file is harmless.
    pub fn new(current: SecretKey, previous: Vec<SecretKey>) -> KeyRing {
        let mut kept: Vec<SecretKey> = Vec::with_capacity(previous.len());
        for key in previous {
            if key.id != current.id && !kept.iter().any(|k| k.id == key.id) {
                kept.push(key);
            }
        }
        KeyRing {
            current,
            previous: kept,
        }
    }

    pub fn current(&self) -> &SecretKey {
        &self.current
    }

    pub fn previous(&self) -> &[SecretKey] {
        &self.previous
    }

    /// Encrypts with a random 24-byte nonce; `context` is bound as associated data (callers pass
    /// e.g. "org_id/secret_id/purpose", so a ciphertext copied to another row or org fails to
    /// open). Output: "v1.<key_id>.<base64url-nopad(nonce || ciphertext+tag)>".
    ///
    /// Fails only for a plaintext beyond the cipher's limit (about 256 GiB); a Result rather
    /// than a panic because the AEAD API reports it.
    pub fn seal(&self, plaintext: &str, context: &str) -> Result<String, KeyError> {
        let nonce = random_bytes::<NONCE_LEN>();
        let cipher = XChaCha20Poly1305::new(&Key::from(self.current.bytes));
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: context.as_bytes(),
        };
        let ciphertext = cipher
            .encrypt(&XNonce::from(nonce), payload)
            .map_err(|_| KeyError::TooLong)?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(format!(
            "{SEALED_VERSION}.{}.{}",
            self.current.id,
            URL_SAFE_NO_PAD.encode(sealed)
        ))
    }

    /// Opens with whichever ring key the text names, so secrets sealed before a rotation stay
    /// readable while the old key is listed as previous.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, KeyError> {
        let (key_id, payload) = split_sealed(sealed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| KeyError::Malformed("the payload is not base64url"))?;
        let Some((nonce, ciphertext)) = payload.split_first_chunk::<NONCE_LEN>() else {
            return Err(KeyError::Malformed("the payload is too short"));
        };
        if ciphertext.len() < TAG_LEN {
            return Err(KeyError::Malformed("the payload is too short"));
        }
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.id == key_id)
            .ok_or_else(|| KeyError::UnknownKey {
                key_id: key_id.to_owned(),
            })?;
        let cipher = XChaCha20Poly1305::new(&Key::from(key.bytes));
        let payload = Payload {
            msg: ciphertext,
            aad: context.as_bytes(),
        };
        let plaintext = cipher
            .decrypt(&XNonce::from(*nonce), payload)
            .map_err(|_| KeyError::Undecryptable)?;
        String::from_utf8(plaintext).map_err(|_| KeyError::Malformed("the plaintext is not UTF-8"))
    }

    /// The key id a sealed text names (None if malformed), so a rotation can find rows still
    /// under old keys without decrypting them.
    pub fn key_id_of(sealed: &str) -> Option<&str> {
        split_sealed(sealed).ok().map(|(key_id, _)| key_id)
    }
}

/// Splits "v1.<key_id>.<payload>" without decoding the payload.
fn split_sealed(sealed: &str) -> Result<(&str, &str), KeyError> {
    let mut parts = sealed.splitn(3, '.');
    let (Some(version), Some(key_id), Some(payload)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(KeyError::Malformed("expected v1.<key id>.<payload>"));
    };
    if version != SEALED_VERSION {
        return Err(KeyError::Malformed("unknown format version"));
    }
    let is_id = key_id.len() == 16
        && key_id
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !is_id {
        return Err(KeyError::Malformed("the key id is not 16 hex characters"));
    }
    Ok((key_id, payload))
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not a valid secret key: expected {KEY_FORMS} (got {length} characters)")]
    InvalidKey { length: usize },
    #[error(
        "{origin} does not hold a valid secret key: expected {KEY_FORMS} (got {length} characters)"
    )]
    InvalidConfiguredKey { origin: String, length: usize },
    #[error("could not {action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("sealed secret is malformed: {0}")]
    Malformed(&'static str),
    #[error(
        "secret was sealed with key {key_id}, which is not loaded: {ENV_KEY} or the key file \
         ({KEY_FILE}) must hold that key, or {ENV_PREVIOUS} (or {PREVIOUS_KEY_FILE}) must list it"
    )]
    UnknownKey { key_id: String },
    #[error(
        "secret could not be decrypted: it was sealed for another record, organization or \
         purpose, or it has been altered"
    )]
    Undecryptable,
    #[error("secret is too long to encrypt")]
    TooLong,
}

/// Where the current key comes from, for `config check` and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Environment,
    File(PathBuf),
    /// Created on this start: worth a log line, since losing that file loses every secret.
    Generated(PathBuf),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Environment => f.write_str(ENV_KEY),
            KeySource::File(path) => write!(f, "key file {}", path.display()),
            KeySource::Generated(path) => write!(f, "key file {} (generated)", path.display()),
        }
    }
}

/// Loads the ring: current key from `env_key` (MERIDIAN_SECRET_KEY, if set and non-empty) else
/// from `data_dir/secret.key`, generating that file on first run so a fresh install needs no
/// setup. Previous keys from `previous_env` (MERIDIAN_SECRET_KEY_PREVIOUS, comma-separated) plus
/// `data_dir/secret.key.previous` when present. A key file that exists but cannot be read or
/// parsed is an error, never regenerated: that would strand every secret sealed under it.
pub fn load_ring(
    env_key: Option<&str>,
    previous_env: Option<&str>,
    data_dir: &Path,
) -> Result<(KeyRing, KeySource), KeyError> {
    let mut previous = Vec::new();
    for (index, entry) in previous_env.unwrap_or_default().split(',').enumerate() {
        if !entry.trim().is_empty() {
            let origin = || format!("{ENV_PREVIOUS} (entry {})", index + 1);
            previous.push(parse_configured(entry, origin)?);
        }
    }
    let previous_path = data_dir.join(PREVIOUS_KEY_FILE);
    if let Some(text) = read_optional(&previous_path)? {
        previous.extend(parse_previous_file(&previous_path, &text)?);
    }
    // Last, so a configuration error above does not leave a freshly generated key file behind.
    let (current, source) = match env_key.map(str::trim).filter(|text| !text.is_empty()) {
        Some(text) => (
            parse_configured(text, || ENV_KEY.to_owned())?,
            KeySource::Environment,
        ),
        None => current_from_file(data_dir)?,
    };
    Ok((KeyRing::new(current, previous), source))
}

/// Rotation with a key file: the current key joins secret.key.previous (so existing secrets
/// still open), then a fresh key replaces secret.key. In that order, a crash in between leaves
/// the old key in both files, which is harmless. Returns the new ring.
pub fn rotate_key_file(data_dir: &Path) -> Result<KeyRing, KeyError> {
    let path = data_dir.join(KEY_FILE);
    let old = read_optional(&path)?
        .ok_or_else(|| missing(&path))
        .and_then(|text| parse_key_file(&path, &text))?;
    let previous_path = data_dir.join(PREVIOUS_KEY_FILE);
    let previous_text = read_optional(&previous_path)?.unwrap_or_default();
    let earlier = parse_previous_file(&previous_path, &previous_text)?;
    if !earlier.iter().any(|key| key.id == old.id) {
        // Rewritten whole through a temporary file rather than appended, so a crash cannot
        // leave a torn line that would stop the server from loading its keys.
        let mut text = previous_text;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&key_file_text(&old));
        write_key_file(&previous_path, &text, true)?;
    }
    let new = SecretKey::generate();
    write_key_file(&path, &key_file_text(&new), true)?;
    let mut previous = vec![old];
    previous.extend(earlier);
    Ok(KeyRing::new(new, previous))
}

/// After every secret is re-sealed under the current key, the previous-keys file can go: removes
/// data_dir/secret.key.previous if present; returns whether it existed.
pub fn forget_previous_key_file(data_dir: &Path) -> Result<bool, KeyError> {
    let path = data_dir.join(PREVIOUS_KEY_FILE);
    match fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(io_error("remove", &path, error)),
    }
}

fn current_from_file(data_dir: &Path) -> Result<(SecretKey, KeySource), KeyError> {
    let path = data_dir.join(KEY_FILE);
    if let Some(text) = read_optional(&path)? {
        return Ok((parse_key_file(&path, &text)?, KeySource::File(path)));
    }
    fs::create_dir_all(data_dir).map_err(|error| io_error("create", data_dir, error))?;
    let key = SecretKey::generate();
    if write_key_file(&path, &key_file_text(&key), false)? {
        return Ok((key, KeySource::Generated(path)));
    }
    // Another process started at the same moment and wrote its key first: use that one.
    let text = read_optional(&path)?.ok_or_else(|| missing(&path))?;
    Ok((parse_key_file(&path, &text)?, KeySource::File(path)))
}

fn parse_configured(text: &str, origin: impl FnOnce() -> String) -> Result<SecretKey, KeyError> {
    SecretKey::parse(text).map_err(|_| KeyError::InvalidConfiguredKey {
        origin: origin(),
        length: text.trim().len(),
    })
}

fn parse_key_file(path: &Path, text: &str) -> Result<SecretKey, KeyError> {
    parse_configured(text, || format!("key file {}", path.display()))
}

fn parse_previous_file(path: &Path, text: &str) -> Result<Vec<SecretKey>, KeyError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            parse_configured(line, || format!("{} (line {})", path.display(), index + 1))
        })
        .collect()
}

fn key_file_text(key: &SecretKey) -> String {
    format!("{}\n", key.encode())
}

fn read_optional(path: &Path) -> Result<Option<String>, KeyError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io_error("read", path, error)),
    }
}

fn missing(path: &Path) -> KeyError {
    let source = io::Error::new(io::ErrorKind::NotFound, "the file does not exist");
    io_error("read", path, source)
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> KeyError {
    KeyError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Writes through a temporary file in the same directory (mode 0o600 on unix), so a reader never
/// sees a half-written key. With `replace` false an existing file is kept and false returned:
/// the temporary file is hard-linked into place, which fails rather than overwrites.
fn write_key_file(path: &Path, contents: &str, replace: bool) -> Result<bool, KeyError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = dir.join(format!(".{name}.{}.tmp", hex::encode(random_bytes::<8>())));
    if let Err(error) = write_new_private(&temp, contents) {
        let _ = fs::remove_file(&temp);
        return Err(io_error("write", &temp, error));
    }
    let installed = if replace {
        fs::rename(&temp, path).map(|()| true)
    } else {
        link_if_absent(&temp, path)
    };
    // Gone already after a rename; after a link (or a failure) it is a stray copy.
    let _ = fs::remove_file(&temp);
    let installed = installed.map_err(|error| io_error("write", path, error))?;
    sync_dir(dir);
    Ok(installed)
}

fn write_new_private(path: &Path, contents: &str) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

fn link_if_absent(temp: &Path, path: &Path) -> io::Result<bool> {
    match fs::hard_link(temp, path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        // Filesystems without hard links: check, then rename (racy only between two first runs).
        Err(_) if path.try_exists()? => Ok(false),
        Err(_) => fs::rename(temp, path).map(|()| true),
    }
}

/// Makes the rename durable. Best effort: some filesystems refuse to sync a directory.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(handle) = fs::File::open(dir) {
        let _ = handle.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};

    const CONTEXT: &str = "org_1/secret_1/smtp_password";

    /// A fresh directory under the system temp dir, removed on drop (even when a test fails).
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            let name = format!("meridian-keys-test-{}", hex::encode(random_bytes::<8>()));
            TempDir(std::env::temp_dir().join(name))
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn ring() -> KeyRing {
        KeyRing::new(SecretKey::generate(), Vec::new())
    }

    #[test]
    fn seal_then_open_round_trips() {
        let ring = ring();
        let sealed = ring.seal("hunter2 ✓", CONTEXT).expect("seal");
        assert!(sealed.starts_with(&format!("v1.{}.", ring.current().id())));
        assert!(!sealed.contains("hunter2"));
        assert_eq!(ring.open(&sealed, CONTEXT).expect("open"), "hunter2 ✓");
        assert_eq!(KeyRing::key_id_of(&sealed), Some(ring.current().id()));
        assert_eq!(
            ring.seal("", CONTEXT)
                .and_then(|s| ring.open(&s, CONTEXT))
                .expect("empty"),
            ""
        );
    }

    #[test]
    fn another_context_does_not_open() {
        let ring = ring();
        let sealed = ring.seal("hunter2", CONTEXT).expect("seal");
        let error = ring
            .open(&sealed, "org_2/secret_1/smtp_password")
            .expect_err("another org");
        assert!(matches!(error, KeyError::Undecryptable));
        assert!(error.to_string().contains("could not be decrypted"));
    }

    #[test]
    fn tampering_is_detected() {
        let ring = ring();
        let sealed = ring.seal("hunter2", CONTEXT).expect("seal");
        let (head, payload) = sealed.rsplit_once('.').expect("payload");
        let mut bytes = URL_SAFE_NO_PAD.decode(payload).expect("base64");
        let last = bytes.len() - 1;
        bytes[NONCE_LEN] ^= 1;
        let flipped = format!("{head}.{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert!(matches!(
            ring.open(&flipped, CONTEXT),
            Err(KeyError::Undecryptable)
        ));
        bytes[NONCE_LEN] ^= 1;
        bytes[last] ^= 0x80;
        let flipped = format!("{head}.{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert!(matches!(
            ring.open(&flipped, CONTEXT),
            Err(KeyError::Undecryptable)
        ));
        bytes.truncate(NONCE_LEN + TAG_LEN - 1);
        let short = format!("{head}.{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert!(matches!(
            ring.open(&short, CONTEXT),
            Err(KeyError::Malformed(_))
        ));
        for bad in [
            "",
            "v1",
            "v2.0123456789abcdef.AAAA",
            "v1.XYZ.AAAA",
            "v1.0123456789abcdef.!!",
        ] {
            assert!(
                matches!(ring.open(bad, CONTEXT), Err(KeyError::Malformed(_))),
                "{bad}"
            );
        }
        assert_eq!(KeyRing::key_id_of("v1.0123456789ABCDEF.AAAA"), None);
    }

    #[test]
    fn same_plaintext_seals_differently() {
        let ring = ring();
        let a = ring.seal("hunter2", CONTEXT).expect("seal");
        let b = ring.seal("hunter2", CONTEXT).expect("seal");
        assert_ne!(a, b);
    }

    #[test]
    fn previous_keys_open_old_secrets_and_current_seals_new() {
        let old = SecretKey::generate();
        let old_ring = KeyRing::new(old.clone(), Vec::new());
        let sealed = old_ring.seal("hunter2", CONTEXT).expect("seal");

        let new = SecretKey::generate();
        let ring = KeyRing::new(new.clone(), vec![old.clone(), new.clone(), old.clone()]);
        assert_eq!(ring.previous().len(), 1, "duplicates are dropped");
        assert_eq!(ring.open(&sealed, CONTEXT).expect("open"), "hunter2");
        let resealed = ring.seal("hunter2", CONTEXT).expect("seal");
        assert_eq!(KeyRing::key_id_of(&resealed), Some(new.id()));

        let error = old_ring
            .open(&resealed, CONTEXT)
            .expect_err("new key unknown");
        let message = error.to_string();
        assert!(matches!(error, KeyError::UnknownKey { ref key_id } if key_id == new.id()));
        assert!(message.contains(new.id()), "{message}");
        assert!(
            message.contains("MERIDIAN_SECRET_KEY_PREVIOUS"),
            "{message}"
        );
    }

    #[test]
    fn parse_accepts_hex_and_base64_forms() {
        // 0xfb bytes encode to both '+' and '/' (or '-' and '_'), telling the alphabets apart.
        let key = SecretKey::from_bytes([0xfb; 32]);
        let forms = [
            hex::encode(key.bytes),
            hex::encode_upper(key.bytes),
            STANDARD.encode(key.bytes),
            STANDARD_NO_PAD.encode(key.bytes),
            URL_SAFE.encode(key.bytes),
            URL_SAFE_NO_PAD.encode(key.bytes),
            format!("  {}\n", key.encode()),
        ];
        for form in forms {
            let parsed = SecretKey::parse(&form).expect(&form);
            assert_eq!(parsed.id(), key.id(), "{form}");
        }
        assert_eq!(key.id().len(), 16);
        assert_eq!(key.encode().len(), 43);
    }

    #[test]
    fn parse_rejects_wrong_lengths() {
        let bad = [
            String::new(),
            hex::encode([7u8; 31]),
            hex::encode([7u8; 33]),
            URL_SAFE_NO_PAD.encode([7u8; 31]),
            URL_SAFE_NO_PAD.encode([7u8; 33]),
            STANDARD.encode([7u8; 33]),
            "z".repeat(64),
            "+-".repeat(22),
        ];
        for text in bad {
            let error = SecretKey::parse(&text).expect_err(&text);
            assert!(error.to_string().contains("64 hex characters"), "{error}");
        }
    }

    #[test]
    fn debug_shows_ids_only() {
        let key = SecretKey::generate();
        let ring = KeyRing::new(key.clone(), vec![SecretKey::generate()]);
        for debug in [format!("{key:?}"), format!("{ring:?}")] {
            assert!(debug.contains(key.id()), "{debug}");
            assert!(!debug.contains(&key.encode()), "{debug}");
            assert!(!debug.contains(&hex::encode(key.bytes)), "{debug}");
        }
    }

    #[test]
    fn load_ring_generates_the_key_file_once() {
        let dir = TempDir::new();
        let data_dir = dir.0.join("data");
        load_ring(None, Some("not a key"), &data_dir).expect_err("bad previous key");
        assert!(
            !data_dir.exists(),
            "no key file is generated for a bad configuration"
        );
        let (first, source) = load_ring(None, None, &data_dir).expect("generate");
        let path = data_dir.join(KEY_FILE);
        assert_eq!(source, KeySource::Generated(path.clone()));
        let (again, source) = load_ring(Some("  "), Some(""), &data_dir).expect("reload");
        assert_eq!(source, KeySource::File(path.clone()));
        assert_eq!(again.current().id(), first.current().id());
        assert!(again.previous().is_empty());
        let leftovers = fs::read_dir(&data_dir).expect("list").count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        fs::write(&path, "not a key\n").expect("corrupt");
        let error = load_ring(None, None, &data_dir).expect_err("malformed file");
        assert!(
            error.to_string().contains(&path.display().to_string()),
            "{error}"
        );
        assert_eq!(fs::read_to_string(&path).expect("kept"), "not a key\n");
    }

    #[test]
    fn env_key_wins_over_the_file() {
        let dir = TempDir::new();
        let (from_file, _) = load_ring(None, None, &dir.0).expect("generate");
        let env = SecretKey::generate();
        let earlier = SecretKey::generate();
        let previous_env = format!(" , {} ,,", hex::encode(earlier.bytes));
        let (ring, source) =
            load_ring(Some(&env.encode()), Some(&previous_env), &dir.0).expect("env");
        assert_eq!(source, KeySource::Environment);
        assert_eq!(ring.current().id(), env.id());
        assert_ne!(ring.current().id(), from_file.current().id());
        assert_eq!(ring.previous().len(), 1);
        assert_eq!(ring.previous()[0].id(), earlier.id());

        let error = load_ring(Some("short"), None, &dir.0).expect_err("bad env");
        assert!(
            error.to_string().starts_with("MERIDIAN_SECRET_KEY "),
            "{error}"
        );
        let error = load_ring(None, Some("a,,bad"), &dir.0).expect_err("bad previous");
        assert!(error.to_string().contains("(entry 1)"), "{error}");
    }

    #[test]
    fn rotation_keeps_old_secrets_readable_until_forgotten() {
        let dir = TempDir::new();
        let (before, _) = load_ring(None, None, &dir.0).expect("generate");
        let sealed = before.seal("hunter2", CONTEXT).expect("seal");

        let rotated = rotate_key_file(&dir.0).expect("rotate");
        assert_ne!(rotated.current().id(), before.current().id());
        assert_eq!(rotated.previous()[0].id(), before.current().id());

        let (ring, source) = load_ring(None, None, &dir.0).expect("reload");
        assert_eq!(source, KeySource::File(dir.0.join(KEY_FILE)));
        assert_eq!(ring.current().id(), rotated.current().id());
        assert_eq!(ring.open(&sealed, CONTEXT).expect("old secret"), "hunter2");

        let twice = rotate_key_file(&dir.0).expect("rotate again");
        assert_eq!(twice.previous().len(), 2);
        let (ring, _) = load_ring(None, None, &dir.0).expect("reload");
        assert_eq!(
            ring.open(&sealed, CONTEXT).expect("oldest secret"),
            "hunter2"
        );

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let previous = fs::metadata(dir.0.join(PREVIOUS_KEY_FILE)).expect("metadata");
            assert_eq!(previous.permissions().mode() & 0o777, 0o600);
        }

        assert!(forget_previous_key_file(&dir.0).expect("forget"));
        assert!(!dir.0.join(PREVIOUS_KEY_FILE).exists());
        assert!(!forget_previous_key_file(&dir.0).expect("forget again"));
        let (ring, _) = load_ring(None, None, &dir.0).expect("reload");
        assert!(matches!(
            ring.open(&sealed, CONTEXT),
            Err(KeyError::UnknownKey { .. })
        ));
    }

    #[test]
    fn rotation_needs_a_key_file() {
        let dir = TempDir::new();
        let error = rotate_key_file(&dir.0).expect_err("no key file");
        assert!(error.to_string().contains(KEY_FILE), "{error}");
    }
}
