//! Index files: blob id → (pack, offset, length).
//!
//! Layout: `"BKINDEX1" | (pack id, blob count u32 LE, entries…)* | blake3 of
//! everything before`. An index file's name is the blake3 of its bytes.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::id::Id;
use crate::pack::{BlobEntry, BlobKind};

const INDEX_MAGIC: &[u8; 8] = b"BKINDEX1";

/// Where a blob lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// The pack.
    pub pack: Id,
    /// The entry in that pack.
    pub entry: BlobEntry,
}

/// The in-memory index of a repository.
#[derive(Debug, Default, Clone)]
pub struct Index {
    blobs: HashMap<Id, BlobLocation>,
    packs: HashMap<Id, Vec<BlobEntry>>,
}

impl Index {
    /// Look a blob up.
    pub fn get(&self, id: &Id) -> Option<&BlobLocation> {
        self.blobs.get(id)
    }

    /// Is this blob stored?
    pub fn contains(&self, id: &Id) -> bool {
        self.blobs.contains_key(id)
    }

    /// Record a pack's blobs.
    pub fn add_pack(&mut self, pack: Id, entries: Vec<BlobEntry>) {
        for e in &entries {
            self.blobs
                .entry(e.id)
                .or_insert(BlobLocation { pack, entry: *e });
        }
        self.packs.insert(pack, entries);
    }

    /// Is this pack indexed?
    pub fn has_pack(&self, pack: &Id) -> bool {
        self.packs.contains_key(pack)
    }

    /// All indexed packs with their entries.
    pub fn packs(&self) -> impl Iterator<Item = (&Id, &Vec<BlobEntry>)> {
        self.packs.iter()
    }

    /// Number of blobs.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// No blobs.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Ids of all blobs of a kind.
    pub fn blobs_of_kind(&self, kind: BlobKind) -> impl Iterator<Item = &Id> {
        self.blobs
            .iter()
            .filter(move |(_, l)| l.entry.kind == kind)
            .map(|(id, _)| id)
    }
}

/// Serialize packs into an index file. Returns (id, bytes).
pub fn encode(packs: &[(Id, Vec<BlobEntry>)]) -> (Id, Vec<u8>) {
    let mut out = Vec::from(&INDEX_MAGIC[..]);
    for (pack, entries) in packs {
        out.extend_from_slice(&pack.0);
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for e in entries {
            e.encode(&mut out);
        }
    }
    let sum = Id::hash(&out);
    out.extend_from_slice(&sum.0);
    (Id::hash(&out), out)
}

/// Parse an index file.
pub fn decode(name: &str, b: &[u8]) -> Result<Vec<(Id, Vec<BlobEntry>)>> {
    let corrupt = |reason: &str| Error::Corrupt {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if b.len() < 40 || &b[..8] != INDEX_MAGIC {
        return Err(corrupt("not an index file (bad magic)"));
    }
    let (body, sum) = b.split_at(b.len() - 32);
    if Id::hash(body).0 != sum {
        return Err(corrupt("checksum mismatch"));
    }
    let mut out = Vec::new();
    let mut p = &body[8..];
    while !p.is_empty() {
        if p.len() < 36 {
            return Err(corrupt("truncated pack record"));
        }
        let pack = Id(p[..32].try_into().unwrap());
        let n = u32::from_le_bytes(p[32..36].try_into().unwrap()) as usize;
        p = &p[36..];
        let need = n
            .checked_mul(BlobEntry::LEN)
            .filter(|&need| need <= p.len())
            .ok_or_else(|| corrupt("truncated entries"))?;
        let entries = p[..need]
            .chunks_exact(BlobEntry::LEN)
            .map(BlobEntry::decode)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| corrupt("bad entry"))?;
        p = &p[need..];
        out.push((pack, entries));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::Compression;

    #[test]
    fn index_round_trip() {
        let e = BlobEntry {
            kind: BlobKind::Data,
            compression: Compression::Zstd,
            id: Id::hash(b"x"),
            offset: 5,
            length: 7,
            raw_length: 9,
        };
        let packs = vec![(Id::hash(b"p"), vec![e, e])];
        let (id, bytes) = encode(&packs);
        assert_eq!(id, Id::hash(&bytes));
        assert_eq!(decode("i", &bytes).unwrap(), packs);
        let mut bad = bytes.clone();
        bad[12] ^= 1;
        assert!(decode("i", &bad).is_err());
    }
}
