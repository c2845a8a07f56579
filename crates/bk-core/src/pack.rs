//! Packs: many compressed blobs in one file, with their own blob list.
//!
//! Layout: `blob bytes … | header | header length (u32 LE) | "BKPACK01"`.
//! The header holds one [`BlobEntry`] per blob plus a blake3 of the header.
//! A pack's name is that blake3 of its header: the header lists the id of
//! every blob, and every blob is verified against its id when read, so the
//! name covers the whole pack without hashing its data a second time.

use crate::error::{Error, Result};
use crate::id::Id;

/// Magic at the end of every pack.
pub const PACK_MAGIC: &[u8; 8] = b"BKPACK01";
const ENTRY_LEN: usize = 1 + 1 + 32 + 4 + 4 + 4;

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BlobKind {
    /// A chunk of file content.
    Data = 0,
    /// A serialized directory tree.
    Tree = 1,
}

/// How a blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Compression {
    /// Stored as is.
    None = 0,
    /// zstd frame.
    Zstd = 1,
}

/// One blob in a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobEntry {
    /// Data or tree.
    pub kind: BlobKind,
    /// Stored form.
    pub compression: Compression,
    /// blake3 of the plaintext.
    pub id: Id,
    /// Byte offset in the pack.
    pub offset: u32,
    /// Stored (compressed) length.
    pub length: u32,
    /// Plaintext length.
    pub raw_length: u32,
}

impl BlobEntry {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.kind as u8);
        out.push(self.compression as u8);
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.length.to_le_bytes());
        out.extend_from_slice(&self.raw_length.to_le_bytes());
    }

    pub(crate) fn decode(b: &[u8]) -> Option<BlobEntry> {
        if b.len() != ENTRY_LEN {
            return None;
        }
        let kind = match b[0] {
            0 => BlobKind::Data,
            1 => BlobKind::Tree,
            _ => return None,
        };
        let compression = match b[1] {
            0 => Compression::None,
            1 => Compression::Zstd,
            _ => return None,
        };
        let u32at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        Some(BlobEntry {
            kind,
            compression,
            id: Id(b[2..34].try_into().unwrap()),
            offset: u32at(34),
            length: u32at(38),
            raw_length: u32at(42),
        })
    }

    pub(crate) const LEN: usize = ENTRY_LEN;
}

/// Builds one pack in memory.
#[derive(Debug, Default)]
pub struct PackWriter {
    buf: Vec<u8>,
    entries: Vec<BlobEntry>,
}

impl PackWriter {
    /// An empty pack with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> PackWriter {
        PackWriter {
            buf: Vec::with_capacity(capacity),
            entries: Vec::new(),
        }
    }

    /// Bytes of blob data so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// No blobs yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Append one stored blob.
    pub fn add(
        &mut self,
        kind: BlobKind,
        id: Id,
        compression: Compression,
        stored: &[u8],
        raw_len: usize,
    ) {
        self.entries.push(BlobEntry {
            kind,
            compression,
            id,
            offset: self.buf.len() as u32,
            length: stored.len() as u32,
            raw_length: raw_len as u32,
        });
        self.buf.extend_from_slice(stored);
    }

    /// Finish: append the header and return (pack id, bytes, entries).
    pub fn finish(mut self) -> (Id, Vec<u8>, Vec<BlobEntry>) {
        let mut header = Vec::with_capacity(self.entries.len() * ENTRY_LEN + 40);
        header.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            e.encode(&mut header);
        }
        let id = Id::hash(&header);
        header.extend_from_slice(&id.0);
        self.buf.extend_from_slice(&header);
        self.buf
            .extend_from_slice(&(header.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(PACK_MAGIC);
        (id, self.buf, self.entries)
    }
}

/// Length of the pack trailer (header length + magic).
pub const TRAILER_LEN: usize = 12;

/// Parse a pack's header from its last bytes. `tail` must end at the end of
/// the pack; it holds at least [`TRAILER_LEN`] bytes. Returns the entries, or
/// `Ok(Err(n))` when `n` bytes from the end are needed.
pub fn parse_header(
    name: &str,
    pack_len: u64,
    tail: &[u8],
) -> Result<std::result::Result<Vec<BlobEntry>, usize>> {
    parse_header_with_id(name, pack_len, tail).map(|r| r.map(|(_, e)| e))
}

/// Like [`parse_header`], also returning the pack id the header hashes to.
pub fn parse_header_with_id(
    name: &str,
    pack_len: u64,
    tail: &[u8],
) -> Result<std::result::Result<(Id, Vec<BlobEntry>), usize>> {
    let corrupt = |reason: &str| Error::Corrupt {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if tail.len() < TRAILER_LEN || &tail[tail.len() - 8..] != PACK_MAGIC {
        return Err(corrupt("not a pack (bad magic)"));
    }
    let hlen =
        u32::from_le_bytes(tail[tail.len() - 12..tail.len() - 8].try_into().unwrap()) as usize;
    let need = hlen + TRAILER_LEN;
    if need as u64 > pack_len {
        return Err(corrupt("header length exceeds pack size"));
    }
    if tail.len() < need {
        return Ok(Err(need));
    }
    let header = &tail[tail.len() - need..tail.len() - TRAILER_LEN];
    if header.len() < 36 {
        return Err(corrupt("header too short"));
    }
    let (body, sum) = header.split_at(header.len() - 32);
    let id = Id::hash(body);
    if id.0 != sum {
        return Err(corrupt("header checksum mismatch"));
    }
    let n = u32::from_le_bytes(body[..4].try_into().unwrap()) as usize;
    if body.len() != 4 + n * ENTRY_LEN {
        return Err(corrupt("header entry count mismatch"));
    }
    let data_end = pack_len - need as u64;
    let mut entries = Vec::with_capacity(n);
    for chunk in body[4..].chunks_exact(ENTRY_LEN) {
        let e = BlobEntry::decode(chunk).ok_or_else(|| corrupt("bad header entry"))?;
        if e.offset as u64 + e.length as u64 > data_end {
            return Err(corrupt("blob extends past the data area"));
        }
        entries.push(e);
    }
    Ok(Ok((id, entries)))
}

/// Turn a stored blob back into plaintext and verify it against its id.
pub fn open_blob(pack: Id, e: &BlobEntry, stored: &[u8]) -> Result<Vec<u8>> {
    let damaged = |reason: String| Error::DamagedBlob {
        id: e.id,
        pack,
        reason,
    };
    let plain = match e.compression {
        Compression::None => stored.to_vec(),
        Compression::Zstd => zstd::bulk::decompress(stored, e.raw_length as usize)
            .map_err(|err| damaged(format!("decompressing: {err}")))?,
    };
    if plain.len() != e.raw_length as usize {
        return Err(damaged("wrong length".into()));
    }
    if Id::hash(&plain) != e.id {
        return Err(damaged("content does not match its blake3 id".into()));
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trip_and_corruption() {
        let mut w = PackWriter::default();
        let a = b"hello world".to_vec();
        let b = vec![7u8; 10000];
        let bz = zstd::bulk::compress(&b, 1).unwrap();
        w.add(BlobKind::Data, Id::hash(&a), Compression::None, &a, a.len());
        w.add(
            BlobKind::Tree,
            Id::hash(&b),
            Compression::Zstd,
            &bz,
            b.len(),
        );
        let (id, bytes, entries) = w.finish();
        let (hid, _) = parse_header_with_id("p", bytes.len() as u64, &bytes)
            .unwrap()
            .unwrap();
        assert_eq!(id, hid);
        let parsed = parse_header("p", bytes.len() as u64, &bytes)
            .unwrap()
            .unwrap();
        assert_eq!(parsed, entries);
        for e in &parsed {
            let s = &bytes[e.offset as usize..(e.offset + e.length) as usize];
            let p = open_blob(id, e, s).unwrap();
            assert_eq!(Id::hash(&p), e.id);
        }
        let mut bad = bytes.clone();
        bad[3] ^= 1;
        let e = &parsed[0];
        let s = &bad[e.offset as usize..(e.offset + e.length) as usize];
        assert!(matches!(
            open_blob(id, e, s),
            Err(Error::DamagedBlob { .. })
        ));
        let mut badh = bytes.clone();
        let n = badh.len();
        badh[n - 20] ^= 1;
        assert!(parse_header("p", n as u64, &badh).is_err());
    }
}
