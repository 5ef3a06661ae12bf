//! Bounded, read-only views of a reader: a partition inside an image, or the
//! data area of a VHD (the file without its 512-byte footer).
//!
//! The `gpt` and `fatfs` crates want `Read + Write + Seek`. [`Window`]
//! implements `Write` by always failing, so discovery cannot write to a user's
//! disk even if a library tries (shared/design.md, data-safety invariants).

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The message every refused write carries.
const READ_ONLY: &str = "read-only: vhdboot never writes during discovery";

/// A `Read + Seek` view of the bytes `[offset, offset + len)` of `inner`.
///
/// Positions are relative to `offset`; `SeekFrom::End` is relative to `len`,
/// so the `gpt` crate finds the backup header at the window's last sector.
/// Reads stop at `len`. Writes always fail with `PermissionDenied`.
pub struct Window<R> {
    inner: R,
    offset: u64,
    len: u64,
    pos: u64,
}

impl<R: Read + Seek> Window<R> {
    /// A view of `len` bytes of `inner` starting at `offset`. The inner
    /// reader's own length is not checked here: reading past its end simply
    /// returns fewer bytes, as a short file would.
    pub fn new(inner: R, offset: u64, len: u64) -> Window<R> {
        Window {
            inner,
            offset,
            len,
            pos: 0,
        }
    }

    /// Where this window starts inside the inner reader.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// How many bytes the window covers.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the window covers no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Gives the inner reader back.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R> fmt::Debug for Window<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Window")
            .field("offset", &self.offset)
            .field("len", &self.len)
            .field("pos", &self.pos)
            .finish()
    }
}

impl<R: Read + Seek> Read for Window<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let remaining = self.len.saturating_sub(self.pos);
        if remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let start = self.offset.checked_add(self.pos).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "window position overflows u64")
        })?;
        self.inner.seek(SeekFrom::Start(start))?;
        let buf = buf.get_mut(..want).unwrap_or_default();
        let n = self.inner.read(buf)?;
        self.pos = self.pos.saturating_add(n as u64);
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for Window<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(n) => {
                self.pos = n;
                Ok(n)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("seek to {to:?} leaves the window of {} bytes", self.len),
            )),
        }
    }
}

impl<R> Write for Window<R> {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::PermissionDenied, READ_ONLY))
    }

    fn flush(&mut self) -> io::Result<()> {
        // Nothing was ever written, so there is nothing to flush; failing
        // here would only make fatfs log noise on drop.
        Ok(())
    }
}

/// A shared count of bytes read, so a caller can report how much of an
/// image `inspect` touched.
#[derive(Debug, Clone, Default)]
pub struct ReadCounter(Arc<AtomicU64>);

impl ReadCounter {
    pub fn new() -> ReadCounter {
        ReadCounter::default()
    }

    /// Bytes read so far through every reader sharing this counter.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn add(&self, n: usize) {
        self.0.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Counts the bytes read through it into a [`ReadCounter`].
pub struct CountingReader<R> {
    inner: R,
    counter: ReadCounter,
}

impl<R> CountingReader<R> {
    pub fn new(inner: R, counter: ReadCounter) -> CountingReader<R> {
        CountingReader { inner, counter }
    }

    pub fn counter(&self) -> &ReadCounter {
        &self.counter
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R> fmt::Debug for CountingReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountingReader")
            .field("read", &self.counter.get())
            .finish()
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.add(n);
        Ok(n)
    }
}

impl<R: Seek> Seek for CountingReader<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.inner.seek(to)
    }
}

impl<R> Write for CountingReader<R> {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::PermissionDenied, READ_ONLY))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn bytes() -> Cursor<Vec<u8>> {
        Cursor::new((0u8..=99).collect())
    }

    #[test]
    fn window_reads_only_its_range() {
        let mut w = Window::new(bytes(), 10, 5);
        let mut out = Vec::new();
        w.read_to_end(&mut out).unwrap();
        assert_eq!(out, vec![10, 11, 12, 13, 14]);
    }

    #[test]
    fn seek_from_end_is_relative_to_the_window() {
        let mut w = Window::new(bytes(), 10, 20);
        assert_eq!(w.seek(SeekFrom::End(-2)).unwrap(), 18);
        let mut b = [0u8; 4];
        let n = w.read(&mut b).unwrap();
        assert_eq!(&b[..n], &[28, 29]);
    }

    #[test]
    fn seek_before_start_is_an_error() {
        let mut w = Window::new(bytes(), 10, 20);
        assert!(w.seek(SeekFrom::Current(-1)).is_err());
    }

    #[test]
    fn reading_past_the_end_returns_nothing() {
        let mut w = Window::new(bytes(), 10, 20);
        w.seek(SeekFrom::Start(25)).unwrap();
        let mut b = [0u8; 4];
        assert_eq!(w.read(&mut b).unwrap(), 0);
    }

    #[test]
    fn window_refuses_every_write() {
        let mut w = Window::new(bytes(), 0, 10);
        let err = w.write(&[1, 2, 3]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("never writes"));
    }

    #[test]
    fn counting_reader_counts_bytes_read() {
        let counter = ReadCounter::new();
        let r = CountingReader::new(bytes(), counter.clone());
        let mut w = Window::new(r, 0, 30);
        let mut b = [0u8; 7];
        w.read_exact(&mut b).unwrap();
        w.seek(SeekFrom::Start(20)).unwrap();
        w.read_exact(&mut b).unwrap();
        assert_eq!(counter.get(), 14);
    }
}
