//! Content-defined chunking (FastCDC 2020) over a stream, with one reusable
//! buffer of twice the largest chunk: memory stays bounded whatever the
//! file size, and each byte is copied at most once inside the buffer.

use std::io::{self, Read};

use fastcdc::v2020::{Normalization, cut, select_masks};

use crate::repo::ChunkerParams;

/// Why chunking stopped.
#[derive(Debug)]
pub enum ChunkError<E> {
    /// Reading the source failed.
    Read(io::Error),
    /// The chunk consumer failed.
    Sink(E),
}

/// A reusable streaming chunker.
#[derive(Debug)]
pub struct Chunker {
    params: ChunkerParams,
    masks: (u64, u64),
    buf: Vec<u8>,
}

impl Chunker {
    /// A chunker with these parameters.
    pub fn new(params: ChunkerParams) -> Chunker {
        Chunker {
            params,
            masks: select_masks(params.avg as usize, Normalization::Level1),
            buf: Vec::new(),
        }
    }

    /// Cut `r` into chunks and hand each to `sink`, in order. Returns the
    /// number of bytes read.
    pub fn chunk<R: Read, E>(
        &mut self,
        mut r: R,
        mut sink: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<u64, ChunkError<E>> {
        let (min, avg, max) = (
            self.params.min as usize,
            self.params.avg as usize,
            self.params.max as usize,
        );
        let cap = 2 * max;
        if self.buf.len() < cap {
            self.buf.resize(cap, 0);
        }
        let (ms, ml) = self.masks;
        let (mut start, mut end, mut eof, mut total) = (0usize, 0usize, false, 0u64);
        loop {
            if !eof && end - start < max {
                if start > 0 {
                    self.buf.copy_within(start..end, 0);
                    end -= start;
                    start = 0;
                }
                while end < cap {
                    match r.read(&mut self.buf[end..cap]) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(n) => {
                            end += n;
                            total += n as u64;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(ChunkError::Read(e)),
                    }
                }
            }
            if start == end {
                return Ok(total);
            }
            let (_, n) = cut(
                &self.buf[start..end],
                min,
                avg,
                max,
                ms,
                ml,
                ms << 1,
                ml << 1,
            );
            sink(&self.buf[start..start + n]).map_err(ChunkError::Sink)?;
            start += n;
        }
    }

    /// Free the buffer (after a run).
    pub fn shrink(&mut self) {
        self.buf = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(data: &[u8]) -> Vec<Vec<u8>> {
        let mut c = Chunker::new(ChunkerParams {
            min: 4096,
            avg: 16384,
            max: 65536,
        });
        let mut out = Vec::new();
        c.chunk(data, |ch| -> Result<(), ()> {
            out.push(ch.to_vec());
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn chunks_concatenate_and_resync_after_insert() {
        let mut x: u64 = 12345;
        let data: Vec<u8> = (0..1_000_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let a = chunks(&data);
        assert_eq!(a.concat(), data);
        assert!(a.iter().all(|c| c.len() <= 65536));
        assert!(a.len() > 20);
        let mut edited = data.clone();
        edited.splice(1000..1000, [1u8; 100]);
        let b = chunks(&edited);
        assert_eq!(b.concat(), edited);
        let same = b.iter().filter(|c| a.contains(c)).count();
        assert!(same >= a.len() - 2, "{same} of {}", a.len());
        assert_eq!(chunks(b"").len(), 0);
        assert_eq!(chunks(b"small"), vec![b"small".to_vec()]);
    }
}
