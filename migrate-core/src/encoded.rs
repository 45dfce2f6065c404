//! Rows left in a source's wire encoding, for a sink that accepts that encoding unchanged.
//!
//! Decoding every value into a [`Value`](crate::Value) and encoding it again is most of what a
//! Postgres → Postgres copy costs migrate's own process (a string per text value, a vector per
//! row). When the source's wire format is the sink's, and no transform needs the values, the
//! bytes can go straight through: the reader cuts the stream into rows without decoding them,
//! the executor still checksums, samples and budgets every row (through the source's
//! [`RowCodec`]), and the sink forwards the bytes. A reader offers this through
//! [`BatchReader::encoding`](crate::BatchReader::encoding); a sink that does not recognise the
//! encoding simply asks for decoded batches as before.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::Row;
use crate::error::Result;

/// What a source's encoded rows are: a format, the type of each column in it, and the codec
/// that reads them. Two encodings with equal `format` and `column_types` produce bytes either
/// side can accept.
#[derive(Clone)]
pub struct Encoding {
    /// The format's name, e.g. [`POSTGRES_COPY_BINARY`].
    pub format: &'static str,
    /// Per column, the format's identifier of its type (for Postgres, the type's OID).
    pub column_types: Vec<u32>,
    /// Reads single rows, for the checksum, key samples and watermarks.
    pub codec: Arc<dyn RowCodec>,
}

impl fmt::Debug for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encoding")
            .field("format", &self.format)
            .field("column_types", &self.column_types)
            .finish_non_exhaustive()
    }
}

impl Encoding {
    /// Whether a consumer expecting `format` with `column_types` can take these bytes as-is.
    pub fn matches(&self, format: &str, column_types: &[u32]) -> bool {
        self.format == format && self.column_types == column_types
    }
}

/// Postgres' `COPY … (FORMAT binary)` tuples (without the stream's header and trailer); the
/// column types are type OIDs.
pub const POSTGRES_COPY_BINARY: &str = "postgres-copy-binary";

/// Reads one encoded row. Implementations must agree with the decoded path exactly: the
/// checksum text of a row is [`crate::checksum::encode_row`] of its decoded values.
pub trait RowCodec: Send + Sync {
    /// Decodes one row.
    fn decode_row(&self, row: &[u8]) -> Result<Row>;

    /// Appends the row's canonical checksum encoding to `out`, without materialising values
    /// where it can.
    fn checksum_text(&self, row: &[u8], out: &mut String) -> Result<()>;
}

/// Encoded rows back to back, with where each ends.
#[derive(Clone)]
pub struct EncodedBatch {
    encoding: Arc<Encoding>,
    bytes: Bytes,
    ends: Vec<usize>,
}

impl fmt::Debug for EncodedBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncodedBatch")
            .field("encoding", &self.encoding.format)
            .field("rows", &self.ends.len())
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl EncodedBatch {
    /// Rows in `bytes`, row *i* ending at `ends[i]` (ascending, the last one `bytes.len()`).
    pub fn new(encoding: Arc<Encoding>, bytes: Bytes, ends: Vec<usize>) -> Self {
        debug_assert!(ends.windows(2).all(|w| w[0] <= w[1]));
        debug_assert_eq!(ends.last().copied().unwrap_or(0), bytes.len());
        EncodedBatch {
            encoding,
            bytes,
            ends,
        }
    }

    /// The encoding the rows are in.
    pub fn encoding(&self) -> &Arc<Encoding> {
        &self.encoding
    }

    /// All rows' bytes, back to back.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Memory held: the bytes and the row index (what the scheduler budgets).
    pub fn byte_size(&self) -> usize {
        self.bytes.len() + self.ends.len() * std::mem::size_of::<usize>()
    }

    /// Row `i`'s bytes.
    pub fn row(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.bytes.get(start..end)
    }

    /// Every row's bytes, in order.
    pub fn rows(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(s, e)| &self.bytes[s..e])
    }

    /// Decodes every row (for a consumer that needs values after all).
    pub fn decode(&self) -> Result<Vec<Row>> {
        self.rows()
            .map(|r| self.encoding.codec.decode_row(r))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    /// Rows of one length-prefixed text column.
    struct Texts;

    impl RowCodec for Texts {
        fn decode_row(&self, row: &[u8]) -> Result<Row> {
            Ok(vec![Value::Text(String::from_utf8_lossy(row).into_owned())])
        }
        fn checksum_text(&self, row: &[u8], out: &mut String) -> Result<()> {
            crate::checksum::encode_row(&self.decode_row(row)?, out);
            Ok(())
        }
    }

    #[test]
    fn rows_are_cut_at_their_ends() {
        let enc = Arc::new(Encoding {
            format: "test",
            column_types: vec![25],
            codec: Arc::new(Texts),
        });
        let b = EncodedBatch::new(enc.clone(), Bytes::from_static(b"abcdef"), vec![1, 1, 6]);
        assert_eq!(b.len(), 3);
        assert_eq!(b.rows().collect::<Vec<_>>(), vec![&b"a"[..], b"", b"bcdef"]);
        assert_eq!(b.row(2), Some(&b"bcdef"[..]));
        assert_eq!(b.row(3), None);
        assert_eq!(b.decode().unwrap()[2], vec![Value::Text("bcdef".into())]);
        assert!(enc.matches("test", &[25]));
        assert!(!enc.matches("test", &[23]));
        assert!(!enc.matches("other", &[25]));
    }
}
