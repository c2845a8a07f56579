//! The names of every repository file, in one place.
//!
//! ```text
//! config                          format version, chunker parameters
//! packs/XX/<pack id>              blobs; XX = the id's first two hex digits
//! index/<index id>                blob id -> (pack, offset, length)
//! snapshots/<dataset>/<n>.json    one snapshot; <dataset> percent-encoded
//! locks/exclusive                 the writer's lock
//! damaged/<record id>.json        packs and blobs found damaged
//! ```
//!
//! Everything else in bk-core asks this module for a name; only the
//! Repository reads and writes the files (see docs/FORMAT.md).

use crate::id::Id;

/// The repository's configuration file.
pub const CONFIG: &str = "config";
/// Directory of packs (sharded by the first two hex digits of the id).
pub const PACKS_DIR: &str = "packs";
/// Directory of index files.
pub const INDEX_DIR: &str = "index";
/// Directory of per-dataset snapshot directories.
pub const SNAPSHOTS_DIR: &str = "snapshots";
/// Directory of locks.
pub const LOCKS_DIR: &str = "locks";
/// The lock a writer holds.
pub const LOCK: &str = "locks/exclusive";
/// Records of damaged packs and blobs, one immutable file each.
pub const DAMAGED_DIR: &str = "damaged";
/// The directories a new repository gets.
pub const DIRS: &[&str] = &[PACKS_DIR, INDEX_DIR, SNAPSHOTS_DIR, LOCKS_DIR];

/// An index file's name.
pub fn index_name(id: &Id) -> String {
    format!("{INDEX_DIR}/{}", id.to_hex())
}

/// A damage record's name.
pub fn damage_name(id: &Id) -> String {
    format!("{DAMAGED_DIR}/{}.json", id.to_hex())
}

/// Repository name of a pack.
pub fn pack_name(id: &Id) -> String {
    let h = id.to_hex();
    format!("{PACKS_DIR}/{}/{}", &h[..2], h)
}

/// Pack id from a repository name, if it is one.
pub fn pack_id_from_name(name: &str) -> Option<Id> {
    Id::from_hex(name.rsplit('/').next()?)
}

/// Whether `dir` (repository-relative, no trailing `/`, `""` for the root)
/// is one of the directories bk writes files into: the root, `packs/XX`,
/// `index`, `snapshots/<dataset>`, `locks`, `damaged`.
pub fn is_repository_dir(dir: &str) -> bool {
    let mut parts = dir.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(""), None, None) => true,
        (Some(INDEX_DIR | LOCKS_DIR | DAMAGED_DIR), None, None) => true,
        (Some(PACKS_DIR), Some(xx), None) => {
            xx.len() == 2 && xx.bytes().all(|b| b.is_ascii_hexdigit())
        }
        (Some(SNAPSHOTS_DIR), Some(ds), None) => !ds.is_empty(),
        _ => false,
    }
}

/// The directory holding a dataset's snapshots: the name percent-encoded
/// so that any dataset name is a portable file name.
pub fn dataset_dir(name: &str) -> String {
    let mut out = format!("{SNAPSHOTS_DIR}/");
    for b in name.bytes() {
        if b.is_ascii_alphanumeric()
            || b == b'-'
            || b == b'_'
            || (b == b'.' && out.len() > SNAPSHOTS_DIR.len() + 1)
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The file name of a snapshot.
pub fn snapshot_name(dataset: &str, id: u64) -> String {
    format!("{}/{id:010}.json", dataset_dir(dataset))
}

/// Decode a dataset directory name.
pub fn decode_dataset_dir(enc: &str) -> Option<String> {
    let b = enc.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = enc.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::check_dataset_name;

    #[test]
    fn dataset_names_encode_and_decode() {
        for n in ["plain", "with space", "über", ".hidden", "a%b", "x.y"] {
            let d = dataset_dir(n);
            let enc = d.strip_prefix("snapshots/").unwrap();
            assert!(!enc.starts_with('.'));
            assert!(
                enc.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.%".contains(&b))
            );
            assert_eq!(decode_dataset_dir(enc).as_deref(), Some(n));
        }
        assert!(check_dataset_name("a/b").is_err());
        assert!(check_dataset_name("..").is_err());
    }

    #[test]
    fn names_are_the_documented_ones() {
        let id = Id::hash(b"x");
        let h = id.to_hex();
        assert_eq!(pack_name(&id), format!("packs/{}/{h}", &h[..2]));
        assert_eq!(pack_id_from_name(&pack_name(&id)), Some(id));
        assert_eq!(index_name(&id), format!("index/{h}"));
        assert_eq!(damage_name(&id), format!("damaged/{h}.json"));
        assert_eq!(snapshot_name("ds", 7), "snapshots/ds/0000000007.json");
        assert!(is_repository_dir("packs/ab") && !is_repository_dir("packs/zz"));
        assert!(is_repository_dir("") && is_repository_dir("damaged"));
        assert!(!is_repository_dir("snapshots") && is_repository_dir("snapshots/ds"));
    }
}
