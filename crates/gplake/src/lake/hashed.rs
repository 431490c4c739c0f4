//! Opening an object to read with the SHA-256 of the bytes it holds, hashing a local file
//! again only when it may have changed since it was last hashed.
//!
//! A local file's stamp (device, inode, size, modification and change times) is recorded
//! with its hash. The same stamp again means the same bytes: any write moves the change
//! time, which no tool can set back, and a file put in its place is another inode. That is
//! git's index rule, and like git a stamp is trusted only when the file had settled before it
//! was hashed (its times [`SETTLED`] older than the hash), because file times are coarser
//! than writes. Other stores, and systems without these times, hash every read.

use serde::{Deserialize, Serialize};

/// How long a file's times must lie before its hashing for its stamp to be recorded.
const SETTLED: std::time::Duration = std::time::Duration::from_secs(2);

/// A local file's identity and times, when its bytes were hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    /// The device.
    pub dev: u64,
    /// The inode.
    pub ino: u64,
    /// The size in bytes.
    pub size: u64,
    /// Last modification, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Last change of content or metadata, nanoseconds since the epoch.
    pub ctime_ns: i64,
}

/// A hash recorded for an object, with the stamp of the local file that had those bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hashed {
    /// The hex SHA-256.
    pub sha256: String,
    /// The local file's stamp when it was hashed (`None`: not one to trust again).
    pub stamp: Option<FileStamp>,
}

/// Opens `local` and gives the hash of its bytes, leaving the file at its start: `known`'s
/// hash when the open file still has `known`'s stamp, else the hash of every byte.
pub(super) fn open_and_hash(
    local: &std::path::Path,
    known: Option<&Hashed>,
) -> std::io::Result<(std::fs::File, Hashed)> {
    let mut file = std::fs::File::open(local)?;
    let stamp = stamp_of(&file)?;
    if let (Some(known), Some(now)) = (known, &stamp)
        && known.stamp.as_ref() == Some(now)
    {
        return Ok((file, known.clone()));
    }
    let sha256 = hash_all(&mut file)?;
    let stamp = stamp.filter(|s| settled(s, std::time::SystemTime::now()));
    Ok((file, Hashed { sha256, stamp }))
}

/// The hex SHA-256 of every byte of `file`, which is left at its start.
fn hash_all(file: &mut std::fs::File) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::{Read, Seek};
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf)? {
            0 => break,
            n => hasher.update(&buf[..n]),
        }
    }
    file.rewind()?;
    Ok(hex::encode(hasher.finalize()))
}

/// True when both of the stamp's times lie [`SETTLED`] or more before `now`.
fn settled(stamp: &FileStamp, now: std::time::SystemTime) -> bool {
    let Ok(now) = now.duration_since(std::time::UNIX_EPOCH) else {
        return false;
    };
    let limit = now.as_nanos() as i64 - SETTLED.as_nanos() as i64;
    stamp.mtime_ns < limit && stamp.ctime_ns < limit
}

#[cfg(unix)]
fn stamp_of(file: &std::fs::File) -> std::io::Result<Option<FileStamp>> {
    use std::os::unix::fs::MetadataExt;
    let m = file.metadata()?;
    // i64 nanoseconds reach the year 2262; serde's flattening has no i128.
    let ns = |secs: i64, nanos: i64| secs.saturating_mul(1_000_000_000).saturating_add(nanos);
    Ok(Some(FileStamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime_ns: ns(m.mtime(), m.mtime_nsec()),
        ctime_ns: ns(m.ctime(), m.ctime_nsec()),
    }))
}

#[cfg(not(unix))]
fn stamp_of(_file: &std::fs::File) -> std::io::Result<Option<FileStamp>> {
    Ok(None)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A stamp recorded as if the file had been hashed long after it was written.
    fn aged(path: &std::path::Path) -> Hashed {
        let (_, mut hashed) = open_and_hash(path, None).unwrap();
        if hashed.stamp.is_none() {
            hashed.stamp = stamp_of(&std::fs::File::open(path).unwrap()).unwrap();
        }
        hashed
    }

    #[test]
    fn a_fresh_file_is_hashed_and_its_stamp_not_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.csv");
        std::fs::write(&path, b"a,b\n1,2\n").unwrap();
        let (_, hashed) = open_and_hash(&path, None).unwrap();
        let expected = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"a,b\n1,2\n"));
        assert_eq!(hashed.sha256, expected);
        assert_eq!(hashed.stamp, None, "written just now: not settled");
    }

    #[test]
    fn the_known_hash_stands_only_while_the_stamp_is_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.csv");
        std::fs::write(&path, b"a,b\n1,2\n").unwrap();
        let known = Hashed {
            sha256: "recorded".into(),
            ..aged(&path)
        };
        let (_, again) = open_and_hash(&path, Some(&known)).unwrap();
        assert_eq!(again.sha256, "recorded", "same stamp: not hashed again");

        // The same size, written in place: the change time moves.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, b"a,b\n1,3\n").unwrap();
        let (_, again) = open_and_hash(&path, Some(&known)).unwrap();
        let expected = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"a,b\n1,3\n"));
        assert_eq!(again.sha256, expected, "written in place: hashed again");

        // Another file put in its place by rename, with the first one's times.
        let known = aged(&path);
        let other = dir.path().join("g.csv");
        std::fs::write(&other, b"a,b\n9,9\n").unwrap();
        let first = std::fs::File::open(&path).unwrap();
        let times =
            std::fs::FileTimes::new().set_modified(first.metadata().unwrap().modified().unwrap());
        std::fs::File::options()
            .write(true)
            .open(&other)
            .unwrap()
            .set_times(times)
            .unwrap();
        std::fs::rename(&other, &path).unwrap();
        let (_, again) = open_and_hash(&path, Some(&known)).unwrap();
        let expected = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"a,b\n9,9\n"));
        assert_eq!(again.sha256, expected, "replaced: hashed again");
    }

    #[test]
    fn only_times_older_than_the_settling_delay_are_settled() {
        let now = std::time::SystemTime::now();
        let ns = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64
        };
        let stamp = |written: std::time::SystemTime| FileStamp {
            dev: 1,
            ino: 1,
            size: 1,
            mtime_ns: ns(written),
            ctime_ns: ns(written),
        };
        assert!(settled(&stamp(now - SETTLED * 2), now));
        assert!(!settled(&stamp(now - SETTLED / 2), now));
        let mut changed_late = stamp(now - SETTLED * 2);
        changed_late.ctime_ns = ns(now);
        assert!(!settled(&changed_late, now));
    }
}
