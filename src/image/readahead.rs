//! A read-ahead buffer that survives seeks.
//!
//! The `gpt` crate reads a partition table one 128-byte entry at a time,
//! each after a seek, and `fatfs` reads a file one cluster at a time (512
//! bytes on a small FAT32 ESP), also after a seek. Straight on a file that
//! is two syscalls per entry or cluster: about 1,300 for discovering one
//! image and 50,000 for loading a 13 MB UKI, which under QEMU's TCG took
//! most of a second. `std::io::BufReader` does not help, because it drops
//! its buffer on every seek. [`ReadAhead`] keeps a few aligned chunks and
//! serves any read that falls inside one, wherever the position came from.

use std::io::{self, Read, Seek, SeekFrom};

/// The chunk read at a time: a few of discovery's scattered reads share
/// one, and a large file streams in a few hundred reads.
pub const DEFAULT_CHUNK: usize = 128 * 1024;

/// How many chunks stay cached. fatfs alternates between the FAT (to find
/// the next cluster) and the data area; with one chunk, every cluster of a
/// file would refill it twice.
const SLOTS: usize = 4;

/// `Read + Seek` over `inner`, reading it in aligned chunks of `chunk`
/// bytes and keeping the [`SLOTS`] most recently used ones. Reads of a whole
/// chunk or more bypass the cache.
pub struct ReadAhead<R> {
    inner: R,
    /// Cached chunks, most recently used first: (start in `inner`, bytes).
    chunks: Vec<(u64, Vec<u8>)>,
    pos: u64,
    chunk: usize,
}

impl<R: Read + Seek> ReadAhead<R> {
    pub fn new(inner: R) -> Self {
        Self::with_chunk(inner, DEFAULT_CHUNK)
    }

    /// As [`ReadAhead::new`] with another chunk size (at least 512 bytes).
    pub fn with_chunk(inner: R, chunk: usize) -> Self {
        ReadAhead {
            inner,
            chunks: Vec::with_capacity(SLOTS),
            pos: 0,
            chunk: chunk.max(512),
        }
    }

    /// Moves the cached chunk holding `pos` to the front; false if none does.
    fn find(&mut self) -> bool {
        let pos = self.pos;
        let hit = self.chunks.iter().position(|(start, data)| {
            pos.checked_sub(*start)
                .is_some_and(|skip| skip < data.len() as u64)
        });
        match hit {
            Some(i) => {
                if let Some(slice) = self.chunks.get_mut(..=i) {
                    slice.rotate_right(1);
                }
                true
            }
            None => false,
        }
    }

    /// The cached bytes from `pos` on, in the front chunk.
    fn buffered(&self) -> Option<&[u8]> {
        let (start, data) = self.chunks.first()?;
        let skip = usize::try_from(self.pos.checked_sub(*start)?).ok()?;
        data.get(skip..).filter(|rest| !rest.is_empty())
    }

    /// Reads the aligned chunk that holds `pos` into the front slot.
    fn fill(&mut self) -> io::Result<()> {
        let start = self.pos - self.pos % self.chunk as u64;
        // read_to_end fills the buffer's spare capacity without zeroing it
        // first, and a recycled buffer keeps its capacity. Zeroing 128 KiB
        // per fill was over half of a scan's CPU time at opt-level "z",
        // where resize() is a byte-by-byte loop.
        let mut data = if self.chunks.len() >= SLOTS {
            self.chunks.pop().map(|(_, d)| d).unwrap_or_default()
        } else {
            Vec::with_capacity(self.chunk)
        };
        data.clear();
        self.inner.seek(SeekFrom::Start(start))?;
        (&mut self.inner)
            .take(self.chunk as u64)
            .read_to_end(&mut data)?;
        self.chunks.insert(0, (start, data));
        Ok(())
    }
}

impl<R: Read + Seek> Read for ReadAhead<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if !self.find() {
            if out.len() >= self.chunk {
                self.inner.seek(SeekFrom::Start(self.pos))?;
                let n = self.inner.read(out)?;
                self.pos += n as u64;
                return Ok(n);
            }
            self.fill()?;
        }
        let Some(rest) = self.buffered() else {
            return Ok(0); // End of the inner reader.
        };
        let n = rest.len().min(out.len());
        out.get_mut(..n)
            .zip(rest.get(..n))
            .map(|(dst, src)| dst.copy_from_slice(src))
            .ok_or_else(|| io::Error::other("read-ahead buffer bounds"))?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for ReadAhead<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => {
                let end = self.inner.seek(SeekFrom::End(0))?;
                end.checked_add_signed(d)
            }
        };
        self.pos = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )
        })?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// Counts the reads that reach the inner reader.
    struct Counting {
        inner: Cursor<Vec<u8>>,
        reads: usize,
    }

    impl Read for Counting {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            self.inner.read(out)
        }
    }

    impl Seek for Counting {
        fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
            self.inner.seek(to)
        }
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn reads_after_seeks_match_the_inner_bytes() {
        let bytes = data(10_000);
        let mut r = ReadAhead::with_chunk(Cursor::new(bytes.clone()), 1024);
        for &(at, len) in &[
            (0usize, 10usize),
            (5000, 300),
            (1020, 10),
            (9990, 10),
            (3, 2048),
        ] {
            r.seek(SeekFrom::Start(at as u64)).unwrap();
            let mut out = vec![0; len];
            r.read_exact(&mut out).unwrap();
            assert_eq!(out, bytes[at..at + len], "at {at}, len {len}");
        }
    }

    #[test]
    fn small_reads_inside_one_chunk_reach_the_inner_reader_once() {
        let inner = Counting {
            inner: Cursor::new(data(4096)),
            reads: 0,
        };
        let mut r = ReadAhead::with_chunk(inner, 4096);
        for entry in 0..16u64 {
            r.seek(SeekFrom::Start(entry * 128)).unwrap();
            let mut out = [0u8; 128];
            r.read_exact(&mut out).unwrap();
        }
        // One read fills the chunk; a second one sees the end of the data.
        assert!(r.inner.reads <= 2, "{} inner reads", r.inner.reads);
    }

    #[test]
    fn alternating_between_two_regions_keeps_both_cached() {
        let inner = Counting {
            inner: Cursor::new(data(64 * 1024)),
            reads: 0,
        };
        // Like fatfs: a FAT entry near the start, then a cluster further on.
        let mut r = ReadAhead::with_chunk(inner, 4096);
        for cluster in 0..8u64 {
            r.seek(SeekFrom::Start(16 + cluster * 4)).unwrap();
            r.read_exact(&mut [0u8; 4]).unwrap();
            r.seek(SeekFrom::Start(32 * 1024 + cluster * 512)).unwrap();
            r.read_exact(&mut [0u8; 512]).unwrap();
        }
        assert_eq!(r.inner.reads, 2);
    }

    #[test]
    fn reading_at_the_end_returns_zero() {
        let mut r = ReadAhead::with_chunk(Cursor::new(data(100)), 512);
        assert_eq!(r.seek(SeekFrom::End(0)).unwrap(), 100);
        let mut out = [0u8; 8];
        assert_eq!(r.read(&mut out).unwrap(), 0);
        r.seek(SeekFrom::End(-4)).unwrap();
        assert_eq!(r.read(&mut out).unwrap(), 4);
    }

    #[test]
    fn seek_before_the_start_is_an_error() {
        let mut r = ReadAhead::new(Cursor::new(data(100)));
        assert!(r.seek(SeekFrom::Current(-1)).is_err());
        assert!(r.seek(SeekFrom::End(-101)).is_err());
    }

    #[test]
    fn whole_file_streams_through_in_large_reads() {
        let bytes = data(300_000);
        let mut r = ReadAhead::with_chunk(Cursor::new(bytes.clone()), 4096);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, bytes);
    }
}
