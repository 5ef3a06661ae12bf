//! An ext4 filesystem (the `ext4-view` crate) over one partition of an
//! image, read-only.
//!
//! ext4-view keeps its reader as a `Box<dyn Ext4Read>`, which must own
//! what it reads ('static), while discovery and boot hold the image only
//! as a borrowed `&mut R`. So the filesystem work runs on a scoped worker
//! thread whose reader asks this thread for bytes over a rendezvous
//! channel, and this thread answers each request from a read-only
//! [`Window`] on the partition. Nothing else crosses: the worker sees no
//! byte outside the partition, and the window refuses every write.
//!
//! ext4-view never writes. When a journal says it needs recovery, the
//! crate reads the committed blocks from the journal in memory instead of
//! the stale ones on disk; the image is not changed (tests/boot_dir.rs
//! checks its sha256).
//!
//! Before the worker starts, the superblock is checked here: its magic,
//! and that the blocks it claims fit in the partition and make at most
//! [`MAX_BLOCK_GROUPS`] groups, because ext4-view reserves memory for
//! every block group descriptor before reading one.

use super::bytes::{le_u16, le_u32};
use super::window::Window;
use crate::model::ByteRange;
use ext4_view::{Ext4, Ext4Error, Ext4Read};
use std::io::{self, Read, Seek, SeekFrom};
use std::rc::Rc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// The ext4 superblock: 1024 bytes at byte 1024 of the filesystem.
const SUPERBLOCK_AT: u64 = 1024;
const SUPERBLOCK_LEN: usize = 1024;
const EXT4_MAGIC: u16 = 0xEF53;
/// `INCOMPAT_64BIT`: the block count has a high half at 0x150.
const INCOMPAT_64BIT: u32 = 0x80;
/// The largest block size ext4 allows (64 KiB, `s_log_block_size` 6).
const MAX_LOG_BLOCK_SIZE: u32 = 6;
/// The most block groups accepted. A fixed VHD holds at most 2040 GiB,
/// which with 4 KiB blocks is 16,320 groups of 128 MiB; a filesystem made
/// with smaller groups may have more, but each group costs a descriptor
/// read and kept in memory before anything else is read.
pub const MAX_BLOCK_GROUPS: u64 = 1 << 18;
/// The largest single read the worker may ask for. ext4-view reads at
/// most 32 KiB of blocks at a time, or one block of up to 64 KiB.
const MAX_READ: usize = 1024 * 1024;
/// The worker's stack: ext4-view walks paths and extent trees in loops,
/// not by recursion, so this is room to spare.
const WORKER_STACK: usize = 1024 * 1024;

/// Why a partition could not be read as ext4 at all.
#[derive(Debug, thiserror::Error)]
pub enum Ext4OpenError {
    #[error("it holds no ext4 filesystem (no ext2/3/4 magic in its superblock)")]
    NotExt4,
    #[error("cannot read its superblock: {0}")]
    Superblock(io::Error),
    #[error(
        "its ext4 superblock claims {claimed} bytes, more than the {len}-byte partition; the filesystem is damaged or was cut short"
    )]
    LargerThanPartition { claimed: u128, len: u64 },
    #[error(
        "its ext4 superblock is damaged ({0}); check the filesystem with `e2fsck -n` on a copy"
    )]
    BadSuperblock(&'static str),
    #[error("cannot start the ext4 reader: {0}; the machine is short of memory")]
    Spawn(io::Error),
    #[error("the ext4 reader stopped without an answer (it failed on this filesystem)")]
    WorkerDied,
    #[error("writing what was read failed: {0}")]
    Output(io::Error),
}

/// What the worker asks of the thread holding the image.
enum Ask {
    /// `len` bytes at `offset` inside the partition.
    Read { offset: u64, len: usize },
    /// Bytes for the caller's output (a kernel going to its memfd).
    Emit(Vec<u8>),
}

/// The answer to an [`Ask`]: the bytes read (empty for `Emit`), or why not.
type Answer = Result<Vec<u8>, String>;

struct Channel {
    ask: SyncSender<Ask>,
    answer: Receiver<Answer>,
}

impl Channel {
    fn call(&self, ask: Ask) -> Answer {
        self.ask
            .send(ask)
            .map_err(|_| "the image reader has gone".to_string())?;
        self.answer
            .recv()
            .map_err(|_| "the image reader has gone".to_string())?
    }
}

/// The worker's side: it loads the filesystem and may send output bytes.
pub struct Ext4Link(Rc<Channel>);

impl Ext4Link {
    /// Loads the filesystem: its superblock, block group descriptors and,
    /// when it needs recovery, its journal (in memory).
    pub fn load(&self) -> Result<Ext4, Ext4Error> {
        Ext4::load(Box::new(LinkReader(Rc::clone(&self.0))))
    }

    /// Hands `bytes` to the caller's output; an error means the output
    /// failed (the caller keeps its cause) and the work should stop.
    pub fn emit(&self, bytes: Vec<u8>) -> Result<(), String> {
        self.0.call(Ask::Emit(bytes)).map(drop)
    }
}

struct LinkReader(Rc<Channel>);

impl Ext4Read for LinkReader {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        let bytes = self.0.call(Ask::Read {
            offset: start_byte,
            len: dst.len(),
        })?;
        if bytes.len() != dst.len() {
            return Err(format!(
                "read {} of {} bytes at byte {start_byte} of the partition",
                bytes.len(),
                dst.len()
            )
            .into());
        }
        dst.copy_from_slice(&bytes);
        Ok(())
    }
}

/// What the superblock says, once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    pub uuid: [u8; 16],
}

impl Superblock {
    /// The UUID as `blkid` and `root=UUID=` write it.
    pub fn uuid_string(&self) -> String {
        let h: Vec<String> = self.uuid.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            h[..4].concat(),
            h[4..6].concat(),
            h[6..8].concat(),
            h[8..10].concat(),
            h[10..].concat()
        )
    }
}

/// Checks the 1024 superblock bytes of a partition of `len` bytes.
pub fn check_superblock(sb: &[u8], len: u64) -> Result<Superblock, Ext4OpenError> {
    let field = |at| le_u32(sb, at).ok_or(Ext4OpenError::BadSuperblock("it is cut short"));
    if le_u16(sb, 0x38) != Some(EXT4_MAGIC) {
        return Err(Ext4OpenError::NotExt4);
    }
    let log_block_size = field(0x18)?;
    if log_block_size > MAX_LOG_BLOCK_SIZE {
        return Err(Ext4OpenError::BadSuperblock(
            "its block size is over 64 KiB",
        ));
    }
    let block_size = 1024u64 << log_block_size;
    let mut blocks = u64::from(field(0x4)?);
    if field(0x60)? & INCOMPAT_64BIT != 0 {
        blocks |= u64::from(field(0x150)?) << 32;
    }
    let claimed = u128::from(blocks) * u128::from(block_size);
    if claimed > u128::from(len) {
        return Err(Ext4OpenError::LargerThanPartition { claimed, len });
    }
    let per_group = u64::from(field(0x20)?);
    if per_group == 0 {
        return Err(Ext4OpenError::BadSuperblock("it has zero blocks per group"));
    }
    let first = u64::from(field(0x14)?);
    let groups = blocks.saturating_sub(first).div_ceil(per_group);
    if groups > MAX_BLOCK_GROUPS {
        return Err(Ext4OpenError::BadSuperblock(
            "it has more block groups than any image vhdboot can boot",
        ));
    }
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(
        sb.get(0x68..0x78)
            .ok_or(Ext4OpenError::BadSuperblock("it is cut short"))?,
    );
    Ok(Superblock { uuid })
}

/// Runs `work` over the ext4 filesystem in `range` of `image`, and
/// returns its result. `out` receives whatever `work` emits, in order.
/// Fails without running `work` when the partition holds no sound ext4
/// superblock.
pub fn with_ext4<R, T, W>(
    image: &mut R,
    range: ByteRange,
    out: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    work: W,
) -> Result<T, Ext4OpenError>
where
    R: Read + Seek,
    T: Send,
    W: FnOnce(&Ext4Link, Superblock) -> T + Send,
{
    let mut window = Window::new(&mut *image, range.offset, range.len);
    let sb_bytes =
        read_at(&mut window, SUPERBLOCK_AT, SUPERBLOCK_LEN).map_err(Ext4OpenError::Superblock)?;
    let superblock = check_superblock(&sb_bytes, range.len)?;
    let (ask_tx, ask_rx) = sync_channel::<Ask>(0);
    let (answer_tx, answer_rx) = sync_channel::<Answer>(0);
    let mut out_error: Option<io::Error> = None;
    let result = std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("ext4".to_string())
            .stack_size(WORKER_STACK)
            .spawn_scoped(scope, move || {
                let link = Ext4Link(Rc::new(Channel {
                    ask: ask_tx,
                    answer: answer_rx,
                }));
                work(&link, superblock)
            })
            .map_err(Ext4OpenError::Spawn)?;
        // The loop ends when the worker is done and its sender is dropped.
        for ask in ask_rx.iter() {
            let answer = match ask {
                Ask::Read { offset, len } if len > MAX_READ => Err(format!(
                    "a {len}-byte read at byte {offset} is more than the {MAX_READ} bytes allowed"
                )),
                Ask::Read { offset, len } => {
                    read_at(&mut window, offset, len).map_err(|e| e.to_string())
                }
                Ask::Emit(bytes) => match out(&bytes) {
                    Ok(()) => Ok(Vec::new()),
                    Err(e) => {
                        let shown = e.to_string();
                        out_error = Some(e);
                        Err(shown)
                    }
                },
            };
            if answer_tx.send(answer).is_err() {
                break;
            }
        }
        worker.join().map_err(|_| Ext4OpenError::WorkerDied)
    });
    match out_error {
        Some(e) => Err(Ext4OpenError::Output(e)),
        None => result,
    }
}

/// Exactly `len` bytes at `offset` of the window, or an error.
fn read_at<R: Read + Seek>(w: &mut Window<R>, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    w.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; len];
    w.read_exact(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn superblock(blocks: u32, log_block: u32, per_group: u32) -> Vec<u8> {
        let mut sb = vec![0u8; SUPERBLOCK_LEN];
        sb[0x4..0x8].copy_from_slice(&blocks.to_le_bytes());
        sb[0x18..0x1c].copy_from_slice(&log_block.to_le_bytes());
        sb[0x20..0x24].copy_from_slice(&per_group.to_le_bytes());
        sb[0x38..0x3a].copy_from_slice(&EXT4_MAGIC.to_le_bytes());
        sb[0x68..0x78].copy_from_slice(&[
            0x3e, 0x8b, 0x8c, 0x0b, 0x2f, 0x27, 0x4d, 0x5e, 0x9b, 0x1b, 0x7f, 0x1a, 0x2c, 0x9e,
            0x0d, 0x11,
        ]);
        sb
    }

    #[test]
    fn a_sound_superblock_gives_its_uuid_as_blkid_writes_it() {
        let sb = check_superblock(&superblock(1024, 2, 32768), 4 << 20).unwrap();
        assert_eq!(sb.uuid_string(), "3e8b8c0b-2f27-4d5e-9b1b-7f1a2c9e0d11");
    }

    #[test]
    fn a_superblock_claiming_more_than_its_partition_is_refused() {
        let err = check_superblock(&superblock(1025, 2, 32768), 4 << 20).unwrap_err();
        assert!(
            matches!(err, Ext4OpenError::LargerThanPartition { .. }),
            "{err}"
        );
    }

    #[test]
    fn too_many_block_groups_and_odd_sizes_are_refused() {
        let many = check_superblock(&superblock(u32::MAX, 0, 1), u64::MAX).unwrap_err();
        assert!(many.to_string().contains("more block groups"), "{many}");
        let big = check_superblock(&superblock(1, 7, 1), u64::MAX).unwrap_err();
        assert!(big.to_string().contains("over 64 KiB"), "{big}");
        let zero = check_superblock(&superblock(1, 0, 0), u64::MAX).unwrap_err();
        assert!(zero.to_string().contains("zero blocks per group"), "{zero}");
        assert!(matches!(
            check_superblock(&[0u8; 1024], 1 << 20),
            Err(Ext4OpenError::NotExt4)
        ));
        assert!(matches!(
            check_superblock(&[], 1 << 20),
            Err(Ext4OpenError::NotExt4)
        ));
    }

    #[test]
    fn a_partition_without_ext4_never_starts_the_worker() {
        let mut image = std::io::Cursor::new(vec![0u8; 8192]);
        let range = ByteRange {
            offset: 0,
            len: 8192,
        };
        let got = with_ext4(&mut image, range, &mut |_| Ok(()), |_, _| 1);
        assert!(matches!(got, Err(Ext4OpenError::NotExt4)));
    }
}
