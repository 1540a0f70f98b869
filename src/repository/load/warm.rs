//! A local index whose parsed form the cache holds, loaded without reading the archive
//! into memory: its signed part is hashed as it is read, a piece at a time into one
//! small buffer, its signatures are checked against the digests, and the entry they
//! name is taken. Reading community's 2.5 MB archive into fresh memory and then hashing
//! it took ~3.8 ms of a warm run's critical path; hashed as read, ~1.5 ms.
//!
//! Whatever this does not settle (no entry, an archive whose signature member is not
//! within its first bytes, an unsigned one, `--allow-untrusted`) is left to reading the
//! archive whole, which checks it again from its own bytes.

use std::os::unix::fs::FileExt;

use sha1::Digest;

use super::{LoadedIndex, Loader, MAX_INDEX_ARCHIVE};
use crate::archive::{self, SignatureAlgorithm, MAX_SIGNATURE_MEMBER};
use crate::cache::ParsedStore;
use crate::repository::RepositoryError;
use crate::trust::Message;

/// Bytes read and hashed at a time.
const PIECE: usize = 256 << 10;

impl Loader<'_> {
    /// The index at `url` (a local one) from the cache's parsed form, or `None` for the
    /// whole read to do; a bad or untrusted signature is the error it always is.
    pub(super) fn load_warm_local(
        &self,
        position: usize,
        url: &str,
    ) -> Result<Option<LoadedIndex>, RepositoryError> {
        let Some(store) = self.parsed else {
            return Ok(None);
        };
        if self.options.allow_untrusted {
            return Ok(None);
        }
        let Some(path) = crate::transport::local_path(url) else {
            return Ok(None);
        };
        let Some(hashed) = hash_signed_part(&path) else {
            return Ok(None);
        };
        let signed = archive::Signed {
            signature: Some(hashed.signature),
            alternatives: hashed.alternatives,
            rest: &[],
        };
        // Without an entry the whole read checks the signature from its own bytes: it
        // is not checked here first as well.
        let Some(entry) = store.open(&ParsedStore::key(&hashed.sha1)) else {
            return Ok(None);
        };
        let message = Message::Digests(&hashed.sha1, hashed.sha256.as_ref());
        let (key, hit) = rayon::join(
            || self.check_trust(url, &signed, message),
            || store.read_open(entry),
        );
        let key = key?;
        let Some((description, index)) = hit else {
            return Ok(None);
        };
        self.said_verified(url, key.as_ref());
        self.reporter
            .info(&format!("`{url}`: using the parsed form the cache holds"));
        Ok(Some(self.loaded(position, url, description, index, key)))
    }
}

/// A signed archive's signatures, and the digests of what they cover.
struct Hashed {
    signature: archive::Signature,
    alternatives: Vec<archive::Signature>,
    sha1: [u8; 20],
    /// When a signature is over SHA-256.
    sha256: Option<[u8; 32]>,
}

/// Splits the archive at `path` after its signature member, read from its first bytes,
/// and hashes the rest as it is read; `None` when it cannot be read so, is unsigned or
/// too large (the whole read then says what is wrong).
fn hash_signed_part(path: &std::path::Path) -> Option<Hashed> {
    let file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    if len > MAX_INDEX_ARCHIVE {
        return None;
    }
    let mut piece = vec![0u8; PIECE];
    // The signature member inflates to at most MAX_SIGNATURE_MEMBER: its compressed
    // form fits in a piece.
    const _: () = assert!(MAX_SIGNATURE_MEMBER as usize * 2 <= PIECE);
    let head_len = piece.len().min(len as usize);
    file.read_exact_at(&mut piece[..head_len], 0).ok()?;
    let signed = archive::split_signature(&piece[..head_len]).ok()?;
    let member = head_len - signed.rest.len();
    let (signature, alternatives) = (signed.signature?, signed.alternatives);
    let wants_sha256 = std::iter::once(&signature)
        .chain(&alternatives)
        .any(|s| s.algorithm == SignatureAlgorithm::Sha256);
    let mut sha1 = sha1::Sha1::new();
    let mut sha256 = wants_sha256.then(sha2::Sha256::new);
    let mut add = |bytes: &[u8]| {
        sha1.update(bytes);
        if let Some(h) = &mut sha256 {
            h.update(bytes);
        }
    };
    add(&piece[member..head_len]);
    let mut at = head_len as u64;
    while at < len {
        let want = PIECE.min((len - at) as usize);
        file.read_exact_at(&mut piece[..want], at).ok()?;
        add(&piece[..want]);
        at += want as u64;
    }
    Some(Hashed {
        signature,
        alternatives,
        sha1: sha1.finalize().into(),
        sha256: sha256.map(|h| h.finalize().into()),
    })
}
