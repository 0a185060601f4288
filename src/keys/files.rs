//! The key store's file IO. Secret files hold lowercase hex and a newline, are 0600 in 0700
//! directories, and are written atomically (a temporary file in the same directory, fsync, then
//! a rename that refuses to replace an existing file): a crash leaves either no key or a whole
//! one, and two processes generating at once agree on whichever key landed first.

use std::fs::{self, DirBuilder, File, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use k256::elliptic_curve::rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use super::error::KeyError;

pub const PRIVATE_DIR_MODE: u32 = 0o700;
pub const PRIVATE_FILE_MODE: u32 = 0o600;
pub const PUBLIC_FILE_MODE: u32 = 0o644;

/// Key files are a few dozen bytes; reading stops here so a wrong file cannot exhaust memory, and
/// the buffer is allocated once so no copy of a secret is left behind by a reallocation.
const MAX_SECRET_FILE_BYTES: usize = 1024;

/// A generator that keeps drawing invalid keys is broken, not unlucky (the odds of one invalid
/// secp256k1 scalar are about 2^-128).
const MAX_GENERATION_ATTEMPTS: usize = 8;

/// Creates `dir` as 0700 if missing, and makes an existing one 0700. Its parents are created with
/// the default mode: they (such as `/sp`) are shared with other services.
pub fn ensure_private_dir(dir: &Path) -> Result<(), KeyError> {
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).map_err(KeyError::io("cannot create directory", parent))?;
    }
    let created = match DirBuilder::new().mode(PRIVATE_DIR_MODE).create(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(KeyError::io("cannot create directory", dir)(e)),
    };
    let meta = fs::metadata(dir).map_err(KeyError::io("cannot read", dir))?;
    if !meta.is_dir() {
        return Err(KeyError::io("cannot use", dir)(
            io::ErrorKind::NotADirectory.into(),
        ));
    }
    restrict(dir, &meta, PRIVATE_DIR_MODE, !created)
}

/// Sets `path`'s mode to exactly `mode`. A looser mode on an existing path (a restore from a
/// backup that lost permissions) is fixed and reported; the umask can only have narrowed a
/// path we just created, so that one is fixed silently.
fn restrict(path: &Path, meta: &fs::Metadata, mode: u32, report: bool) -> Result<(), KeyError> {
    let current = meta.permissions().mode() & 0o7777;
    if current == mode {
        return Ok(());
    }
    if report {
        tracing::warn!(
            path = %path.display(),
            found = format!("{current:o}"),
            set = format!("{mode:o}"),
            "key store permissions corrected"
        );
    }
    fs::set_permissions(path, Permissions::from_mode(mode))
        .map_err(KeyError::io("cannot chmod", path))
}

/// The `N`-byte secret in `path`, or `None` if the file does not exist. The file must hold
/// exactly 2N hex digits (either case), optionally surrounded by whitespace such as the newline
/// this module writes. Errors describe the shape of the content, never the content itself.
pub fn read_secret<const N: usize>(path: &Path) -> Result<Option<Zeroizing<[u8; N]>>, KeyError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(KeyError::io("cannot read", path)(e)),
    };
    let meta = file.metadata().map_err(KeyError::io("cannot read", path))?;
    if !meta.is_file() {
        return Err(KeyError::malformed(path, "not a regular file"));
    }
    restrict(path, &meta, PRIVATE_FILE_MODE, true)?;
    let mut text = Zeroizing::new(Vec::with_capacity(MAX_SECRET_FILE_BYTES + 1));
    (&mut file)
        .take(MAX_SECRET_FILE_BYTES as u64 + 1)
        .read_to_end(&mut text)
        .map_err(KeyError::io("cannot read", path))?;
    if text.len() > MAX_SECRET_FILE_BYTES {
        return Err(KeyError::malformed(
            path,
            format!(
                "longer than {MAX_SECRET_FILE_BYTES} bytes; expected {} hexadecimal characters",
                2 * N
            ),
        ));
    }
    let digits = text.trim_ascii();
    if digits.len() != 2 * N {
        return Err(KeyError::malformed(
            path,
            format!(
                "expected {} hexadecimal characters (a {N}-byte key), found {}",
                2 * N,
                digits.len()
            ),
        ));
    }
    let mut secret = Zeroizing::new([0u8; N]);
    // hex's own error would quote the offending character, which is part of the secret.
    hex::decode_to_slice(digits, &mut secret[..])
        .map_err(|_| KeyError::malformed(path, "not hexadecimal"))?;
    Ok(Some(secret))
}

/// Writes `secret` as lowercase hex and a newline into a new 0600 file. `Ok(false)`: the file
/// already existed (another process won a race) and was left untouched.
pub fn write_secret(path: &Path, secret: &[u8]) -> Result<bool, KeyError> {
    let mut text = Zeroizing::new(vec![0u8; 2 * secret.len() + 1]);
    let last = text.len() - 1;
    hex::encode_to_slice(secret, &mut text[..last])
        .map_err(|_| KeyError::malformed(path, "cannot encode the key"))?;
    text[last] = b'\n';
    write_new(path, &text, PRIVATE_FILE_MODE)
}

/// Creates `path` with `contents` and `mode`, atomically, never replacing an existing file.
/// `Ok(false)`: the file already existed and was left untouched.
pub fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<bool, KeyError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    // tempfile creates the file 0600, so a secret is never readable by others, even briefly.
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(KeyError::io("cannot create a temporary file in", dir))?;
    tmp.as_file()
        .set_permissions(Permissions::from_mode(mode))
        .and_then(|()| tmp.write_all(contents))
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(KeyError::io("cannot write a temporary file in", dir))?;
    match tmp.persist_noclobber(path) {
        Ok(_) => {}
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(KeyError::io("cannot create", path)(e.error)),
    }
    // The rename is durable only once the directory entry is.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(KeyError::io("cannot sync directory", dir))?;
    Ok(true)
}

/// `N` bytes from the operating system's CSPRNG; `path` is the file they are for.
pub fn random<const N: usize>(path: &Path) -> Result<Zeroizing<[u8; N]>, KeyError> {
    let mut bytes = Zeroizing::new([0u8; N]);
    OsRng
        .try_fill_bytes(&mut bytes[..])
        .map_err(|_| KeyError::Random {
            path: path.to_owned(),
        })?;
    Ok(bytes)
}

/// When a missing key file may be generated.
#[derive(Debug, Clone, Copy)]
pub enum Missing<'a> {
    Generate,
    /// Never: the node's keys were published in this `public.json`, so a new key would silently
    /// change its identity.
    Refuse(&'a Path),
}

/// Loads the `what` in `path`, or generates one, stores it and returns it. `parse` turns the
/// bytes into a key, or says why they are not one.
pub fn load_or_generate<const N: usize, T>(
    path: &Path,
    missing: Missing<'_>,
    what: &str,
    parse: impl Fn(&[u8; N]) -> Result<T, &'static str>,
) -> Result<T, KeyError> {
    let parse_file = |bytes: &[u8; N]| parse(bytes).map_err(|why| KeyError::malformed(path, why));
    if let Some(bytes) = read_secret::<N>(path)? {
        return parse_file(&bytes);
    }
    if let Missing::Refuse(public) = missing {
        return Err(KeyError::Missing {
            path: path.to_owned(),
            public: public.to_owned(),
        });
    }
    for _ in 0..MAX_GENERATION_ATTEMPTS {
        let bytes = random::<N>(path)?;
        let Ok(key) = parse(&bytes) else { continue };
        if write_secret(path, &bytes[..])? {
            tracing::info!(path = %path.display(), "generated {what}");
            return Ok(key);
        }
        // Another process created the file between our read and our write: its key wins.
        return match read_secret::<N>(path)? {
            Some(bytes) => parse_file(&bytes),
            None => Err(KeyError::io("cannot read", path)(
                io::ErrorKind::NotFound.into(),
            )),
        };
    }
    Err(KeyError::Random {
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn private_directories_are_created_and_corrected_to_0700() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("a/b");
        ensure_private_dir(&dir).expect("create");
        assert_eq!(mode(&dir), 0o700);
        // The parent is shared with other services and keeps the default mode.
        assert_ne!(mode(&tmp.path().join("a")), 0o700);
        fs::set_permissions(&dir, Permissions::from_mode(0o755)).expect("chmod");
        ensure_private_dir(&dir).expect("existing");
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn a_file_where_the_directory_should_be_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("node-2");
        fs::write(&path, "x").expect("write");
        let err = ensure_private_dir(&path).expect_err("not a directory");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn secrets_round_trip_as_lowercase_hex_with_a_newline_and_mode_0600() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("k");
        assert!(read_secret::<4>(&path).expect("absent").is_none());
        assert!(write_secret(&path, &[0xAB, 0x01, 0xFF, 0x00]).expect("write"));
        assert_eq!(fs::read_to_string(&path).expect("read"), "ab01ff00\n");
        assert_eq!(mode(&path), 0o600);
        let back = read_secret::<4>(&path).expect("read").expect("present");
        assert_eq!(*back, [0xAB, 0x01, 0xFF, 0x00]);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(tmp.path()).expect("dir").count(), 1);
    }

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("k");
        assert!(write_secret(&path, &[1, 2]).expect("first"));
        assert!(!write_secret(&path, &[3, 4]).expect("second"));
        assert_eq!(fs::read_to_string(&path).expect("read"), "0102\n");
        assert_eq!(fs::read_dir(tmp.path()).expect("dir").count(), 1);
    }

    #[test]
    fn upper_case_and_surrounding_whitespace_are_accepted_and_a_loose_mode_is_fixed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("k");
        fs::write(&path, " AB01\r\n").expect("write");
        fs::set_permissions(&path, Permissions::from_mode(0o644)).expect("chmod");
        let back = read_secret::<2>(&path).expect("read").expect("present");
        assert_eq!(*back, [0xAB, 0x01]);
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn malformed_files_are_errors_naming_the_file_and_not_quoting_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("k");
        for (content, expected) in [
            ("", "found 0"),
            ("abcd\n", "found 4"),
            ("abcdef0123\n", "found 10"),
            ("abcdefgz\n", "not hexadecimal"),
        ] {
            fs::write(&path, content).expect("write");
            let err = read_secret::<4>(&path).expect_err(content).to_string();
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains(expected), "{content:?}: {err}");
            assert!(!err.contains("gz") && !err.contains("abcd"), "{err}");
        }
        fs::write(&path, vec![b'0'; MAX_SECRET_FILE_BYTES + 10]).expect("write");
        let err = read_secret::<4>(&path).expect_err("huge").to_string();
        assert!(err.contains("longer than"), "{err}");
    }

    #[test]
    fn generation_is_refused_when_the_keys_were_published() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("k");
        let public = tmp.path().join("public.json");
        let err = load_or_generate::<4, _>(&path, Missing::Refuse(&public), "key", |b| Ok(*b))
            .expect_err("refused");
        assert!(matches!(err, KeyError::Missing { .. }), "{err}");
        assert!(!path.exists());
        let key = load_or_generate::<4, _>(&path, Missing::Generate, "key", |b| Ok(*b))
            .expect("generated");
        let again = load_or_generate::<4, _>(&path, Missing::Refuse(&public), "key", |b| Ok(*b))
            .expect("loaded");
        assert_eq!(key, again);
    }

    #[test]
    fn a_parser_that_rejects_everything_gives_up_instead_of_looping() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("k");
        let err = load_or_generate::<4, ()>(&path, Missing::Generate, "key", |_| Err("never"))
            .expect_err("never valid");
        assert!(matches!(err, KeyError::Random { .. }), "{err}");
        assert!(!path.exists());
    }

    #[test]
    fn random_bytes_differ() {
        let path = Path::new("x");
        assert_ne!(
            *random::<16>(path).expect("a"),
            *random::<16>(path).expect("b")
        );
    }
}
