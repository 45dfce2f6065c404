//! `COPY … (FORMAT binary)` framing, done here instead of by tokio-postgres' `binary_copy`
//! helpers: rows are decoded from the wire straight into values, and encoded straight into
//! large CopyData buffers, with no per-row vectors of boxed parameters, no per-row type checks
//! and no flush every 4 KiB. The profile of the Postgres benchmark put that per-row overhead at
//! about a tenth of migrate's CPU.

use std::error::Error as StdError;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use migrate_core::{Row, Value};
use tokio_postgres::types::Type;

use crate::codec::{checksum_field, decode, encode};

/// The codec's error type (tokio-postgres' convention).
pub type BoxError = Box<dyn StdError + Sync + Send>;

/// The signature every COPY BINARY stream starts with.
const MAGIC: &[u8] = b"PGCOPY\n\xff\r\n\0";
/// Signature, flags (i32) and header-extension length (i32).
const HEADER_LEN: usize = MAGIC.len() + 8;

/// Why a COPY BINARY stream could not be decoded; `column` is set when one value was at fault.
#[derive(Debug)]
pub struct DecodeError {
    /// Index of the column whose value could not be decoded, if one was at fault.
    pub column: Option<usize>,
    /// What was wrong.
    pub source: BoxError,
}

impl DecodeError {
    fn framing(msg: &str) -> Self {
        DecodeError {
            column: None,
            source: msg.into(),
        }
    }
}

/// Incremental decoder: feed it the stream's chunks in order, take complete rows out. Postgres
/// sends one row per CopyData message, but nothing here relies on it: a row split across
/// chunks is carried over.
pub struct TupleDecoder {
    types: Vec<Type>,
    header_done: bool,
    ended: bool,
    carry: BytesMut,
    /// In-memory size of the rows decoded since the last [`Self::take_byte_size`].
    byte_size: usize,
}

impl TupleDecoder {
    /// A decoder for rows whose columns have the wire types `types`.
    pub fn new(types: Vec<Type>) -> Self {
        TupleDecoder {
            types,
            header_done: false,
            ended: false,
            carry: BytesMut::new(),
            byte_size: 0,
        }
    }

    /// The in-memory size ([`migrate_core::batch::row_byte_size`]) of the rows decoded since
    /// the last call, summed while each value is still in cache rather than in a second pass.
    pub fn take_byte_size(&mut self) -> usize {
        std::mem::take(&mut self.byte_size)
    }

    /// Whether the trailer has been seen.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Decodes every complete row in `chunk` (after any carried-over bytes) into `rows`.
    pub fn feed(&mut self, chunk: &Bytes, rows: &mut Vec<Row>) -> Result<(), DecodeError> {
        if self.carry.is_empty() {
            let used = self.decode_all(chunk, rows)?;
            self.carry.extend_from_slice(&chunk[used..]);
        } else {
            self.carry.extend_from_slice(chunk);
            let buf = std::mem::take(&mut self.carry);
            let used = self.decode_all(&buf, rows)?;
            self.carry.extend_from_slice(&buf[used..]);
        }
        Ok(())
    }

    /// Whether bytes are left over that never formed a row (a truncated stream).
    pub fn has_partial(&self) -> bool {
        !self.carry.is_empty() || !self.header_done
    }

    /// Decodes as much of `buf` as holds complete units; returns the bytes consumed.
    fn decode_all(&mut self, buf: &[u8], rows: &mut Vec<Row>) -> Result<usize, DecodeError> {
        let mut at = 0;
        if !self.header_done {
            match header_len(buf)? {
                Some(n) => at = n,
                None => return Ok(0),
            }
            self.header_done = true;
        }
        while !self.ended {
            match decode_row(&self.types, &buf[at..])? {
                Some((used, row)) => {
                    at += used;
                    match row {
                        Some((row, size)) => {
                            self.byte_size += size;
                            rows.push(row);
                        }
                        None => self.ended = true,
                    }
                }
                None => break,
            }
        }
        if self.ended && at < buf.len() {
            return Err(DecodeError::framing("data after the COPY BINARY trailer"));
        }
        Ok(at)
    }
}

/// The length of the stream header at the start of `buf`; `None` when `buf` does not hold all
/// of it yet.
fn header_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    if !buf.starts_with(MAGIC) {
        return Err(DecodeError::framing("not a COPY BINARY stream"));
    }
    let mut r = &buf[MAGIC.len()..];
    let flags = r.get_i32();
    if flags & (1 << 16) != 0 {
        return Err(DecodeError::framing(
            "COPY BINARY with OIDs is not supported",
        ));
    }
    let ext = r.get_u32() as usize;
    if buf.len() < HEADER_LEN + ext {
        return Ok(None);
    }
    Ok(Some(HEADER_LEN + ext))
}

/// The field count at the start of a tuple: `None` for the trailer; an error for a tuple
/// whose count is not `columns`.
fn field_count(r: &mut &[u8], columns: usize) -> Result<Option<()>, DecodeError> {
    let fields = r.get_i16();
    if fields == -1 {
        return Ok(None);
    }
    if fields as usize != columns {
        return Err(DecodeError::framing(&format!(
            "expected {columns} columns per row, got {fields}"
        )));
    }
    Ok(Some(()))
}

/// One row and its in-memory size (or the trailer, `Some(None)`) from the start of `buf`,
/// with the bytes it took; `None` when `buf` does not hold all of it yet.
#[allow(clippy::type_complexity)]
pub(crate) fn decode_row(
    types: &[Type],
    buf: &[u8],
) -> Result<Option<(usize, Option<(Row, usize)>)>, DecodeError> {
    let mut r = buf;
    if r.len() < 2 {
        return Ok(None);
    }
    if field_count(&mut r, types.len())?.is_none() {
        return Ok(Some((2, None)));
    }
    let mut row = Vec::with_capacity(types.len());
    let mut size = std::mem::size_of::<Row>();
    for (i, ty) in types.iter().enumerate() {
        if r.len() < 4 {
            return Ok(None);
        }
        let len = r.get_i32();
        if len < 0 {
            size += Value::Null.byte_size();
            row.push(Value::Null);
            continue;
        }
        let len = len as usize;
        if r.len() < len {
            return Ok(None);
        }
        let v = decode(ty, &r[..len]).map_err(|source| DecodeError {
            column: Some(i),
            source,
        })?;
        size += v.byte_size();
        row.push(v);
        r.advance(len);
    }
    Ok(Some((buf.len() - r.len(), Some((row, size)))))
}

/// What starts a buffer: a whole tuple of this many bytes, or the trailer.
enum Unit {
    Tuple(usize),
    Trailer,
}

/// The tuple or trailer at the start of `buf`, by its framing alone; `None` when `buf` does
/// not hold all of it yet.
fn next_unit(buf: &[u8], columns: usize) -> Result<Option<Unit>, DecodeError> {
    let mut r = buf;
    if r.len() < 2 {
        return Ok(None);
    }
    if field_count(&mut r, columns)?.is_none() {
        return Ok(Some(Unit::Trailer));
    }
    for _ in 0..columns {
        if r.len() < 4 {
            return Ok(None);
        }
        let len = r.get_i32();
        if len < 0 {
            continue;
        }
        let len = len as usize;
        if r.len() < len {
            return Ok(None);
        }
        r.advance(len);
    }
    Ok(Some(Unit::Tuple(buf.len() - r.len())))
}

/// Cuts a COPY BINARY stream into whole tuples without decoding a value (the pass-through
/// path, see [`migrate_core::encoded`]): feed it the stream's chunks in order, take the
/// complete tuples out as one buffer. Header and trailer are checked and dropped; a tuple
/// split across chunks is carried over.
pub struct RowSplitter {
    columns: usize,
    header_done: bool,
    ended: bool,
    /// Bytes not taken yet: complete tuples up to `scanned`, then at most a partial one.
    buf: BytesMut,
    ends: Vec<usize>,
    scanned: usize,
}

impl RowSplitter {
    /// A splitter for tuples of `columns` fields.
    pub fn new(columns: usize) -> Self {
        RowSplitter {
            columns,
            header_done: false,
            ended: false,
            buf: BytesMut::new(),
            ends: Vec::new(),
            scanned: 0,
        }
    }

    /// Whether the trailer has been seen.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Whether bytes are left over that never formed a tuple (a truncated stream).
    pub fn has_partial(&self) -> bool {
        !self.header_done || self.scanned < self.buf.len()
    }

    /// Complete tuples waiting to be taken.
    pub fn rows(&self) -> usize {
        self.ends.len()
    }

    /// Bytes of the complete tuples waiting to be taken.
    pub fn bytes(&self) -> usize {
        self.scanned
    }

    /// Appends `chunk` and finds the tuples it completes.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), DecodeError> {
        if self.ended {
            return match chunk.is_empty() {
                true => Ok(()),
                false => Err(DecodeError::framing("data after the COPY BINARY trailer")),
            };
        }
        self.buf.extend_from_slice(chunk);
        if !self.header_done {
            match header_len(&self.buf)? {
                Some(n) => self.buf.advance(n),
                None => return Ok(()),
            }
            self.header_done = true;
        }
        while let Some(unit) = next_unit(&self.buf[self.scanned..], self.columns)? {
            match unit {
                Unit::Tuple(n) => {
                    self.scanned += n;
                    self.ends.push(self.scanned);
                }
                Unit::Trailer => {
                    if self.buf.len() > self.scanned + 2 {
                        return Err(DecodeError::framing("data after the COPY BINARY trailer"));
                    }
                    self.buf.truncate(self.scanned);
                    self.ended = true;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Takes the complete tuples, back to back, and where each ends.
    pub fn take(&mut self) -> (Bytes, Vec<usize>) {
        let bytes = self.buf.split_to(self.scanned).freeze();
        self.scanned = 0;
        (bytes, std::mem::take(&mut self.ends))
    }
}

/// Decodes exactly one tuple (as cut by [`RowSplitter`]).
pub fn decode_tuple(types: &[Type], tuple: &[u8]) -> Result<Row, DecodeError> {
    match decode_row(types, tuple)? {
        Some((n, Some((row, _)))) if n == tuple.len() => Ok(row),
        _ => Err(DecodeError::framing("not one whole tuple")),
    }
}

/// Appends one tuple's canonical checksum encoding to `out`, reading text straight from the
/// wire: text in place, other types through the same decoder as [`TupleDecoder`], so the
/// text equals `checksum::encode_row` of the decoded row.
pub fn checksum_tuple(types: &[Type], tuple: &[u8], out: &mut String) -> Result<(), DecodeError> {
    let mut r = tuple;
    if r.len() < 2 || field_count(&mut r, types.len())?.is_none() {
        return Err(DecodeError::framing("not one whole tuple"));
    }
    checksum_fields(types, r, out)
}

/// [`checksum_tuple`] of a tuple led by one more field, the `int4` number of the key range the
/// row falls in (as `sql::range_bucket` selects it): appends the rest's checksum text and
/// returns the number.
pub fn checksum_bucketed_tuple(
    types: &[Type],
    tuple: &[u8],
    out: &mut String,
) -> Result<usize, DecodeError> {
    let not_a_tuple = || DecodeError::framing("not one whole tuple with its range number");
    let mut r = tuple;
    if r.len() < 10 || field_count(&mut r, types.len() + 1)?.is_none() || r.get_i32() != 4 {
        return Err(not_a_tuple());
    }
    let bucket = usize::try_from(r.get_i32()).map_err(|_| not_a_tuple())?;
    checksum_fields(types, r, out)?;
    Ok(bucket)
}

/// The checksum text of a tuple's fields (after its field count).
fn checksum_fields(types: &[Type], mut r: &[u8], out: &mut String) -> Result<(), DecodeError> {
    let not_a_tuple = || DecodeError::framing("not one whole tuple");
    for (i, ty) in types.iter().enumerate() {
        if r.len() < 4 {
            return Err(not_a_tuple());
        }
        let len = r.get_i32();
        if len < 0 {
            migrate_core::checksum::encode_field(&Value::Null, out);
            continue;
        }
        let (raw, rest) = r.split_at_checked(len as usize).ok_or_else(not_a_tuple)?;
        checksum_field(ty, raw, out).map_err(|source| DecodeError {
            column: Some(i),
            source,
        })?;
        r = rest;
    }
    match r.is_empty() {
        true => Ok(()),
        false => Err(not_a_tuple()),
    }
}

/// The stream header (signature, no flags, no extension) that starts every COPY BINARY
/// stream the sink writes.
pub fn header() -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER_LEN);
    b.put_slice(MAGIC);
    b.put_i32(0); // flags
    b.put_i32(0); // header extension length
    b.freeze()
}

/// The trailer that ends a COPY BINARY stream.
pub const TRAILER: &[u8] = &(-1i16).to_be_bytes();

/// Encoder: rows go into one growing buffer, handed out in large pieces by [`Self::take`].
pub struct TupleEncoder {
    buf: BytesMut,
}

/// Why a row could not be encoded: the column and the codec's reason.
pub type EncodeError = (usize, BoxError);

impl TupleEncoder {
    /// An encoder whose buffer starts with the stream header.
    pub fn new() -> Self {
        let mut buf = BytesMut::with_capacity(FLUSH_BYTES + 64 * 1024);
        buf.put_slice(&header());
        TupleEncoder { buf }
    }

    /// Appends one row, each value encoded for its column's wire type.
    pub fn row(&mut self, row: &[Value], types: &[Type]) -> Result<(), EncodeError> {
        self.buf.put_i16(types.len() as i16);
        for (i, (v, ty)) in row.iter().zip(types).enumerate() {
            if v.is_null() {
                self.buf.put_i32(-1);
                continue;
            }
            let at = self.buf.len();
            self.buf.put_i32(0);
            encode(v, ty, &mut self.buf).map_err(|e| (i, e))?;
            let len = (self.buf.len() - at - 4) as i32;
            self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
        Ok(())
    }

    /// Whether enough is buffered to be worth sending.
    pub fn should_flush(&self) -> bool {
        self.buf.len() >= FLUSH_BYTES
    }

    /// Appends the trailer that ends the stream.
    pub fn finish(&mut self) {
        self.buf.put_i16(-1);
    }

    /// Takes what is buffered, leaving the buffer empty (and its capacity for reuse).
    pub fn take(&mut self) -> Bytes {
        self.buf.split().freeze()
    }
}

impl Default for TupleEncoder {
    fn default() -> Self {
        TupleEncoder::new()
    }
}

/// CopyData payload size: large enough that per-message costs vanish, small against the memory
/// budget.
const FLUSH_BYTES: usize = 256 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use migrate_core::testing::all_types_table;
    use migrate_core::DataType;

    fn encode_rows(rows: &[Row], types: &[Type]) -> Bytes {
        let mut e = TupleEncoder::new();
        for r in rows {
            e.row(r, types).unwrap();
        }
        e.finish();
        e.take()
    }

    #[test]
    fn rows_round_trip_however_the_stream_is_split() {
        let types = vec![Type::INT8, Type::TEXT, Type::NUMERIC];
        let rows: Vec<Row> = (0..50)
            .map(|i| {
                vec![
                    Value::Int64(i),
                    if i % 7 == 0 {
                        Value::Null
                    } else {
                        Value::Text(format!("row {i} é"))
                    },
                    Value::Decimal(format!("{i}.{:02}", i % 100).parse().unwrap()),
                ]
            })
            .collect();
        let bytes = encode_rows(&rows, &types);
        for piece in [1, 3, 7, 64, bytes.len()] {
            let mut d = TupleDecoder::new(types.clone());
            let mut out = Vec::new();
            for chunk in bytes.chunks(piece) {
                d.feed(&Bytes::copy_from_slice(chunk), &mut out).unwrap();
            }
            assert!(d.ended(), "piece {piece}");
            assert!(!d.has_partial(), "piece {piece}");
            assert_eq!(out, rows, "piece {piece}");
        }
    }

    /// The wire type a column of `dt` gets in a table the sink creates.
    fn wire(dt: &DataType) -> Type {
        match dt {
            DataType::Bool => Type::BOOL,
            DataType::Int16 => Type::INT2,
            DataType::Int32 => Type::INT4,
            DataType::Int64 => Type::INT8,
            DataType::Float32 => Type::FLOAT4,
            DataType::Float64 => Type::FLOAT8,
            DataType::Decimal { .. } => Type::NUMERIC,
            DataType::Text { .. } => Type::TEXT,
            DataType::Bytes => Type::BYTEA,
            DataType::Date => Type::DATE,
            DataType::Time => Type::TIME,
            DataType::Timestamp => Type::TIMESTAMP,
            DataType::TimestampTz => Type::TIMESTAMPTZ,
            DataType::Interval => Type::INTERVAL,
            DataType::Uuid => Type::UUID,
            DataType::Json => Type::JSONB,
            DataType::Array(e) => crate::types::array_of(&wire(e)).unwrap(),
        }
    }

    #[test]
    fn tuples_are_cut_however_the_stream_is_split_and_read_like_decoded_rows() {
        let f = all_types_table(None, &[]);
        let types: Vec<Type> = f
            .table
            .schema
            .columns
            .iter()
            .map(|c| wire(&c.data_type))
            .collect();
        let mut rows = f.rows.clone();
        rows.push(vec![Value::Null; types.len()]);
        let bytes = encode_rows(&rows, &types);
        for piece in [1, 5, 64, bytes.len()] {
            let mut split = RowSplitter::new(types.len());
            let mut tuples = Vec::new();
            for (i, chunk) in bytes.chunks(piece).enumerate() {
                split.feed(chunk).unwrap();
                if i % 3 == 0 {
                    let (b, ends) = split.take();
                    let mut start = 0;
                    for e in ends {
                        tuples.push(b[start..e].to_vec());
                        start = e;
                    }
                }
            }
            let (b, ends) = split.take();
            let mut start = 0;
            for e in ends {
                tuples.push(b[start..e].to_vec());
                start = e;
            }
            assert!(split.ended() && !split.has_partial(), "piece {piece}");
            assert_eq!(tuples.len(), rows.len(), "piece {piece}");
            for (t, want) in tuples.iter().zip(&rows) {
                let got = decode_tuple(&types, t).unwrap();
                assert_eq!(&got, want, "piece {piece}");
                let (mut from_wire, mut from_values) = (String::new(), String::new());
                checksum_tuple(&types, t, &mut from_wire).unwrap();
                migrate_core::checksum::encode_row(want, &mut from_values);
                assert_eq!(from_wire, from_values, "piece {piece}");
            }
        }
    }

    #[test]
    fn a_cut_stream_or_bytes_after_the_trailer_are_refused() {
        let types = vec![Type::INT8, Type::TEXT];
        let rows = vec![vec![Value::Int64(1), Value::Text("é".into())]];
        let bytes = encode_rows(&rows, &types);
        let mut split = RowSplitter::new(types.len());
        split.feed(&bytes[..bytes.len() - 3]).unwrap();
        assert!(!split.ended() && split.has_partial());
        let mut split = RowSplitter::new(types.len());
        let mut extra = bytes.to_vec();
        extra.extend_from_slice(b"xx");
        assert!(split.feed(&extra).is_err());
        let mut split = RowSplitter::new(types.len());
        split.feed(&bytes).unwrap();
        assert!(split.feed(b"x").is_err());
        // A tuple whose text is not UTF-8 names its column.
        let (b, _) = split.take();
        let mut bad = b.to_vec();
        let last = bad.len() - 1;
        bad[last] = 0xff;
        let err = checksum_tuple(&types, &bad, &mut String::new()).unwrap_err();
        assert_eq!(err.column, Some(1));
        assert!(decode_tuple(&types, &bad[..bad.len() - 1]).is_err());
    }

    #[test]
    fn a_bad_value_names_its_column_and_bad_framing_is_refused() {
        let types = vec![Type::INT8, Type::INT4];
        let mut e = TupleEncoder::new();
        let err = e
            .row(&[Value::Int64(1), Value::Text("x".into())], &types)
            .unwrap_err();
        assert_eq!(err.0, 1);

        // A row claiming a 4-byte int4 value but carrying 2 bytes.
        let mut b = BytesMut::new();
        b.put_slice(MAGIC);
        b.put_i32(0);
        b.put_i32(0);
        b.put_i16(2);
        b.put_i32(8);
        b.put_i64(5);
        b.put_i32(2);
        b.put_i16(9);
        b.put_i16(-1);
        let mut d = TupleDecoder::new(types.clone());
        let err = d.feed(&b.freeze(), &mut Vec::new()).unwrap_err();
        assert_eq!(err.column, Some(1));

        let mut d = TupleDecoder::new(types);
        assert!(d
            .feed(
                &Bytes::from_static(b"NOTCOPY-at-all-really"),
                &mut Vec::new()
            )
            .is_err());
    }
}
