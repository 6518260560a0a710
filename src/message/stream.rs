//! `MessageReader` and `MessageWriter`: one message read or written where it lies in its
//! slot, every access a bounds-checked atomic copy.

use std::marker::PhantomData;

/// One received message, read where it lies in its slot ([`ByteQueue::get_with`](super::ByteQueue::get_with)): no copy
/// of the whole message, only of the bytes asked for.
///
/// It is not a `&[u8]`: the slot is memory other processes can write, so every read is a
/// copy made of atomic loads. Peers that keep the protocol never write the slot while a
/// reader exists, so what it reads is the message as sent; a hostile peer can only make it
/// read other bytes, never cause undefined behaviour.
pub struct MessageReader<'a> {
    pub(super) data: *const u8,
    pub(super) len: usize,
    pub(super) _cell: PhantomData<&'a [u8]>,
}

impl MessageReader<'_> {
    /// The message length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `buf.len()` bytes of the message, from `offset` on, into `buf`.
    ///
    /// # Panics
    /// If `offset + buf.len()` exceeds the message length.
    #[inline]
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) {
        let end = offset.checked_add(buf.len());
        assert!(
            end.is_some_and(|e| e <= self.len),
            "MessageReader::read_at: {} bytes at offset {offset} exceed the message length {}",
            buf.len(),
            self.len
        );
        // SAFETY: `offset + buf.len() <= len <= max`, and the cell has `max` data bytes in
        // the mapping; we hold the claim of the slot's position (others touch it only atomically);
        // `buf` is private.
        unsafe { crate::raw::copy::load_bytes(buf.as_mut_ptr(), self.data.wrapping_add(offset), buf.len()) };
    }

    /// Appends the whole message to `out`.
    pub fn append_to(&self, out: &mut Vec<u8>) {
        let at = out.len();
        out.resize(at + self.len, 0);
        self.read_at(0, &mut out[at..]);
    }
}

impl std::fmt::Debug for MessageReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageReader")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// Writes one message straight into its slot in shared memory ([`ByteQueue::put_with`](super::ByteQueue::put_with)).
///
/// It is not a `&mut [u8]`: the slot is memory other processes can write, so every write is
/// a copy made of atomic stores. It has a fixed length, chosen before the slot was claimed;
/// bytes that the closure does not write keep whatever the slot held before (an older
/// message of this queue).
pub struct MessageWriter<'a> {
    pub(super) data: *mut u8,
    pub(super) len: usize,
    pub(super) pos: usize,
    pub(super) _cell: PhantomData<&'a mut [u8]>,
}

impl MessageWriter<'_> {
    /// The message length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `bytes` to `offset` of the message.
    ///
    /// # Panics
    /// If `offset + bytes.len()` exceeds [`len`](MessageWriter::len), like slice indexing.
    /// The message is then not sent (its slot is given back), and the panic goes on.
    #[inline]
    pub fn write_at(&mut self, offset: usize, bytes: &[u8]) {
        let end = offset.checked_add(bytes.len());
        assert!(
            end.is_some_and(|e| e <= self.len),
            "MessageWriter::write_at: {} bytes at offset {offset} exceed the message length {}",
            bytes.len(),
            self.len
        );
        // SAFETY: `offset + bytes.len() <= len <= max`, and the cell has `max` data bytes in
        // the mapping; we hold the claim of the slot's position (others touch it only atomically).
        unsafe { crate::raw::copy::store_bytes(self.data.wrapping_add(offset), bytes) };
    }
}

/// Sequential writes from the start of the message; a write past the end is short
/// (`Ok(0)` once full), as for a `&mut [u8]` writer.
impl std::io::Write for MessageWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.len - self.pos);
        self.write_at(self.pos, &buf[..n]);
        self.pos += n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
