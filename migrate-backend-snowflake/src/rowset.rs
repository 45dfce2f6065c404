//! A statement's result rows as migrate's values, by each column's `rowtype`: Arrow IPC
//! streams (`rowsetBase64`, and each downloaded chunk) and JSON rowsets (`rowset`).
//!
//! Arrow, as Snowflake encodes it: `FIXED` as integers of `scale` decimal places (or
//! `decimal128`), `REAL` as doubles, `DATE` as days, `TIME` as units of 10^-scale seconds,
//! timestamps as units of 10^-scale seconds or as `{epoch (s), fraction (ns)[, timezone]}`,
//! semi-structured values as JSON text. The emulator marks a NULL timestamp in the struct's
//! children, which it declares non-nullable — arrow-rs rejects that stream — so streams are
//! read message by message with struct children made nullable before each batch is decoded,
//! and a row whose `epoch` is NULL is NULL (safe code throughout).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch, StructArray};
use arrow_buffer::Buffer;
use arrow_ipc::{
    convert::try_fb_to_schema, reader::read_record_batch, root_as_message, MessageHeader,
};
use arrow_schema::{DataType as ArrowType, Field, Schema, SchemaRef};
use base64::Engine as _;
use migrate_core::decimal::Decimal;
use migrate_core::{DataType, Error, Result, Row, Value};
use serde_json::Value as Json;

use crate::types::from_snowflake;

/// One result column, as `rowtype` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultColumn {
    /// Its name.
    pub name: String,
    /// Snowflake's type name, lower-case (`fixed`, `text`, `timestamp_ntz`, …).
    pub ty: String,
    /// Digits, for `fixed`.
    pub precision: Option<u32>,
    /// Decimal places (`fixed`) or fractional-second digits (times, timestamps).
    pub scale: Option<u32>,
    /// Characters, for `text`.
    pub length: Option<u32>,
    /// Whether it may be NULL.
    pub nullable: bool,
}

impl ResultColumn {
    /// The columns of a `rowtype` array.
    pub fn from_rowtype(rowtype: &Json) -> Vec<ResultColumn> {
        let num = |v: &Json| v.as_u64().and_then(|n| u32::try_from(n).ok());
        rowtype
            .as_array()
            .map(|cols| {
                cols.iter()
                    .map(|c| ResultColumn {
                        name: c["name"].as_str().unwrap_or_default().to_string(),
                        ty: c["type"].as_str().unwrap_or_default().to_ascii_lowercase(),
                        precision: num(&c["precision"]),
                        scale: num(&c["scale"]),
                        length: num(&c["length"]),
                        nullable: c["nullable"].as_bool().unwrap_or(true),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// migrate's type for this column; an error naming it when migrate cannot read it.
    pub fn data_type(&self) -> Result<DataType> {
        from_snowflake(&self.ty, self.precision, self.scale, self.length).ok_or_else(|| {
            Error::unsupported(format!(
                "Snowflake column {:?} is of type {}, which migrate cannot read",
                self.name, self.ty
            ))
        })
    }
}

/// The bytes of a base64 Arrow IPC stream (`rowsetBase64`; empty text is no bytes).
pub fn base64_bytes(text: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| Error::fatal(format!("Snowflake sent a result that is not base64: {e}")))
}

/// The rows of one Arrow IPC stream (an inline result, or a downloaded chunk), each column
/// as the type its `rowtype` names.
pub fn arrow_stream(bytes: &[u8], columns: &[ResultColumn]) -> Result<Vec<Row>> {
    let types: Vec<DataType> = columns
        .iter()
        .map(|c| c.data_type())
        .collect::<Result<_>>()?;
    arrow_rows(bytes, columns, &types)
}

/// The rows of one Arrow IPC stream, column `i` read as `types[i]` — the type a table was
/// created from, where `rowtype` alone cannot tell (a uuid in a `VARCHAR`, the elements of an
/// `ARRAY`, a `real` in a `FLOAT`).
pub fn arrow_rows(bytes: &[u8], columns: &[ResultColumn], types: &[DataType]) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    if bytes.is_empty() {
        return Ok(rows);
    }
    for batch in batches(bytes)? {
        if batch.num_columns() != columns.len() || types.len() != columns.len() {
            return Err(Error::fatal(format!(
                "Snowflake sent {} columns for a rowtype of {} ({} expected)",
                batch.num_columns(),
                columns.len(),
                types.len()
            )));
        }
        for i in 0..batch.num_rows() {
            let row = batch
                .columns()
                .iter()
                .zip(columns.iter().zip(types))
                .map(|(array, (c, t))| value(array, i, c, t))
                .collect::<Result<Row>>()?;
            rows.push(row);
        }
    }
    Ok(rows)
}

/// The record batches of an IPC stream, each decoded against the stream's schema with every
/// struct child nullable (see the module docs).
fn batches(bytes: &[u8]) -> Result<Vec<RecordBatch>> {
    let bad =
        |why: String| Error::fatal(format!("Snowflake sent an unreadable Arrow result: {why}"));
    let mut out = Vec::new();
    let mut schema: Option<SchemaRef> = None;
    let mut pos = 0usize;
    let word = |at: usize| -> Result<i32> {
        bytes
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(i32::from_le_bytes)
            .ok_or_else(|| bad("the stream ends inside a message length".into()))
    };
    while pos + 4 <= bytes.len() {
        let mut len = word(pos)?;
        pos += 4;
        if len == -1 {
            len = word(pos)?;
            pos += 4;
        }
        if len <= 0 {
            break; // end of stream
        }
        let len = len as usize;
        let meta = bytes
            .get(pos..pos + len)
            .ok_or_else(|| bad("a message is cut short".into()))?;
        pos += len;
        let message = root_as_message(meta).map_err(|e| bad(e.to_string()))?;
        let body_len = usize::try_from(message.bodyLength()).map_err(|e| bad(e.to_string()))?;
        let body = bytes
            .get(pos..pos + body_len)
            .ok_or_else(|| bad("a message body is cut short".into()))?;
        pos += body_len;
        match message.header_type() {
            MessageHeader::Schema => {
                let fb = message
                    .header_as_schema()
                    .ok_or_else(|| bad("a schema message without a schema".into()))?;
                let decoded = try_fb_to_schema(fb).map_err(|e| bad(e.to_string()))?;
                schema = Some(Arc::new(nullable_children(&decoded)));
            }
            MessageHeader::RecordBatch => {
                let fb = message
                    .header_as_record_batch()
                    .ok_or_else(|| bad("a batch message without a batch".into()))?;
                let schema = schema
                    .clone()
                    .ok_or_else(|| bad("a batch before the schema".into()))?;
                let batch = read_record_batch(
                    &Buffer::from_slice_ref(body),
                    fb,
                    schema,
                    &HashMap::new(),
                    None,
                    &message.version(),
                )
                .map_err(|e| bad(e.to_string()))?;
                out.push(batch);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// `schema` with every struct's children nullable.
fn nullable_children(schema: &Schema) -> Schema {
    fn relax(f: &Field) -> Field {
        match f.data_type() {
            ArrowType::Struct(children) => {
                let children: Vec<Field> = children
                    .iter()
                    .map(|c| relax(c).with_nullable(true))
                    .collect();
                f.clone().with_data_type(ArrowType::Struct(children.into()))
            }
            _ => f.clone(),
        }
    }
    let fields: Vec<Field> = schema.fields().iter().map(|f| relax(f)).collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// Row `i` of `array`, a column described as `c`, as migrate's type `t`.
fn value(array: &ArrayRef, i: usize, c: &ResultColumn, t: &DataType) -> Result<Value> {
    if array.is_null(i) {
        return Ok(Value::Null);
    }
    let scale = c.scale.unwrap_or(0);
    let unexpected = || {
        Error::fatal(format!(
            "Snowflake column {:?} ({}) arrived as Arrow {}",
            c.name,
            c.ty,
            array.data_type()
        ))
    };
    Ok(match c.ty.as_str() {
        "fixed" => {
            let unscaled: i128 = match array.data_type() {
                ArrowType::Int8 => array.as_primitive::<Int8Type>().value(i).into(),
                ArrowType::Int16 => array.as_primitive::<Int16Type>().value(i).into(),
                ArrowType::Int32 => array.as_primitive::<Int32Type>().value(i).into(),
                ArrowType::Int64 => array.as_primitive::<Int64Type>().value(i).into(),
                ArrowType::Decimal128(_, s) => {
                    let v = array.as_primitive::<Decimal128Type>().value(i);
                    return fixed(v, u32::try_from(*s).unwrap_or(0), c, t);
                }
                _ => return Err(unexpected()),
            };
            fixed(unscaled, scale, c, t)?
        }
        "real" | "float" | "double" => match array.data_type() {
            ArrowType::Float64 => match t {
                DataType::Float32 => {
                    Value::Float32(array.as_primitive::<Float64Type>().value(i) as f32)
                }
                _ => Value::Float64(array.as_primitive::<Float64Type>().value(i)),
            },
            _ => return Err(unexpected()),
        },
        "text" | "variant" | "object" | "array" => {
            let text = match array.data_type() {
                ArrowType::Utf8 => array.as_string::<i32>().value(i).to_string(),
                ArrowType::LargeUtf8 => array.as_string::<i64>().value(i).to_string(),
                _ => return Err(unexpected()),
            };
            match t {
                DataType::Json => Value::Json(text),
                DataType::Array(element) => json_array(&text, c, element)?,
                DataType::Uuid => uuid(&text, c)?,
                _ => Value::Text(text),
            }
        }
        "binary" => match array.data_type() {
            ArrowType::Binary => Value::Bytes(array.as_binary::<i32>().value(i).to_vec()),
            ArrowType::LargeBinary => Value::Bytes(array.as_binary::<i64>().value(i).to_vec()),
            _ => return Err(unexpected()),
        },
        "boolean" => match array.data_type() {
            ArrowType::Boolean => Value::Bool(array.as_boolean().value(i)),
            _ => return Err(unexpected()),
        },
        "date" => match array.data_type() {
            ArrowType::Date32 => Value::Date(array.as_primitive::<Date32Type>().value(i)),
            ArrowType::Int32 => Value::Date(array.as_primitive::<Int32Type>().value(i)),
            _ => return Err(unexpected()),
        },
        "time" => {
            let units: i64 = match array.data_type() {
                ArrowType::Int32 => array.as_primitive::<Int32Type>().value(i).into(),
                ArrowType::Int64 => array.as_primitive::<Int64Type>().value(i),
                _ => return Err(unexpected()),
            };
            Value::Time(to_micros(units, scale, c)?)
        }
        "timestamp_ntz" | "timestamp_ltz" | "timestamp_tz" => {
            let micros = match array.data_type() {
                ArrowType::Int64 => {
                    to_micros(array.as_primitive::<Int64Type>().value(i), scale, c)?
                }
                ArrowType::Struct(_) => match struct_micros(array.as_struct(), i, scale, c)? {
                    Some(m) => m,
                    None => return Ok(Value::Null),
                },
                _ => return Err(unexpected()),
            };
            match c.ty.as_str() {
                "timestamp_ntz" => Value::Timestamp(micros),
                _ => Value::TimestampTz(micros),
            }
        }
        _ => return Err(unexpected()),
    })
}

/// An unscaled `FIXED` value of `scale` decimal places as `t` (an integer or a decimal).
fn fixed(unscaled: i128, scale: u32, c: &ResultColumn, t: &DataType) -> Result<Value> {
    let out_of_range = || {
        Error::validation(format!(
            "Snowflake column {:?}: {unscaled} (scale {scale}) does not fit {t}",
            c.name
        ))
    };
    if scale == 0 {
        match t {
            DataType::Int16 => {
                return i16::try_from(unscaled)
                    .map(Value::Int16)
                    .map_err(|_| out_of_range())
            }
            DataType::Int32 => {
                return i32::try_from(unscaled)
                    .map(Value::Int32)
                    .map_err(|_| out_of_range())
            }
            DataType::Int64 => {
                return i64::try_from(unscaled)
                    .map(Value::Int64)
                    .map_err(|_| out_of_range())
            }
            _ => {}
        }
    }
    let digits = unscaled.unsigned_abs().to_string();
    Decimal::from_parts(unscaled < 0, &digits, scale)
        .map(Value::Decimal)
        .map_err(|_| out_of_range())
}

/// `units` of 10^-scale seconds as microseconds (finer digits must be zero: migrate keeps
/// microseconds, as Postgres does).
fn to_micros(units: i64, scale: u32, c: &ResultColumn) -> Result<i64> {
    let scale = scale.min(9);
    if scale <= 6 {
        return units.checked_mul(10_i64.pow(6 - scale)).ok_or_else(|| {
            Error::validation(format!(
                "Snowflake column {:?}: {units} out of range",
                c.name
            ))
        });
    }
    let div = 10_i64.pow(scale - 6);
    if units % div != 0 {
        return Err(Error::validation(format!(
            "Snowflake column {:?}: a value finer than microseconds ({units} × 10^-{scale} s), which migrate would round",
            c.name
        )));
    }
    Ok(units / div)
}

/// Row `i` of a `{epoch, fraction[, timezone]}` timestamp struct as microseconds since the
/// epoch (UTC); `None` when `epoch` is NULL (the emulator's NULL).
fn struct_micros(s: &StructArray, i: usize, scale: u32, c: &ResultColumn) -> Result<Option<i64>> {
    let child = |name: &str| s.column_by_name(name);
    let Some(epoch) = child("epoch") else {
        return Err(Error::fatal(format!(
            "Snowflake column {:?}: a timestamp without epoch",
            c.name
        )));
    };
    if epoch.is_null(i) {
        return Ok(None);
    }
    let epoch = match epoch.data_type() {
        ArrowType::Int64 => epoch.as_primitive::<Int64Type>().value(i),
        other => {
            return Err(Error::fatal(format!(
                "Snowflake column {:?}: epoch as {other}",
                c.name
            )))
        }
    };
    match child("fraction") {
        // Seconds and nanoseconds.
        Some(f) => {
            let nanos: i64 = match f.data_type() {
                ArrowType::Int32 if !f.is_null(i) => f.as_primitive::<Int32Type>().value(i).into(),
                ArrowType::Int32 => 0,
                other => {
                    return Err(Error::fatal(format!(
                        "Snowflake column {:?}: fraction as {other}",
                        c.name
                    )))
                }
            };
            if nanos % 1_000 != 0 {
                return Err(Error::validation(format!(
                    "Snowflake column {:?}: a timestamp finer than microseconds, which migrate would round",
                    c.name
                )));
            }
            epoch
                .checked_mul(1_000_000)
                .and_then(|s| s.checked_add(nanos / 1_000))
                .map(Some)
                .ok_or_else(|| {
                    Error::validation(format!(
                        "Snowflake column {:?}: timestamp out of range",
                        c.name
                    ))
                })
        }
        // Without a fraction, the epoch counts 10^-scale seconds.
        None => to_micros(epoch, scale, c).map(Some),
    }
}

/// A JSON array's text as an array of `element` values: JSON values when the element type is
/// unknown (an `ARRAY` column read from Snowflake), else each element read back from the form
/// the sink wrote it in (see `sql`: numbers and booleans as JSON, everything else as its
/// canonical text).
fn json_array(text: &str, c: &ResultColumn, element: &DataType) -> Result<Value> {
    let bad = |why: String| {
        Error::validation(format!(
            "Snowflake column {:?}: an ARRAY element that is not {element}: {why}",
            c.name
        ))
    };
    let items: Vec<Json> = serde_json::from_str(text).map_err(|e| {
        Error::validation(format!(
            "Snowflake column {:?}: an ARRAY that is not a JSON array: {e}",
            c.name
        ))
    })?;
    let read = |v: Json| -> Result<Value> {
        if v.is_null() {
            return Ok(Value::Null);
        }
        let text = || match &v {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        };
        let int = || text().parse::<i64>().map_err(|e| bad(e.to_string()));
        Ok(match element {
            DataType::Json => Value::Json(v.to_string()),
            // Reasons name the type, never the value.
            DataType::Bool => {
                Value::Bool(v.as_bool().ok_or_else(|| bad("not true or false".into()))?)
            }
            DataType::Int16 => Value::Int16(i16::try_from(int()?).map_err(|e| bad(e.to_string()))?),
            DataType::Int32 => Value::Int32(i32::try_from(int()?).map_err(|e| bad(e.to_string()))?),
            DataType::Int64 => Value::Int64(int()?),
            DataType::Decimal { .. } => Value::Decimal(
                text()
                    .parse::<Decimal>()
                    .map_err(|_| bad("not a number".into()))?,
            ),
            DataType::Float32 | DataType::Float64 => {
                let x = text().parse::<f64>().map_err(|e| bad(e.to_string()))?;
                match element {
                    DataType::Float32 => Value::Float32(x as f32),
                    _ => Value::Float64(x),
                }
            }
            DataType::Text { .. } => Value::Text(text()),
            DataType::Uuid => uuid(&text(), c)?,
            DataType::Bytes => Value::Bytes(unhex(&text()).ok_or_else(|| bad(text()))?),
            DataType::Date => Value::Date(i32::try_from(int()?).map_err(|e| bad(e.to_string()))?),
            DataType::Time => Value::Time(int()?),
            DataType::Timestamp => Value::Timestamp(int()?),
            DataType::TimestampTz => Value::TimestampTz(int()?),
            DataType::Interval | DataType::Array(_) => {
                return Err(bad("migrate reads no such element from Snowflake".into()))
            }
        })
    };
    Ok(Value::Array(
        items.into_iter().map(read).collect::<Result<_>>()?,
    ))
}

/// A uuid's text as a uuid.
fn uuid(text: &str, c: &ResultColumn) -> Result<Value> {
    uuid::Uuid::parse_str(text)
        .map(|u| Value::Uuid(u.into_bytes()))
        .map_err(|e| {
            Error::validation(format!(
                "Snowflake column {:?}: {text:?} is not a uuid: {e}",
                c.name
            ))
        })
}

/// Lower- or upper-case hex as bytes.
fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Rows of a JSON `rowset` as migrate's values, column `i` read as `types[i]`: the form DML
/// counts take, and the one Snowflake answers any statement in when a session's result format
/// is JSON. Cells are text in the connector's JSON forms: numbers as decimal text, dates as
/// days since the epoch, times as seconds since midnight and timestamps as seconds since the
/// epoch (both with up to nine decimals; a `TIMESTAMP_TZ` followed by its offset), binary as
/// hex, booleans as `1`/`0` or `true`/`false`, semi-structured values as JSON text.
pub fn json_rows(
    text_rows: &[Vec<Option<String>>],
    columns: &[ResultColumn],
    types: &[DataType],
) -> Result<Vec<Row>> {
    text_rows
        .iter()
        .map(|row| {
            row.iter()
                .zip(columns.iter().zip(types))
                .map(|(cell, (c, t))| match cell {
                    None => Ok(Value::Null),
                    Some(text) => json_cell(text, c, t),
                })
                .collect()
        })
        .collect()
}

/// Seconds with up to nine decimals (`-1.500000000`) as microseconds; finer digits must be
/// zero.
fn seconds_to_micros(text: &str, c: &ResultColumn) -> Result<i64> {
    let bad = || {
        Error::validation(format!(
            "Snowflake column {:?}: a value that is not a time",
            c.name
        ))
    };
    let d: Decimal = text.parse().map_err(|_| bad())?;
    let mut s = String::new();
    d.write_normalized(&mut s);
    let (whole, frac) = s.split_once('.').unwrap_or((&s, ""));
    if frac.len() > 6 {
        return Err(Error::validation(format!(
            "Snowflake column {:?}: a value finer than microseconds, which migrate would round",
            c.name
        )));
    }
    let negative = whole.starts_with('-');
    let secs: i64 = whole.parse().map_err(|_| bad())?;
    let frac_us: i64 = format!("{frac:0<6}").parse().map_err(|_| bad())?;
    let us = secs.checked_mul(1_000_000).ok_or_else(bad)?;
    Ok(match negative || (secs == 0 && s.starts_with('-')) {
        true => us - frac_us,
        false => us + frac_us,
    })
}

/// One JSON rowset cell as `t` (see [`json_rows`]).
fn json_cell(text: &str, c: &ResultColumn, t: &DataType) -> Result<Value> {
    let bad = || {
        Error::validation(format!(
            "Snowflake column {:?} ({}): a value that does not read as {t}",
            c.name, c.ty
        ))
    };
    Ok(match c.ty.as_str() {
        "fixed" => {
            let d: Decimal = text.parse().map_err(|_| bad())?;
            match t {
                DataType::Int16 => Value::Int16(text.parse().map_err(|_| bad())?),
                DataType::Int32 => Value::Int32(text.parse().map_err(|_| bad())?),
                DataType::Int64 => Value::Int64(text.parse().map_err(|_| bad())?),
                _ => Value::Decimal(d),
            }
        }
        "real" | "float" | "double" => {
            let x: f64 = match text {
                "NaN" => f64::NAN,
                "inf" | "Infinity" => f64::INFINITY,
                "-inf" | "-Infinity" => f64::NEG_INFINITY,
                _ => text.parse().map_err(|_| bad())?,
            };
            match t {
                DataType::Float32 => Value::Float32(x as f32),
                _ => Value::Float64(x),
            }
        }
        "text" | "variant" | "object" | "array" => match t {
            DataType::Json => Value::Json(text.to_string()),
            DataType::Array(element) => json_array(text, c, element)?,
            DataType::Uuid => uuid(text, c)?,
            _ => Value::Text(text.to_string()),
        },
        "binary" => Value::Bytes(unhex(text).ok_or_else(bad)?),
        "boolean" => match text {
            "1" | "true" | "TRUE" => Value::Bool(true),
            "0" | "false" | "FALSE" => Value::Bool(false),
            _ => return Err(bad()),
        },
        "date" => Value::Date(text.parse().map_err(|_| bad())?),
        "time" => Value::Time(seconds_to_micros(text, c)?),
        "timestamp_ntz" => Value::Timestamp(seconds_to_micros(text, c)?),
        "timestamp_ltz" | "timestamp_tz" => {
            // A TIMESTAMP_TZ cell is "<epoch seconds> <offset minutes + 1440>": the instant
            // is the first part.
            let epoch = text.split_whitespace().next().unwrap_or(text);
            Value::TimestampTz(seconds_to_micros(epoch, c)?)
        }
        // A type migrate does not read (asked for as text): its text.
        _ if matches!(t, DataType::Text { .. }) => Value::Text(text.to_string()),
        _ => return Err(bad()),
    })
}

/// The rows of a JSON `rowset` (every cell a string or null) as text (DML counts and the
/// like).
pub fn json_rowset(rowset: &Json) -> Vec<Vec<Option<String>>> {
    rowset
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    r.as_array()
                        .map(|cells| {
                            cells
                                .iter()
                                .map(|c| c.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_json_rowset_reads_as_the_arrow_one_would() {
        let rowtype = json!([
            {"name": "ID", "type": "fixed", "precision": 19, "scale": 0},
            {"name": "AMT", "type": "fixed", "precision": 12, "scale": 2},
            {"name": "OK", "type": "boolean"},
            {"name": "D", "type": "date"},
            {"name": "T", "type": "time", "scale": 6},
            {"name": "TS", "type": "timestamp_ntz", "scale": 6},
            {"name": "TZ", "type": "timestamp_tz", "scale": 6},
            {"name": "B", "type": "binary"},
            {"name": "U", "type": "text", "length": 36},
            {"name": "F", "type": "real"}
        ]);
        let columns = ResultColumn::from_rowtype(&rowtype);
        let types = vec![
            DataType::Int64,
            DataType::Decimal {
                precision: Some(12),
                scale: Some(2),
            },
            DataType::Bool,
            DataType::Date,
            DataType::Time,
            DataType::Timestamp,
            DataType::TimestampTz,
            DataType::Bytes,
            DataType::Uuid,
            DataType::Float32,
        ];
        let cells = |v: &[Option<&str>]| v.iter().map(|c| c.map(str::to_string)).collect();
        let rows = json_rows(
            &[
                cells(&[
                    Some("-9223372036854775808"),
                    Some("-0.50"),
                    Some("1"),
                    Some("-719162"),
                    Some("86399.999999000"),
                    Some("-0.000001000"),
                    Some("1700000000.123456000 1500"),
                    Some("00ABff"),
                    Some("ffffffff-ffff-ffff-ffff-ffffffffffff"),
                    Some("-1.5"),
                ]),
                cells(&[
                    Some("1"),
                    None,
                    Some("false"),
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    Some("NaN"),
                ]),
            ],
            &columns,
            &types,
        )
        .unwrap();
        assert_eq!(rows[0][0], Value::Int64(i64::MIN));
        assert_eq!(migrate_core::checksum::canonical_text(&rows[0][1]), "-0.5");
        assert_eq!(rows[0][2], Value::Bool(true));
        assert_eq!(rows[0][3], Value::Date(-719_162));
        assert_eq!(rows[0][4], Value::Time(86_399_999_999));
        assert_eq!(rows[0][5], Value::Timestamp(-1));
        assert_eq!(rows[0][6], Value::TimestampTz(1_700_000_000_123_456));
        assert_eq!(rows[0][7], Value::Bytes(vec![0, 0xab, 0xff]));
        assert_eq!(rows[0][8], Value::Uuid([0xff; 16]));
        assert_eq!(rows[0][9], Value::Float32(-1.5));
        assert_eq!(rows[1][1], Value::Null);
        assert_eq!(rows[1][2], Value::Bool(false));
        // Finer than microseconds is refused, not rounded.
        let e = json_rows(
            &[cells(&[
                None,
                None,
                None,
                None,
                Some("1.0000005"),
                None,
                None,
                None,
                None,
                None,
            ])],
            &columns,
            &types,
        )
        .unwrap_err();
        assert!(e.to_string().contains("finer than microseconds"), "{e}");
    }
}
