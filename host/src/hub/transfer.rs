//! One file's bytes from the hub into the cache: resumable, bounded, verified, atomic.
//!
//! The bytes go to `blobs/<etag>.part` (the name `hf-hub` uses, so either resumes the other's
//! partial download) under an exclusive lock on `blobs/<etag>.lock` that waits for any other
//! pull of the same blob, in this process or another. A partial file is resumed with
//! `Range: bytes=N-`; a `206` must start at N, a `200` (a server that ignores ranges) starts
//! over. The body may not exceed the announced size, an HTML page is refused, and the SHA-256
//! is checked before the file is renamed to its blob name — the only moment it becomes visible.

use super::protocol::{Client, Digest, FileMeta};
use super::{HubError, HubResult, PullState, PullTracker};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

const CHUNK: usize = 256 << 10;

fn io(what: &str, path: &Path, e: std::io::Error) -> HubError {
    HubError::Io(format!("{what} {}: {e}", path.display()))
}

fn with_ext(blob: &Path, ext: &str) -> PathBuf {
    let mut name = blob.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

/// The exclusive lock on one blob, across threads and processes (`blobs/<etag>.lock`): held
/// while the blob is received, linked or removed.
pub(crate) struct BlobLock(#[allow(dead_code)] File);

/// The lock file of a blob.
pub(crate) fn lock_path(blob: &Path) -> PathBuf {
    with_ext(blob, "lock")
}

/// Refuse a cache path that is a symbolic link (it could lead the write elsewhere).
fn no_link(path: &Path) -> HubResult<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(HubError::Unsafe(format!(
            "{} is a symbolic link; refusing to write through it",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// Take a blob's lock, waiting for whoever holds it (another pull of the same blob); gives up
/// when the pull is cancelled.
pub(crate) fn lock_blob(blob: &Path, tracker: &PullTracker) -> HubResult<BlobLock> {
    let dir = blob.parent().expect("a blob has a folder");
    std::fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
    let lock_path = lock_path(blob);
    no_link(&lock_path)?;
    let lock = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| io("cannot create", &lock_path, e))?;
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(BlobLock(lock)),
            Err(std::fs::TryLockError::WouldBlock) => {
                if tracker.is_cancelled() {
                    return Err(HubError::Cancelled);
                }
                tracker.set_state(PullState::Waiting);
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("cannot lock", &lock_path, e)),
        }
    }
}

/// Make sure the cache holds `meta`'s blob, complete and verified. Blocks. The blob stays
/// locked until the returned guard is dropped (after it is linked).
pub(crate) fn fetch(
    client: &Client,
    meta: &FileMeta,
    blob: &Path,
    tracker: &PullTracker,
    retries: u32,
) -> HubResult<BlobLock> {
    let lock = lock_blob(blob, tracker)?;
    let dir = blob.parent().expect("a blob has a folder");
    no_link(blob)?;
    if let Ok(m) = std::fs::metadata(blob) {
        if m.len() == meta.size {
            tracker.file_bytes(meta.size);
            return Ok(lock);
        }
        // A blob of the wrong size is not the file the hub names: fetch it again.
        std::fs::remove_file(blob).map_err(|e| io("cannot remove", blob, e))?;
    }
    let part = with_ext(blob, "part");
    let mut attempt = 0;
    loop {
        match download(client, meta, &part, tracker) {
            Ok(()) => break,
            Err(HubError::Interrupted(why, done, total)) if attempt < retries => {
                attempt += 1;
                let wait = backoff(attempt);
                tracing::info!(
                    "{}: {why} at {done} of {total} bytes; resuming in {wait:?}",
                    meta.file
                );
                std::thread::sleep(wait);
            }
            Err(e) => {
                // An empty partial file is nothing to resume from.
                if std::fs::metadata(&part).is_ok_and(|m| m.len() == 0) {
                    let _ = std::fs::remove_file(&part);
                }
                return Err(e);
            }
        }
    }
    tracker.set_state(PullState::Verifying);
    verify(meta, &part)?;
    std::fs::rename(&part, blob).map_err(|e| io("cannot rename to", blob, e))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(lock)
}

/// 0.5 s, 1 s, 2 s … up to 8 s, with up to 25 % jitter.
fn backoff(attempt: u32) -> Duration {
    let base = 500u64 << attempt.min(4).saturating_sub(1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    Duration::from_millis(base.min(8000) + nanos % (base / 4 + 1))
}

/// Receive the rest of the file into `part`. `Interrupted` keeps what arrived; the errors
/// that mean the server sent something else delete it.
fn download(client: &Client, meta: &FileMeta, part: &Path, tracker: &PullTracker) -> HubResult<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(part)
        .map_err(|e| io("cannot open", part, e))?;
    let mut have = file.metadata().map_err(|e| io("cannot read", part, e))?.len();
    if have > meta.size {
        file.set_len(0).map_err(|e| io("cannot truncate", part, e))?;
        have = 0;
    }
    tracker.file_bytes(have);
    if have == meta.size {
        return Ok(());
    }
    let mut req = client.agent().get(&meta.url);
    if have > 0 {
        req = req.header("Range", format!("bytes={have}-"));
    }
    if let Some(auth) = client.auth().filter(|_| meta.same_host) {
        req = req.header("Authorization", auth);
    }
    let response = req.call().map_err(|e| {
        HubError::Interrupted(format!("cannot reach the server: {e}"), have, meta.size)
    })?;
    let status = response.status().as_u16();
    let header =
        |n: &str| response.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let refuse = |why: String| {
        let _ = std::fs::remove_file(part);
        HubError::Integrity(format!("{}: {why}; the download was deleted", meta.file))
    };
    if header("content-type").is_some_and(|t| t.to_ascii_lowercase().starts_with("text/html")) {
        // Not the file: what was received before is still good for the next pull.
        return Err(HubError::Integrity(format!(
            "{}: the server sent an HTML page instead of the file (HTTP {status})",
            meta.file
        )));
    }
    match status {
        206 => {
            let range = header("content-range").unwrap_or_default();
            let expected = format!("bytes {have}-{}/{}", meta.size - 1, meta.size);
            if range != expected {
                return Err(refuse(format!(
                    "the server sent the range '{range}' when asked for bytes {have}- (expected '{expected}')"
                )));
            }
        }
        200 => {
            if have > 0 {
                tracing::info!(
                    "{}: the server ignored the range request; starting over",
                    meta.file
                );
                file.set_len(0).map_err(|e| io("cannot truncate", part, e))?;
                have = 0;
                tracker.file_bytes(0);
            }
        }
        416 if have == meta.size => return Ok(()),
        code @ (500..=599) => {
            return Err(HubError::Interrupted(
                format!("the server answered HTTP {code}"),
                have,
                meta.size,
            ));
        }
        code => {
            return Err(HubError::Http(format!(
                "{}: the download answered HTTP {code}",
                meta.file
            )));
        }
    }
    let want = meta.size - have;
    if let Some(len) = header("content-length").and_then(|l| l.trim().parse::<u64>().ok())
        && len != want
    {
        return Err(refuse(format!(
            "the server announced {len} bytes where {want} were expected (file size {})",
            meta.size
        )));
    }
    let mut body = response.into_body().into_reader();
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    loop {
        if tracker.is_cancelled() {
            let _ = file.sync_data();
            return Err(HubError::Cancelled);
        }
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                let _ = file.sync_data();
                return Err(HubError::Interrupted(
                    format!("the connection broke off ({e})"),
                    have + got,
                    meta.size,
                ));
            }
        };
        if got + n as u64 > want {
            return Err(refuse(format!(
                "the server sent more than the {} bytes announced",
                meta.size
            )));
        }
        file.write_all(&buf[..n]).map_err(|e| io("cannot write", part, e))?;
        got += n as u64;
        tracker.receiving();
        tracker.file_bytes(have + got);
    }
    file.sync_data().map_err(|e| io("cannot write", part, e))?;
    if got < want {
        return Err(HubError::Interrupted(
            "the connection closed early".into(),
            have + got,
            meta.size,
        ));
    }
    Ok(())
}

/// Check the complete `part` against the hub's digest (SHA-256 for LFS files, the git blob id
/// for others) and size; delete it if it does not match.
fn verify(meta: &FileMeta, part: &Path) -> HubResult<()> {
    let mut file = File::open(part).map_err(|e| io("cannot open", part, e))?;
    let len = file.metadata().map_err(|e| io("cannot read", part, e))?.len();
    let fail = |why: String| {
        let _ = std::fs::remove_file(part);
        HubError::Integrity(format!("{}: {why}; the download was deleted", meta.file))
    };
    if len != meta.size {
        return Err(fail(format!("{len} bytes received, the hub announced {}", meta.size)));
    }
    let mut head = [0u8; 16];
    let n = file.read(&mut head).map_err(|e| io("cannot read", part, e))?;
    file.seek(SeekFrom::Start(0)).map_err(|e| io("cannot read", part, e))?;
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let (name, expected, actual) = match &meta.digest {
        Digest::Sha256(expected) => {
            let mut hasher = Sha256::new();
            std::io::copy(&mut file, &mut hasher).map_err(|e| io("cannot read", part, e))?;
            ("SHA-256", expected, hex(&hasher.finalize()))
        }
        Digest::GitSha1(expected) => {
            let mut hasher = Sha1::new();
            hasher.update(format!("blob {len}\0").as_bytes());
            std::io::copy(&mut file, &mut hasher).map_err(|e| io("cannot read", part, e))?;
            ("git blob id", expected, hex(&hasher.finalize()))
        }
    };
    if &actual != expected {
        let html = String::from_utf8_lossy(&head[..n]).trim_start().starts_with('<');
        let what = if html { " (it is an HTML page, not the file)" } else { "" };
        return Err(fail(format!(
            "{name} mismatch: the hub says {expected}, the file has {actual}{what}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_bounded() {
        assert!(
            backoff(1) >= Duration::from_millis(500) && backoff(1) < Duration::from_millis(700)
        );
        assert!(backoff(3) >= Duration::from_secs(2));
        assert!(backoff(30) <= Duration::from_millis(10_000));
    }
}
