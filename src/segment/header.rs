//! The self-describing segment header and the layout arithmetic derived from it.
//!
//! ```text
//! 0                 256                      body_offset            total_size
//! | Header (256 B)  | participant records    | kind-specific body   |
//! |                 | (32 B each)            | (lock + data, ring)  |
//! ```
//! Every offset and size is recomputed from the header's own fields with checked arithmetic
//! on open and compared with what the header claims and with the real file size.

use crate::error::OpenError;
use crate::raw::MAX_PARTICIPANTS;

/// "SHMPROC" + format byte.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SHMPROC\x01");
/// Layout version of this build. In this version a ring claims by CAS on `tail`/`head` and
/// announces each claim in a per-thread claim record (`4 * participants` records per ring,
/// after its 640-byte control block); slot words carry no owner; the header's `flags` word
/// may say that the name goes away with its last user, and every opener checks after
/// registering that the name still refers to the object it registered in; each participant
/// record ends with the handle's async doorbell, which wakers ring; every `Queue` cell starts
/// with its slot word. Bump it on any change to a
/// shared layout, or to what a peer may assume about one with the same bytes: a segment of
/// another version is refused with `VersionMismatch`. ARCHITECTURE.md lists what each
/// version changed.
pub const LAYOUT_VERSION: u32 = 8;
pub(crate) const HEADER_SIZE: u64 = 256;
pub(crate) const TYPE_NAME_CAP: usize = 128;
/// Size of one participant record.
pub(crate) const PARTICIPANT_SIZE: u64 = 32;
/// Largest segment this crate creates or opens (1 TiB).
pub(crate) const MAX_SEGMENT_SIZE: u64 = 1 << 40;
/// Largest payload alignment supported (the mapping is page-aligned).
pub(crate) const MAX_ALIGN: u32 = 4096;
/// Alignment of a segment's body: a pair of 64-byte cache lines, the unit x86's
/// adjacent-line prefetcher moves (rings keep their claim indices and records in pairs of
/// their own).
pub(crate) const CACHE_LINE: u64 = 128;

/// `flags` bit: the last handle to leave removes the name (`Options::remove_with_last_user`),
/// not the creator's drop.
pub(crate) const FLAG_LAST_USER_REMOVES: u32 = 1;

/// `init_state` values.
pub(crate) const INIT_EMPTY: u32 = 0;
pub(crate) const INIT_READY: u32 = 0x5245_4459; // "READY"
pub(crate) const INIT_ABANDONED: u32 = 0x4142_4E44; // the creator died during init

/// What a segment holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub(crate) enum Kind {
    Value = 1,
    Array = 2,
    Queue = 3,
    /// A message queue (`ByteQueue`, `MessageQueue<T>`).
    Messages = 4,
    /// A pipe: two message rings and the two ends' records.
    Pipe = 5,
    /// An array of atomic integers (`AtomicArray`).
    AtomicArray = 6,
    /// A raw byte block (`SharedBytes`).
    Bytes = 7,
    /// A lock with no data (`Lock`).
    Lock = 8,
    /// A counting semaphore (`Semaphore`).
    Semaphore = 9,
    /// A semaphore that refuses releases above its initial value (`BoundedSemaphore`).
    BoundedSemaphore = 10,
    /// An event flag (`Event`).
    Event = 11,
    /// A condition variable (`Condition`).
    Condition = 12,
    /// A barrier of `count` parties (`Barrier`).
    Barrier = 13,
    /// A re-entrant lock (`RLock`).
    RLock = 14,
}

impl Kind {
    pub(crate) fn name(raw: u32) -> &'static str {
        match raw {
            1 => "Value",
            2 => "Array",
            3 => "Queue",
            4 => "MessageQueue",
            5 => "Pipe",
            6 => "AtomicArray",
            7 => "SharedBytes",
            8 => "Lock",
            9 => "Semaphore",
            10 => "BoundedSemaphore",
            11 => "Event",
            12 => "Condition",
            13 => "Barrier",
            14 => "RLock",
            _ => "unknown kind",
        }
    }
}

/// The header, as stored at offset 0. Fixed-width fields only; read by copying it out of
/// the mapping into a local (peers may write it at any time), then validated.
///
/// `init_state` (offset 8) is also accessed atomically: the creator stores `INIT_READY` with
/// release ordering after writing everything else; openers load it with acquire.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Header {
    pub(crate) magic: u64,
    pub(crate) init_state: u32,
    pub(crate) version: u32,
    pub(crate) pointer_width: u32,
    pub(crate) kind: u32,
    pub(crate) header_size: u32,
    pub(crate) participants: u32,
    pub(crate) elem_size: u64,
    pub(crate) elem_align: u32,
    pub(crate) type_name_len: u32,
    pub(crate) schema_id: u64,
    /// Element count (`Array` length, `Queue` capacity, 1 for `Value`).
    pub(crate) count: u64,
    pub(crate) participants_offset: u64,
    pub(crate) body_offset: u64,
    pub(crate) body_size: u64,
    pub(crate) total_size: u64,
    pub(crate) creator_pid: u32,
    /// Bit 0 ([`FLAG_LAST_USER_REMOVES`]): the name goes away with its last user; other bits
    /// are 0 (a header with others is `Corrupted`).
    pub(crate) flags: u32,
    /// FNV-1a hash of the full type name (the stored name is cut at 128 bytes).
    pub(crate) type_hash: u64,
    /// Async waits armed in the whole segment (the sum of the records' armed counts, and
    /// the leftovers of processes that died armed). Like `init_state`, a live word accessed
    /// only atomically ([`ASYNC_WAITS_OFFSET`]); the copied-out header ignores it. A waker
    /// reads it after a wake-up and scans the records' doorbells only when it is non-zero.
    pub(crate) async_waits: u64,
    pub(crate) reserved: u64,
    pub(crate) type_name: [u8; TYPE_NAME_CAP],
}

const _: () = assert!(core::mem::size_of::<Header>() == HEADER_SIZE as usize);
const _: () = assert!(core::mem::offset_of!(Header, init_state) == 8);
const _: () = assert!(core::mem::offset_of!(Header, type_name) == 128);
const _: () = assert!(core::mem::offset_of!(Header, type_hash) == 104);
/// Offset of the live `async_waits` word in a mapped header.
pub(crate) const ASYNC_WAITS_OFFSET: usize = core::mem::offset_of!(Header, async_waits);
const _: () = assert!(ASYNC_WAITS_OFFSET == 112);

/// The payload type a handle expects: kind, Rust type, size, alignment, optional schema id.
#[derive(Clone, Debug)]
pub(crate) struct TypeDesc {
    pub(crate) kind: Kind,
    pub(crate) name: &'static str,
    pub(crate) size: u64,
    pub(crate) align: u32,
    pub(crate) schema_id: u64,
    /// Accept any element size on open (message queues: the creator chose the maximum
    /// message size; the body-size check still ties it to the layout).
    pub(crate) any_size: bool,
}

impl TypeDesc {
    pub(crate) fn of<T>(kind: Kind, schema_id: u64) -> TypeDesc {
        TypeDesc {
            kind,
            name: std::any::type_name::<T>(),
            size: core::mem::size_of::<T>() as u64,
            align: core::mem::align_of::<T>() as u32,
            schema_id,
            any_size: false,
        }
    }

    /// FNV-1a over the whole type name.
    fn hash(&self) -> u64 {
        self.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }

    /// The stored type name: the whole name, or its last 128 bytes for longer names (the
    /// end, `...::Type<Args>`, tells types apart better than a shared module prefix; the
    /// full name's hash is compared too).
    fn stored_name(&self) -> &[u8] {
        let b = self.name.as_bytes();
        &b[b.len().saturating_sub(TYPE_NAME_CAP)..]
    }

    pub(crate) fn describe(&self) -> String {
        describe(self.kind as u32, self.name, self.size, self.align, self.schema_id)
    }

    /// Whether a validated header stores this same kind and payload type.
    pub(crate) fn check(&self, h: &Header) -> Result<(), OpenError> {
        let found_name = &h.type_name[..(h.type_name_len as usize).min(TYPE_NAME_CAP)];
        let same_type = if self.schema_id != 0 && h.schema_id != 0 {
            self.schema_id == h.schema_id
        } else {
            self.schema_id == h.schema_id && found_name == self.stored_name() && h.type_hash == self.hash()
        };
        let same_size = self.any_size || h.elem_size == self.size;
        if h.kind != self.kind as u32 || !same_type || !same_size || h.elem_align != self.align {
            return Err(OpenError::IncompatibleType {
                expected: self.describe(),
                found: describe(
                    h.kind,
                    &String::from_utf8_lossy(found_name),
                    h.elem_size,
                    h.elem_align,
                    h.schema_id,
                ),
            });
        }
        Ok(())
    }
}

fn describe(kind: u32, name: &str, size: u64, align: u32, schema: u64) -> String {
    let mut s = format!("{}<{}> ({} bytes, align {})", Kind::name(kind), name, size, align);
    if schema != 0 {
        s.push_str(&format!(", schema {schema:#x}"));
    }
    s
}

/// Offsets of a segment, derived from (participants, alignment, body size).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Layout {
    pub(crate) participants_offset: u64,
    pub(crate) body_offset: u64,
    pub(crate) body_size: u64,
    pub(crate) total_size: u64,
}

pub(crate) const fn align_up(x: u64, a: u64) -> Option<u64> {
    debug_assert!(a.is_power_of_two());
    match x.checked_add(a - 1) {
        Some(v) => Some(v & !(a - 1)),
        None => None,
    }
}

impl Layout {
    /// Computes the layout, or says which size is out of range.
    pub(crate) fn compute(participants: u32, elem_align: u32, body_size: u64) -> Result<Layout, String> {
        if participants == 0 || participants > MAX_PARTICIPANTS {
            return Err(format!(
                "participant count {participants} is not in 1..={MAX_PARTICIPANTS}"
            ));
        }
        if !elem_align.is_power_of_two() || elem_align > MAX_ALIGN {
            return Err(format!(
                "alignment {elem_align} is not a power of two up to {MAX_ALIGN}"
            ));
        }
        let table = u64::from(participants) * PARTICIPANT_SIZE;
        let align = u64::from(elem_align).max(CACHE_LINE);
        let body_offset = align_up(HEADER_SIZE + table, align).ok_or("layout overflows")?;
        let total = body_offset.checked_add(body_size).ok_or("layout overflows")?;
        if total > MAX_SEGMENT_SIZE || usize::try_from(total).is_err() {
            return Err(format!(
                "segment would need {total} bytes, more than the maximum {MAX_SEGMENT_SIZE}"
            ));
        }
        Ok(Layout {
            participants_offset: HEADER_SIZE,
            body_offset,
            body_size,
            total_size: total,
        })
    }
}

/// Builds the header a creator writes (everything but `init_state`).
pub(crate) fn new_header(
    desc: &TypeDesc,
    count: u64,
    participants: u32,
    layout: &Layout,
    pid: u32,
    flags: u32,
) -> Header {
    let mut h: Header = bytemuck::Zeroable::zeroed();
    h.magic = MAGIC;
    h.version = LAYOUT_VERSION;
    h.pointer_width = usize::BITS;
    h.kind = desc.kind as u32;
    h.header_size = HEADER_SIZE as u32;
    h.participants = participants;
    h.elem_size = desc.size;
    h.elem_align = desc.align;
    let name = desc.stored_name();
    h.type_name[..name.len()].copy_from_slice(name);
    h.type_name_len = name.len() as u32;
    h.schema_id = desc.schema_id;
    h.type_hash = desc.hash();
    h.count = count;
    h.participants_offset = layout.participants_offset;
    h.body_offset = layout.body_offset;
    h.body_size = layout.body_size;
    h.total_size = layout.total_size;
    h.creator_pid = pid;
    h.flags = flags;
    h
}

/// Validates a header copied out of a segment of `file_size` bytes, for a handle expecting
/// `desc` whose body for `count` elements must be `body_size(count)` bytes.
pub(crate) fn validate(
    h: &Header,
    file_size: u64,
    desc: &TypeDesc,
    body_size: impl Fn(u64, u64, u32) -> Option<u64>,
) -> Result<Layout, OpenError> {
    check_common(h)?;
    desc.check(h)?;
    layout_of(h, file_size, body_size)
}

/// The checks of [`validate`] that need no expected type: magic, version, pointer width,
/// header size, type name length.
pub(crate) fn check_common(h: &Header) -> Result<(), OpenError> {
    let bad = |what: String| Err(OpenError::Corrupted { what });
    if h.magic != MAGIC {
        return bad(format!("bad magic {:#018x} (not a shmproc segment)", h.magic));
    }
    if h.version != LAYOUT_VERSION {
        return Err(OpenError::VersionMismatch {
            found: h.version,
            supported: LAYOUT_VERSION,
        });
    }
    if h.pointer_width != usize::BITS {
        return bad(format!(
            "pointer width {} (this build is {}-bit)",
            h.pointer_width,
            usize::BITS
        ));
    }
    if u64::from(h.header_size) != HEADER_SIZE {
        return bad(format!("header size {} (expected {HEADER_SIZE})", h.header_size));
    }
    if h.type_name_len as usize > TYPE_NAME_CAP {
        return bad(format!(
            "type name length {} (at most {TYPE_NAME_CAP})",
            h.type_name_len
        ));
    }
    if h.flags & !FLAG_LAST_USER_REMOVES != 0 {
        return bad(format!("unknown flags {:#x}", h.flags));
    }
    Ok(())
}

/// The layout a header describes, checked against the one its own fields derive (with the
/// kind's `body_size`) and against the file's size.
pub(crate) fn layout_of(
    h: &Header,
    file_size: u64,
    body_size: impl Fn(u64, u64, u32) -> Option<u64>,
) -> Result<Layout, OpenError> {
    let bad = |what: String| Err(OpenError::Corrupted { what });
    let Some(body) = body_size(h.count, h.elem_size, h.participants) else {
        return bad(format!(
            "element count {} or element size {} is out of range for a {}",
            h.count,
            h.elem_size,
            Kind::name(h.kind)
        ));
    };
    let layout = match Layout::compute(h.participants, h.elem_align, body) {
        Ok(l) => l,
        Err(e) => return bad(e),
    };
    let stored = Layout {
        participants_offset: h.participants_offset,
        body_offset: h.body_offset,
        body_size: h.body_size,
        total_size: h.total_size,
    };
    if stored != layout {
        return bad(format!(
            "stored layout {stored:?} does not match the one derived from the header {layout:?}"
        ));
    }
    if layout.total_size > file_size {
        return bad(format!(
            "segment is {file_size} bytes, its header needs {}",
            layout.total_size
        ));
    }
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_math() {
        let l = Layout::compute(64, 8, 100).unwrap();
        assert_eq!(l.body_offset, 256 + 64 * 32);
        assert_eq!(l.total_size, l.body_offset + 100);
        assert!(Layout::compute(0, 8, 1).is_err());
        assert!(Layout::compute(MAX_PARTICIPANTS + 1, 8, 1).is_err());
        assert!(Layout::compute(1, 3, 1).is_err());
        assert!(Layout::compute(1, 8192, 1).is_err());
        assert!(Layout::compute(1, 8, u64::MAX).is_err());
        assert!(Layout::compute(1, 8, MAX_SEGMENT_SIZE).is_err());
        assert_eq!(Layout::compute(1, 4096, 1).unwrap().body_offset, 4096);
    }

    #[test]
    fn header_round_trip_and_type_check() {
        let d = TypeDesc::of::<u64>(Kind::Value, 0);
        let l = Layout::compute(8, 8, 80).unwrap();
        let h = new_header(&d, 1, 8, &l, 1, 0);
        assert_eq!(validate(&h, l.total_size, &d, |_, _, _| Some(80)).unwrap(), l);
        assert!(matches!(
            validate(&h, l.total_size - 1, &d, |_, _, _| Some(80)),
            Err(OpenError::Corrupted { .. })
        ));
        let other = TypeDesc::of::<u32>(Kind::Value, 0);
        assert!(matches!(
            validate(&h, l.total_size, &other, |_, _, _| Some(80)),
            Err(OpenError::IncompatibleType { .. })
        ));
        let arr = TypeDesc::of::<u64>(Kind::Array, 0);
        assert!(matches!(
            validate(&h, l.total_size, &arr, |_, _, _| Some(80)),
            Err(OpenError::IncompatibleType { .. })
        ));
    }
}
