//! The ring file: a 4096-byte header and a data area of records, mapped shared by tickgate (the
//! writer) and the game (the reader). Layout and protocol: `docs/frame-ring.md`.

use std::{
    collections::VecDeque,
    fs::{File, OpenOptions},
    io,
    os::{
        fd::AsFd as _,
        unix::fs::{OpenOptionsExt as _, fchown},
    },
    path::{Path, PathBuf},
    ptr::NonNull,
    sync::atomic::{AtomicU32, AtomicU64, Ordering, fence},
    time::Duration,
};

use crate::sys;

/// The first 8 bytes of a ring file.
pub const MAGIC: [u8; 8] = *b"TGRING01";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Bytes before the data area.
pub const HEADER_LEN: usize = 4096;
/// Records start at multiples of this, and take a multiple of it.
pub const ALIGN: u64 = 16;
/// Bytes of a record's head (length, kind, sequence number).
pub const RECORD_HEAD_LEN: usize = 16;
/// Tries of one `read` before it gives up on a ring whose positions keep moving under it.
const MAX_ATTEMPTS: usize = 64;
/// The default data area: 1 MiB, about 4 s of a 4-player match at 1 kHz.
pub const DEFAULT_CAPACITY: u64 = 1 << 20;

/// Offsets of the header's fields (little-endian).
pub mod offset {
    /// `"TGRING01"`.
    pub const MAGIC: usize = 0;
    /// `u32` format version.
    pub const VERSION: usize = 8;
    /// `u32` bytes before the data area (4096).
    pub const HEADER_LEN: usize = 12;
    /// `u64` bytes of the data area, a power of two.
    pub const CAPACITY: usize = 16;
    /// `u64` the match.
    pub const MATCH_ID: usize = 24;
    /// `u32` the match's ticks per second.
    pub const TICK_HZ: usize = 32;
    /// `u32` the writing process.
    pub const WRITER_PID: usize = 36;
    /// `u64` bytes ever written to the data area (the writer's, release-stored).
    pub const WRITE_POS: usize = 64;
    /// `u64` position of the oldest record still intact (the writer's, stored before it
    /// overwrites anything).
    pub const OLDEST_POS: usize = 72;
    /// `u64` records written.
    pub const RECORDS: usize = 80;
    /// `u32` futex word, incremented after every publish.
    pub const WAKE: usize = 88;
    /// `u32` 0 open, 1 the match ended (nothing more comes), 2 the writer stopped.
    pub const STATE: usize = 92;
    /// `u64` records the writer overwrote before the reader's `READ_POS` passed them.
    pub const OVERWRITTEN_UNREAD: usize = 96;
    /// `u64` the reader's position (the reader's; the writer only reads it, to count).
    pub const READ_POS: usize = 128;
    /// `u32` the reading process.
    pub const READER_PID: usize = 136;
    /// `u64` the sequence number the reader expects next (the reader's).
    pub const READ_SEQ: usize = 144;
}

/// Record kinds.
pub mod kind {
    /// Filler up to the end of the data area; skip it.
    pub const PAD: u16 = 0;
    /// The match started: `match_id:u64 tick_hz:u32 reserved:u32 epoch_ns:u64`.
    pub const MATCH_START: u16 = 1;
    /// A sealed frame (`game::record`).
    pub const FRAME: u16 = 2;
    /// The match ended: `last_tick:u64`.
    pub const MATCH_END: u16 = 3;
    /// The game's message to every player of the match, with its next frame: the bytes.
    pub const TO_MATCH: u16 = 16;
    /// The game's message to one player: `player:u64` and the bytes.
    pub const TO_PLAYER: u16 = 17;
}

/// Why a ring cannot be made or read.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    /// The file could not be created, sized or mapped.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Not a ring of this version, or a header that contradicts the file.
    #[error("{} is not a tickgate frame ring this build reads: {why}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: &'static str,
    },
    /// The capacity is not a power of two of at least 4096 bytes.
    #[error("a ring capacity of {capacity} bytes is not a power of two of at least 4096 - use e.g. 1048576")]
    Capacity {
        /// The rejected capacity.
        capacity: u64,
    },
    /// A record larger than half the data area.
    #[error("a record of {len} bytes does not fit a ring of {capacity} bytes (at most half of it)")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The data area.
        capacity: u64,
    },
}

/// A shared mapping of a ring file.
#[derive(Debug)]
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; every access goes through atomics or the
// owner's (writer's or reader's) own discipline below.
unsafe impl Send for Mapping {}

impl Mapping {
    fn map(file: &File, len: usize, writable: bool, path: &Path) -> Result<Self, RingError> {
        let ptr = sys::map_shared(file.as_fd(), len, writable).map_err(|source| RingError::Io {
            what: "mapping",
            path: path.to_owned(),
            source,
        })?;
        Ok(Self { ptr, len })
    }

    fn u64(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off.is_multiple_of(8) && off + 8 <= HEADER_LEN);
        // SAFETY: `off` is one of the header's 8-aligned fields, inside the mapping (which is
        // page-aligned and at least HEADER_LEN long), and lives as long as `self`.
        unsafe { &*self.ptr.as_ptr().add(off).cast::<AtomicU64>() }
    }

    fn u32(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off.is_multiple_of(4) && off + 4 <= HEADER_LEN);
        // SAFETY: as in `u64`, for a 4-aligned field.
        unsafe { &*self.ptr.as_ptr().add(off).cast::<AtomicU32>() }
    }

    /// The data area's byte `at` (below the capacity, which the caller checked).
    fn data(&self, at: usize) -> *mut u8 {
        debug_assert!(HEADER_LEN + at <= self.len);
        // SAFETY: inside the mapping, as the caller checked.
        unsafe { self.ptr.as_ptr().add(HEADER_LEN + at) }
    }

    /// Writes a record's head (`len`, `kind`, `seq`) and `body` at data offset `at`. The writer
    /// of either ring calls it for the record at its write position, having made room for `len`
    /// bytes before the end of the data area (a record never wraps: the caller padded) and
    /// before publishing that position: until then no reader takes those bytes as a record.
    fn write_record(&self, at: u64, kind: u16, seq: u64, len: usize, body: &[u8]) {
        let at = at as usize;
        debug_assert!(RECORD_HEAD_LEN + body.len() <= len && HEADER_LEN + at + len <= self.len);
        let mut head = [0u8; RECORD_HEAD_LEN];
        head[0..4].copy_from_slice(&(len as u32).to_le_bytes());
        head[4..6].copy_from_slice(&kind.to_le_bytes());
        head[8..16].copy_from_slice(&seq.to_le_bytes());
        // SAFETY: `at + len` is inside the data area (the caller's room, checked above in debug
        // builds), and only the ring's one writer writes from its write position on.
        unsafe {
            std::ptr::copy_nonoverlapping(head.as_ptr(), self.data(at), RECORD_HEAD_LEN);
            std::ptr::copy_nonoverlapping(body.as_ptr(), self.data(at + RECORD_HEAD_LEN), body.len());
        }
    }

    /// Copies `out.len()` bytes from the data area at `at` (in bounds, checked by the caller)
    /// with volatile reads: the writer may be overwriting them, which the reader detects after.
    fn read_into(&self, at: usize, out: &mut [u8]) {
        debug_assert!(HEADER_LEN + at + out.len() <= self.len);
        for (i, byte) in out.iter_mut().enumerate() {
            // SAFETY: in bounds (checked by the caller); a volatile read of shared memory.
            *byte = unsafe { self.data(at + i).read_volatile() };
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and nothing borrows from it past `self`.
        let _ = unsafe { sys::xsk::unmap(self.ptr, self.len) };
    }
}

fn align(len: usize) -> u64 {
    (len as u64).div_ceil(ALIGN) * ALIGN
}

/// What a writer counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RingStats {
    /// Records written (pads not counted).
    pub records: u64,
    /// Records overwritten before the reader had read them (per its read position).
    pub overwritten_unread: u64,
}

/// Creates a ring file at `path` (replacing one left by an earlier run): `mode`, group `gid`,
/// the header filled in for `match_id` at `tick_hz`, an empty data area of `capacity` bytes.
fn create_file(
    path: &Path,
    match_id: u64,
    tick_hz: u32,
    capacity: u64,
    mode: u32,
    gid: Option<u32>,
) -> Result<Mapping, RingError> {
    if !capacity.is_power_of_two() || capacity < 4096 {
        return Err(RingError::Capacity { capacity });
    }
    let io = |what: &'static str| move |source| RingError::Io { what, path: path.to_owned(), source };
    let _ = std::fs::remove_file(path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io("creating"))?;
    // The umask may have narrowed the mode; the operator's value wins.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
        .map_err(io("setting the mode of"))?;
    if let Some(gid) = gid {
        fchown(&file, None, Some(gid)).map_err(io("setting the group of"))?;
    }
    let len = HEADER_LEN + capacity as usize;
    file.set_len(len as u64).map_err(io("sizing"))?;
    let map = Mapping::map(&file, len, true, path)?;
    // SAFETY: the first 8 bytes of the fresh mapping; no reader can trust the file before
    // the magic and version are in, and those are written here first.
    unsafe { std::ptr::copy_nonoverlapping(MAGIC.as_ptr(), map.ptr.as_ptr(), MAGIC.len()) };
    map.u32(offset::HEADER_LEN).store(HEADER_LEN as u32, Ordering::Relaxed);
    map.u64(offset::CAPACITY).store(capacity, Ordering::Relaxed);
    map.u64(offset::MATCH_ID).store(match_id, Ordering::Relaxed);
    map.u32(offset::TICK_HZ).store(tick_hz, Ordering::Relaxed);
    map.u32(offset::WRITER_PID).store(std::process::id(), Ordering::Relaxed);
    map.u32(offset::VERSION).store(VERSION, Ordering::Release);
    Ok(map)
}

/// tickgate's side of one match's ring.
#[derive(Debug)]
pub struct RingWriter {
    map: Mapping,
    path: PathBuf,
    capacity: u64,
    write_pos: u64,
    oldest: u64,
    seq: u64,
    /// (position, aligned length, is a pad) of every record still in the ring, oldest first:
    /// the writer's own account, never read back from the game-writable file.
    held: VecDeque<(u64, u64, bool)>,
    stats: RingStats,
}

impl RingWriter {
    /// Creates the ring file at `path` (replacing one left by an earlier run) with `mode`
    /// permissions and, if given, group `gid`, for `match_id` at `tick_hz`.
    pub fn create(
        path: &Path,
        match_id: u64,
        tick_hz: u32,
        capacity: u64,
        mode: u32,
        gid: Option<u32>,
    ) -> Result<Self, RingError> {
        let map = create_file(path, match_id, tick_hz, capacity, mode, gid)?;
        Ok(Self {
            map,
            path: path.to_owned(),
            capacity,
            write_pos: 0,
            oldest: 0,
            seq: 0,
            held: VecDeque::new(),
            stats: RingStats::default(),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What was written and overwritten unread.
    pub fn stats(&self) -> RingStats {
        self.stats
    }

    /// Appends one record of `kind` and publishes it (readers waiting on the futex wake).
    pub fn append(&mut self, kind: u16, body: &[u8]) -> Result<u64, RingError> {
        let len = RECORD_HEAD_LEN + body.len();
        let need = align(len);
        if need > self.capacity / 2 {
            return Err(RingError::TooLarge { len, capacity: self.capacity });
        }
        let room = self.capacity - self.write_pos % self.capacity;
        if room < need {
            // A record never wraps: pad to the end of the data area.
            self.make_room(room);
            self.map.write_record(self.write_pos % self.capacity, kind::PAD, 0, room as usize, &[]);
            self.held.push_back((self.write_pos, room, true));
            self.write_pos += room;
        }
        self.make_room(need);
        let seq = self.seq;
        self.map.write_record(self.write_pos % self.capacity, kind, seq, len, body);
        self.held.push_back((self.write_pos, need, false));
        self.write_pos += need;
        self.seq += 1;
        self.stats.records += 1;
        self.map.u64(offset::RECORDS).store(self.stats.records, Ordering::Relaxed);
        self.map.u64(offset::WRITE_POS).store(self.write_pos, Ordering::Release);
        self.map.u32(offset::WAKE).fetch_add(1, Ordering::Release);
        sys::futex_wake(self.map.u32(offset::WAKE));
        Ok(seq)
    }

    /// Marks the match ended (readers stop at the end of the records).
    pub fn end(&mut self) {
        self.map.u32(offset::STATE).store(1, Ordering::Release);
        self.map.u32(offset::WAKE).fetch_add(1, Ordering::Release);
        sys::futex_wake(self.map.u32(offset::WAKE));
    }

    /// Moves the oldest position past every record the next `need` bytes overwrite, and
    /// publishes it before anything is overwritten.
    fn make_room(&mut self, need: u64) {
        let read_pos = self.map.u64(offset::READ_POS).load(Ordering::Relaxed);
        let mut moved = false;
        while self.oldest + self.capacity < self.write_pos + need {
            let Some((at, len, pad)) = self.held.pop_front() else { break };
            if !pad && at >= read_pos {
                self.stats.overwritten_unread += 1;
            }
            self.oldest = at + len;
            moved = true;
        }
        if moved {
            self.map.u64(offset::OVERWRITTEN_UNREAD).store(self.stats.overwritten_unread, Ordering::Relaxed);
            self.map.u64(offset::OLDEST_POS).store(self.oldest, Ordering::Release);
            // Readers that load the oldest position after copying must see it before the bytes
            // that follow change.
            fence(Ordering::SeqCst);
        }
    }
}

impl Drop for RingWriter {
    fn drop(&mut self) {
        // Readers learn that nothing more comes, unless the match already ended.
        let _ = self.map.u32(offset::STATE).compare_exchange(0, 2, Ordering::Release, Ordering::Relaxed);
        self.map.u32(offset::WAKE).fetch_add(1, Ordering::Release);
        sys::futex_wake(self.map.u32(offset::WAKE));
    }
}

/// The game's side of a match's `.out` ring (tickgate made the file): appends messages without
/// ever overwriting what tickgate has not read (`docs/frame-ring.md`, "The game's messages").
/// The C ABI and tests use it; Go has its own (`userspace/go/ring`).
#[derive(Debug)]
pub struct GameWriter {
    map: Mapping,
    capacity: u64,
    write_pos: u64,
    seq: u64,
}

/// Why a message was not written.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum GameWriteError {
    /// tickgate has not read that far yet: try again later.
    #[error("the ring is full: tickgate has not read that far yet")]
    Full,
    /// The record would be larger than half the ring.
    #[error("a record of {len} bytes does not fit the ring")]
    TooLarge {
        /// Its length.
        len: usize,
    },
}

impl GameWriter {
    /// Opens the `.out` ring at `path` and continues after what was written into it before.
    pub fn open(path: &Path) -> Result<Self, RingError> {
        let reader = RingReader::open(path)?;
        let map = reader.map;
        let capacity = reader.capacity;
        let write_pos = map.u64(offset::WRITE_POS).load(Ordering::Acquire);
        let seq = map.u64(offset::RECORDS).load(Ordering::Acquire);
        Ok(Self { map, capacity, write_pos, seq })
    }

    /// Queues `message` for every player of the match, with its next frame.
    pub fn send_to_match(&mut self, message: &[u8]) -> Result<(), GameWriteError> {
        self.append(kind::TO_MATCH, message)
    }

    /// Queues `message` for one player.
    pub fn send_to_player(&mut self, player: u64, message: &[u8]) -> Result<(), GameWriteError> {
        let mut body = player.to_le_bytes().to_vec();
        body.extend_from_slice(message);
        self.append(kind::TO_PLAYER, &body)
    }

    fn append(&mut self, kind: u16, body: &[u8]) -> Result<(), GameWriteError> {
        let len = RECORD_HEAD_LEN + body.len();
        let need = align(len);
        if need > self.capacity / 2 {
            return Err(GameWriteError::TooLarge { len });
        }
        let read = self.map.u64(offset::READ_POS).load(Ordering::Acquire);
        let room = self.capacity - self.write_pos % self.capacity;
        let pad = if room < need { room } else { 0 };
        // Saturating: the positions were read from a file anyone with access may have written.
        if self.write_pos.saturating_add(pad).saturating_add(need).saturating_sub(read) > self.capacity {
            return Err(GameWriteError::Full);
        }
        if pad > 0 {
            self.map.write_record(self.write_pos % self.capacity, kind::PAD, 0, pad as usize, &[]);
            self.write_pos = self.write_pos.saturating_add(pad);
        }
        self.map.write_record(self.write_pos % self.capacity, kind, self.seq, len, body);
        self.write_pos = self.write_pos.saturating_add(need);
        self.seq = self.seq.saturating_add(1);
        self.map.u64(offset::RECORDS).store(self.seq, Ordering::Release);
        self.map.u64(offset::WRITE_POS).store(self.write_pos, Ordering::Release);
        Ok(())
    }
}

/// What [`RingReader::read`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read {
    /// A record.
    Record {
        /// Its kind.
        kind: u16,
        /// Its sequence number.
        seq: u64,
        /// Its body.
        body: Vec<u8>,
    },
    /// Records the writer overwrote before they were read (the next record follows the gap).
    Missed(u64),
    /// Nothing new yet.
    Empty,
    /// The match ended (state 1) or the writer stopped (state 2), and every record was read.
    Ended,
}

/// A reader of a ring (the game's side; tickgate's own tests and `tickgate ring dump` use it).
#[derive(Debug)]
pub struct RingReader {
    map: Mapping,
    capacity: u64,
    pos: u64,
    next_seq: u64,
    pending: Option<Read>,
}

impl RingReader {
    /// Opens and maps `path`, checks its header, and resumes where the previous reader of the
    /// file stopped (its read position) if that is still in the ring, else at the oldest record.
    pub fn open(path: &Path) -> Result<Self, RingError> {
        let io = |what: &'static str| move |source| RingError::Io { what, path: path.to_owned(), source };
        let format = |why: &'static str| RingError::Format { path: path.to_owned(), why };
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(io("opening"))?;
        let file_len = file.metadata().map_err(io("reading the size of"))?.len();
        if file_len < HEADER_LEN as u64 {
            return Err(format("shorter than the header"));
        }
        let head = Mapping::map(&file, HEADER_LEN, true, path)?;
        let mut magic = [0u8; 8];
        // SAFETY: the first 8 bytes of a mapping of at least HEADER_LEN bytes.
        unsafe { std::ptr::copy_nonoverlapping(head.ptr.as_ptr(), magic.as_mut_ptr(), 8) };
        if magic != MAGIC {
            return Err(format("bad magic"));
        }
        if head.u32(offset::VERSION).load(Ordering::Acquire) != VERSION {
            return Err(format("unknown version"));
        }
        if head.u32(offset::HEADER_LEN).load(Ordering::Relaxed) as usize != HEADER_LEN {
            return Err(format("unexpected header length"));
        }
        let capacity = head.u64(offset::CAPACITY).load(Ordering::Relaxed);
        if !capacity.is_power_of_two() || capacity < 4096 || HEADER_LEN as u64 + capacity != file_len {
            return Err(format("capacity does not match the file"));
        }
        drop(head);
        let map = Mapping::map(&file, HEADER_LEN + capacity as usize, true, path)?;
        map.u32(offset::READER_PID).store(std::process::id(), Ordering::Relaxed);
        let mut reader = Self { map, capacity, pos: 0, next_seq: 0, pending: None };
        let (saved, oldest, write) =
            (reader.load(offset::READ_POS), reader.load(offset::OLDEST_POS), reader.load(offset::WRITE_POS));
        reader.pos =
            if (oldest..=write).contains(&saved) && saved.is_multiple_of(ALIGN) { saved } else { oldest };
        // What the previous reader expected next: a restart reports what it missed, if anything.
        reader.next_seq = reader.load(offset::READ_SEQ);
        Ok(reader)
    }

    fn load(&self, off: usize) -> u64 {
        self.map.u64(off).load(Ordering::Acquire)
    }

    /// Creates the ring file at `path` for the game to write into (the way back:
    /// `docs/frame-ring.md`, "The game's messages") and returns tickgate's reader over it, which
    /// treats everything in it as untrusted.
    pub fn create_for_game(
        path: &Path,
        match_id: u64,
        tick_hz: u32,
        capacity: u64,
        mode: u32,
        gid: Option<u32>,
    ) -> Result<Self, RingError> {
        let map = create_file(path, match_id, tick_hz, capacity, mode, gid)?;
        Ok(Self { map, capacity, pos: 0, next_seq: 0, pending: None })
    }

    /// The match's tick rate, from the header.
    pub fn tick_hz(&self) -> u32 {
        self.map.u32(offset::TICK_HZ).load(Ordering::Relaxed)
    }

    /// The match, from the header.
    pub fn match_id(&self) -> u64 {
        self.load(offset::MATCH_ID)
    }

    /// The next record, a gap, or nothing yet. Never blocks.
    pub fn read(&mut self) -> Read {
        if let Some(read) = self.pending.take() {
            return read;
        }
        // Bounded: a writer that keeps moving the positions under the reader (a hostile one, for
        // tickgate reading a game's ring) gets `Empty`, never a spinning reader.
        for _ in 0..MAX_ATTEMPTS {
            let write = self.load(offset::WRITE_POS);
            let oldest = self.load(offset::OLDEST_POS);
            if self.pos == write {
                let state = self.map.u32(offset::STATE).load(Ordering::Acquire);
                return if state == 0 { Read::Empty } else { Read::Ended };
            }
            if oldest > write {
                // No writer of this format does that: a damaged or foreign header.
                self.pos = write;
                self.store_pos();
                return Read::Missed(0);
            }
            if self.pos < oldest || self.pos > write {
                // Lapped (or a writer that started over): jump to the oldest record; the
                // sequence numbers say how much was missed.
                self.pos = oldest;
                continue;
            }
            if !self.pos.is_multiple_of(ALIGN) {
                // Records start at multiples of 16: a position that does not is damage (and
                // would put a record head across the end of the data area).
                self.pos = write;
                self.store_pos();
                return Read::Missed(0);
            }
            let at = (self.pos % self.capacity) as usize;
            let mut head = [0u8; RECORD_HEAD_LEN];
            self.map.read_into(at, &mut head);
            let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
            let kind = u16::from_le_bytes([head[4], head[5]]);
            let seq = u64::from_le_bytes(head[8..16].try_into().unwrap_or_default());
            let room = self.capacity as usize - at;
            let sane = len >= RECORD_HEAD_LEN && align(len) <= room as u64;
            let mut body = vec![0u8; if sane { len - RECORD_HEAD_LEN } else { 0 }];
            if sane {
                self.map.read_into(at + RECORD_HEAD_LEN, &mut body);
            }
            fence(Ordering::Acquire);
            if self.load(offset::OLDEST_POS) > self.pos {
                // Overwritten while it was copied: start over from the oldest.
                continue;
            }
            if !sane {
                // Not something this writer wrote: skip to the newest position and count it as
                // a gap (a damaged or foreign file).
                self.pos = write;
                self.store_pos();
                return Read::Missed(0);
            }
            // Saturating: the positions and numbers may come from a hostile writer.
            self.pos = self.pos.saturating_add(align(len));
            self.store_pos();
            if kind == kind::PAD {
                continue;
            }
            let record = Read::Record { kind, seq, body };
            let gap = seq.saturating_sub(self.next_seq);
            self.next_seq = seq.saturating_add(1);
            self.map.u64(offset::READ_SEQ).store(self.next_seq, Ordering::Release);
            if gap > 0 {
                self.pending = Some(record);
                return Read::Missed(gap);
            }
            return record;
        }
        Read::Empty
    }

    fn store_pos(&self) {
        self.map.u64(offset::READ_POS).store(self.pos, Ordering::Release);
    }

    /// Sleeps until the writer publishes something (or `timeout`): the futex the writer wakes.
    pub fn wait(&self, timeout: Duration) {
        let word = self.map.u32(offset::WAKE);
        let seen = word.load(Ordering::Acquire);
        if self.load(offset::WRITE_POS) != self.pos
            || self.map.u32(offset::STATE).load(Ordering::Acquire) != 0
        {
            return;
        }
        sys::futex_wait(word, seen, timeout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("tickgate-ring-{}-{name}", std::process::id()))
    }

    fn records(reader: &mut RingReader) -> Vec<Read> {
        std::iter::from_fn(|| match reader.read() {
            Read::Empty | Read::Ended => None,
            r => Some(r),
        })
        .collect()
    }

    #[test]
    fn records_round_trip_and_a_new_reader_resumes_where_the_last_one_stopped() {
        let p = path("resume");
        let mut w = RingWriter::create(&p, 7, 60, 4096, 0o600, None).expect("a ring");
        for i in 0..3u8 {
            w.append(kind::FRAME, &[i; 40]).expect("fits");
        }
        let mut r = RingReader::open(&p).expect("opens");
        assert_eq!((r.match_id(), r.tick_hz()), (7, 60));
        assert_eq!(r.read(), Read::Record { kind: kind::FRAME, seq: 0, body: vec![0; 40] });
        drop(r);
        // A restarted reader continues after record 0: no duplicate, no gap.
        let mut r = RingReader::open(&p).expect("opens");
        let got = records(&mut r);
        assert_eq!(got.len(), 2);
        assert!(matches!(&got[0], Read::Record { seq: 1, .. }));
        w.end();
        assert_eq!(r.read(), Read::Ended);
        std::fs::remove_file(&p).expect("removed");
    }

    #[test]
    fn a_reader_that_stops_is_lapped_told_how_much_it_missed_and_counted() {
        let p = path("lapped");
        let mut w = RingWriter::create(&p, 1, 60, 4096, 0o600, None).expect("a ring");
        let mut r = RingReader::open(&p).expect("opens");
        // 100-byte bodies: 128 bytes a record, 32 fit in 4096; write 100 without reading.
        for i in 0..100u64 {
            w.append(kind::FRAME, &[i as u8; 100]).expect("fits");
        }
        let stats = w.stats();
        assert_eq!(stats.records, 100);
        assert!(stats.overwritten_unread >= 68, "{stats:?}");
        let got = records(&mut r);
        let Read::Missed(missed) = got[0] else { panic!("a gap first: {got:?}") };
        let seqs: Vec<u64> =
            got[1..].iter().map(|r| if let Read::Record { seq, .. } = r { *seq } else { u64::MAX }).collect();
        assert_eq!(missed, seqs[0], "the gap is every record before the first still held");
        assert_eq!(seqs, (seqs[0]..100).collect::<Vec<_>>(), "then every record, once, in order");
        assert_eq!(missed, stats.overwritten_unread);
        std::fs::remove_file(&p).expect("removed");
    }

    #[test]
    fn records_that_would_cross_the_end_are_padded_and_too_large_ones_refused() {
        let p = path("pad");
        let mut w = RingWriter::create(&p, 1, 60, 4096, 0o600, None).expect("a ring");
        let mut r = RingReader::open(&p).expect("opens");
        let mut seen = 0u64;
        for i in 0..200u64 {
            // 16 + 1000 bytes: 1024, and the 4th of each lap crosses the end.
            w.append(kind::FRAME, &vec![i as u8; 1000 + (i % 3) as usize]).expect("fits");
            for read in records(&mut r) {
                let Read::Record { seq, body, .. } = read else { panic!("{read:?}") };
                assert_eq!((seq, body[0]), (seen, seen as u8));
                seen += 1;
            }
        }
        assert_eq!(seen, 200);
        assert!(matches!(w.append(kind::FRAME, &[0; 2100]), Err(RingError::TooLarge { .. })));
        assert!(matches!(RingWriter::create(&p, 1, 60, 5000, 0o600, None), Err(RingError::Capacity { .. })));
        std::fs::remove_file(&p).expect("removed");
    }

    #[test]
    fn a_damaged_or_foreign_file_is_refused_or_skipped_never_read_out_of_bounds() {
        let p = path("damaged");
        let mut w = RingWriter::create(&p, 1, 60, 4096, 0o600, None).expect("a ring");
        w.append(kind::FRAME, &[1; 32]).expect("fits");
        let mut bytes = std::fs::read(&p).expect("readable");
        // A hostile length in the first record: the reader skips ahead instead of reading past.
        bytes[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&p, &bytes).expect("writable");
        let mut r = RingReader::open(&p).expect("opens");
        assert_eq!(r.read(), Read::Missed(0));
        assert_eq!(r.read(), Read::Empty);
        for (at, value) in [(offset::MAGIC, 0u8), (offset::VERSION, 9), (offset::CAPACITY, 3)] {
            let mut bad = bytes.clone();
            bad[at] = value;
            std::fs::write(&p, &bad).expect("writable");
            assert!(matches!(RingReader::open(&p), Err(RingError::Format { .. })), "offset {at}");
        }
        std::fs::write(&p, &bytes[..100]).expect("writable");
        assert!(matches!(RingReader::open(&p), Err(RingError::Format { .. })));
        drop(w);
        std::fs::remove_file(&p).expect("removed");
    }
}
