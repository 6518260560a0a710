//! The postcard encoder shared by the typed message queues (`message`) and the job frames
//! of `process` and `pool`: one append-to-`Vec` step that inlines into their per-item loops.
//! Decoding stays with each caller, whose errors differ.

use serde::Serialize;

/// A postcard output that appends to a `Vec` with `extend_from_slice` (postcard's own
/// `to_extend` copies byte strings one byte at a time).
struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if data.len() <= 4 {
            // Short varints: a call to memcpy costs more than the copy.
            self.0.reserve(data.len());
            for &b in data {
                self.0.push(b);
            }
        } else {
            self.0.extend_from_slice(data);
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Appends `value`, postcard-encoded, to `out`; on failure `out` is left as it was.
/// Always inline: it is the encoding step of the per-item loops (a pool's chunks, a
/// worker's results) and of every typed message, where a call costs as much as
/// encoding a small value.
#[inline(always)]
pub(crate) fn append<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), String> {
    let len = out.len();
    // What `postcard::serialize_with_flavor` does (`Append::finalize` has nothing to do),
    // here so that it inlines into the per-item loops.
    let mut ser = postcard::Serializer { output: Append(out) };
    value.serialize(&mut ser).map_err(|e| {
        ser.output.0.truncate(len);
        e.to_string()
    })
}
