//! Postgres binary wire format ↔ [`Value`]. Hand-written for NUMERIC (base-10000 digits, any
//! precision, NaN and ±Infinity) and for times (micros since 2000-01-01 ↔ since 1970-01-01);
//! tokio-postgres frames COPY and rows around it.

use std::error::Error as StdError;

use bytes::{BufMut, BytesMut};
use migrate_core::{checksum, Decimal, Interval, Value};
use tokio_postgres::types::{FromSql, IsNull, Kind, ToSql, Type};

type BoxError = Box<dyn StdError + Sync + Send>;

/// Microseconds from 1970-01-01 to 2000-01-01 (Postgres' epoch).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days from 1970-01-01 to 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;

/// A value read from Postgres.
#[derive(Debug, Clone, PartialEq)]
pub struct PgValue(pub Value);

/// A value written to Postgres.
#[derive(Debug)]
pub struct PgParam<'a>(pub &'a Value);

fn take<const N: usize>(raw: &mut &[u8]) -> Result<[u8; N], BoxError> {
    if raw.len() < N {
        return Err("truncated binary value".into());
    }
    let (head, rest) = raw.split_at(N);
    *raw = rest;
    let mut a = [0u8; N];
    a.copy_from_slice(head);
    Ok(a)
}

fn i16_(raw: &mut &[u8]) -> Result<i16, BoxError> {
    Ok(i16::from_be_bytes(take(raw)?))
}
fn i32_(raw: &mut &[u8]) -> Result<i32, BoxError> {
    Ok(i32::from_be_bytes(take(raw)?))
}
fn i64_(raw: &mut &[u8]) -> Result<i64, BoxError> {
    Ok(i64::from_be_bytes(take(raw)?))
}

/// Appends the canonical checksum field of one non-null wire value to `out`: exactly
/// `checksum::encode_field(&decode(ty, raw)?)`, but text is read in place instead of copied
/// into a `String` first (most values migrated are text).
pub fn checksum_field(ty: &Type, raw: &[u8], out: &mut String) -> Result<(), BoxError> {
    match *ty {
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            checksum::encode_text_field(std::str::from_utf8(raw)?, out)
        }
        _ => checksum::encode_field(&decode(ty, raw)?, out),
    }
    Ok(())
}

/// Decodes one non-null value of type `ty`.
pub fn decode(ty: &Type, raw: &[u8]) -> Result<Value, BoxError> {
    let mut r = raw;
    let v = match *ty {
        Type::BOOL => Value::Bool(take::<1>(&mut r)?[0] != 0),
        Type::INT2 => Value::Int16(i16_(&mut r)?),
        Type::INT4 => Value::Int32(i32_(&mut r)?),
        Type::INT8 => Value::Int64(i64_(&mut r)?),
        Type::OID => Value::Int64(i64::from(u32::from_be_bytes(take(&mut r)?))),
        Type::FLOAT4 => Value::Float32(f32::from_be_bytes(take(&mut r)?)),
        Type::FLOAT8 => Value::Float64(f64::from_be_bytes(take(&mut r)?)),
        Type::NUMERIC => Value::Decimal(decode_numeric(raw)?),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            Value::Text(std::str::from_utf8(raw)?.to_string())
        }
        Type::JSON => Value::Json(std::str::from_utf8(raw)?.to_string()),
        Type::JSONB => match raw.split_first() {
            Some((1, rest)) => Value::Json(std::str::from_utf8(rest)?.to_string()),
            _ => return Err("unsupported jsonb version".into()),
        },
        Type::BYTEA => Value::Bytes(raw.to_vec()),
        Type::DATE => Value::Date(i32_(&mut r)?.saturating_add(PG_EPOCH_DAYS)),
        Type::TIME => Value::Time(i64_(&mut r)?),
        Type::TIMESTAMP => Value::Timestamp(i64_(&mut r)?.saturating_add(PG_EPOCH_MICROS)),
        Type::TIMESTAMPTZ => Value::TimestampTz(i64_(&mut r)?.saturating_add(PG_EPOCH_MICROS)),
        Type::INTERVAL => {
            let micros = i64_(&mut r)?;
            let days = i32_(&mut r)?;
            let months = i32_(&mut r)?;
            Value::Interval(Interval {
                months,
                days,
                micros,
            })
        }
        Type::UUID => Value::Uuid(take::<16>(&mut r)?),
        _ => match ty.kind() {
            Kind::Array(elem) => decode_array(elem, raw)?,
            _ => return Err(format!("unsupported Postgres type {ty}").into()),
        },
    };
    Ok(v)
}

fn decode_array(elem: &Type, raw: &[u8]) -> Result<Value, BoxError> {
    let mut r = raw;
    let ndim = i32_(&mut r)?;
    let _has_nulls = i32_(&mut r)?;
    let _elem_oid = i32_(&mut r)?;
    if ndim == 0 {
        return Ok(Value::Array(Vec::new()));
    }
    if ndim != 1 {
        return Err(
            format!("{ndim}-dimensional arrays are not supported (only one dimension)").into(),
        );
    }
    let len = i32_(&mut r)?;
    let _lower = i32_(&mut r)?;
    let mut items = Vec::with_capacity(len.max(0) as usize);
    for _ in 0..len {
        let n = i32_(&mut r)?;
        if n < 0 {
            items.push(Value::Null);
        } else {
            let n = n as usize;
            if r.len() < n {
                return Err("truncated array element".into());
            }
            let (v, rest) = r.split_at(n);
            items.push(decode(elem, v)?);
            r = rest;
        }
    }
    Ok(Value::Array(items))
}

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// NUMERIC: ndigits, weight, sign, dscale, then base-10000 digits; the value is
/// `Σ digit[i] × 10000^(weight − i)`, shown with `dscale` fractional decimal digits.
pub fn decode_numeric(raw: &[u8]) -> Result<Decimal, BoxError> {
    let mut r = raw;
    let ndigits = i16_(&mut r)?.max(0) as usize;
    let weight = i32::from(i16_(&mut r)?);
    let sign = u16::from_be_bytes(take(&mut r)?);
    let dscale = u16::from_be_bytes(take(&mut r)?) as usize;
    if r.len() < 2 * ndigits {
        return Err("truncated numeric".into());
    }
    match sign {
        NUMERIC_NAN => return Ok(Decimal::nan()),
        NUMERIC_PINF => return Ok(Decimal::infinity(false)),
        NUMERIC_NINF => return Ok(Decimal::infinity(true)),
        NUMERIC_POS | NUMERIC_NEG => {}
        other => return Err(format!("bad numeric sign {other:#x}").into()),
    }
    let group = |i: i32| -> u16 {
        if i < 0 || i as usize >= ndigits {
            0
        } else {
            let at = 2 * i as usize;
            u16::from_be_bytes([r[at], r[at + 1]])
        }
    };
    // The unscaled digits: integer groups (the first without leading zeros), then exactly
    // `dscale` fractional digits.
    let mut unscaled = String::with_capacity(4 * (weight.max(0) as usize + 1) + dscale);
    for g in 0..=weight {
        let d = group(g);
        if unscaled.is_empty() {
            if d != 0 {
                unscaled.push_str(itoa::Buffer::new().format(d));
            }
        } else {
            push_group(&mut unscaled, d, 4);
        }
    }
    let mut frac = 0;
    let mut g = weight + 1;
    while frac < dscale {
        let take = (dscale - frac).min(4);
        push_group(&mut unscaled, group(g), take);
        frac += take;
        g += 1;
    }
    Ok(Decimal::from_parts(
        sign == NUMERIC_NEG,
        &unscaled,
        dscale as u32,
    )?)
}

/// Appends the first `n` of a base-10000 digit's four decimal digits.
fn push_group(out: &mut String, d: u16, n: usize) {
    let ds = [d / 1000, d / 100 % 10, d / 10 % 10, d % 10];
    for x in &ds[..n] {
        out.push(char::from(b'0' + (*x % 10) as u8));
    }
}

/// Encodes a decimal as NUMERIC, keeping its scale as `dscale`.
pub fn encode_numeric(d: &Decimal, out: &mut BytesMut) {
    let Some((negative, digits, scale)) = d.parts() else {
        let sign = if d.to_string() == "NaN" {
            NUMERIC_NAN
        } else if d.to_string().starts_with('-') {
            NUMERIC_NINF
        } else {
            NUMERIC_PINF
        };
        out.put_i16(0);
        out.put_i16(0);
        out.put_u16(sign);
        out.put_u16(0);
        return;
    };
    // Pad the fraction to whole groups: the unscaled digits followed by `pad` zeros, cut into
    // groups of four from the right, have `frac_groups` groups after the point.
    let scale = scale as usize;
    let pad = (4 - scale % 4) % 4;
    let frac_groups = (scale + pad) / 4;
    let total = digits.len() + pad;
    let groups = total.div_ceil(4);
    let mut weight = groups as i32 - frac_groups as i32 - 1;
    let digit_at = |i: usize| -> u16 {
        // i-th decimal digit of the padded string, counted from the left.
        digits.as_bytes().get(i).map_or(0, |b| u16::from(b - b'0'))
    };
    let header = out.len();
    out.put_slice(&[0u8; 8]);
    let mut written = 0i16;
    let mut zeros_pending = 0i16;
    let first_len = total.saturating_sub(4 * groups.saturating_sub(1));
    let mut pos = 0usize;
    for g in 0..groups {
        let len = if g == 0 { first_len } else { 4 };
        let mut v = 0u16;
        for i in pos..pos + len {
            v = v * 10 + digit_at(i);
        }
        pos += len;
        if v == 0 {
            if written == 0 {
                weight -= 1; // a leading zero group is dropped
            } else {
                zeros_pending += 1; // kept only if a non-zero group follows
            }
            continue;
        }
        for _ in 0..zeros_pending {
            out.put_u16(0);
        }
        written += zeros_pending + 1;
        zeros_pending = 0;
        out.put_u16(v);
    }
    if written == 0 {
        weight = 0;
    }
    let sign = if negative && written > 0 {
        NUMERIC_NEG
    } else {
        NUMERIC_POS
    };
    let mut h = [0u8; 8];
    h[0..2].copy_from_slice(&written.to_be_bytes());
    h[2..4].copy_from_slice(&(weight as i16).to_be_bytes());
    h[4..6].copy_from_slice(&sign.to_be_bytes());
    h[6..8].copy_from_slice(&(scale as u16).to_be_bytes());
    out[header..header + 8].copy_from_slice(&h);
}

/// Encodes `v` for a column of type `ty`, widening where lossless (int2 into int8, ints into
/// numeric, text into json).
pub fn encode(v: &Value, ty: &Type, out: &mut BytesMut) -> Result<(), BoxError> {
    let mismatch = || -> BoxError {
        format!(
            "cannot write a {} value into a Postgres {ty} column",
            v.kind_name()
        )
        .into()
    };
    match (v, ty) {
        (Value::Bool(b), &Type::BOOL) => out.put_u8(u8::from(*b)),
        (Value::Int16(i), &Type::INT2) => out.put_i16(*i),
        (Value::Int16(i), &Type::INT4) => out.put_i32(i32::from(*i)),
        (Value::Int32(i), &Type::INT4) => out.put_i32(*i),
        (Value::Int16(i), &Type::INT8) => out.put_i64(i64::from(*i)),
        (Value::Int32(i), &Type::INT8) => out.put_i64(i64::from(*i)),
        (Value::Int64(i), &Type::INT8) => out.put_i64(*i),
        (Value::Int16(_) | Value::Int32(_) | Value::Int64(_), &Type::NUMERIC) => encode_numeric(
            &Decimal::from_i128(i128::from(v.as_i64().unwrap_or_default())),
            out,
        ),
        (Value::Float32(f), &Type::FLOAT4) => out.put_f32(*f),
        (Value::Float32(f), &Type::FLOAT8) => out.put_f64(f64::from(*f)),
        (Value::Float64(f), &Type::FLOAT8) => out.put_f64(*f),
        (Value::Decimal(d), &Type::NUMERIC) => encode_numeric(d, out),
        (Value::Text(s), &Type::TEXT | &Type::VARCHAR | &Type::BPCHAR | &Type::NAME) => {
            out.put_slice(s.as_bytes())
        }
        (Value::Text(s) | Value::Json(s), &Type::JSON) => out.put_slice(s.as_bytes()),
        (Value::Text(s) | Value::Json(s), &Type::JSONB) => {
            out.put_u8(1);
            out.put_slice(s.as_bytes())
        }
        (Value::Json(s), &Type::TEXT) => out.put_slice(s.as_bytes()),
        (Value::Bytes(b), &Type::BYTEA) => out.put_slice(b),
        (Value::Date(d), &Type::DATE) => {
            out.put_i32(d.checked_sub(PG_EPOCH_DAYS).ok_or_else(mismatch)?)
        }
        (Value::Time(t), &Type::TIME) => out.put_i64(*t),
        (Value::Timestamp(t), &Type::TIMESTAMP) | (Value::TimestampTz(t), &Type::TIMESTAMPTZ) => {
            out.put_i64(t.checked_sub(PG_EPOCH_MICROS).ok_or_else(mismatch)?)
        }
        (Value::Interval(i), &Type::INTERVAL) => {
            out.put_i64(i.micros);
            out.put_i32(i.days);
            out.put_i32(i.months);
        }
        (Value::Uuid(u), &Type::UUID) => out.put_slice(u),
        (Value::Array(items), _) => match ty.kind() {
            Kind::Array(elem) => encode_array(items, elem, out)?,
            _ => return Err(mismatch()),
        },
        _ => return Err(mismatch()),
    }
    Ok(())
}

fn encode_array(items: &[Value], elem: &Type, out: &mut BytesMut) -> Result<(), BoxError> {
    out.put_i32(i32::from(!items.is_empty()));
    out.put_i32(i32::from(items.iter().any(Value::is_null)));
    out.put_u32(elem.oid());
    if items.is_empty() {
        return Ok(());
    }
    out.put_i32(items.len() as i32);
    out.put_i32(1);
    for item in items {
        if item.is_null() {
            out.put_i32(-1);
            continue;
        }
        let at = out.len();
        out.put_i32(0);
        encode(item, elem, out)?;
        let len = (out.len() - at - 4) as i32;
        out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
    Ok(())
}

impl<'a> FromSql<'a> for PgValue {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        decode(ty, raw).map(PgValue)
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(PgValue(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

impl ToSql for PgParam<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        if self.0.is_null() {
            return Ok(IsNull::Yes);
        }
        encode(self.0, ty, out)?;
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(s: &str) -> String {
        let d: Decimal = s.parse().unwrap();
        let mut b = BytesMut::new();
        encode_numeric(&d, &mut b);
        decode_numeric(&b).unwrap().to_string()
    }

    #[test]
    fn numeric_round_trips_keep_value_and_scale() {
        for s in [
            "0",
            "0.000",
            "1",
            "-1",
            "10000",
            "12345.6789",
            "-0.0001",
            "0.00000001",
            "99999999.99",
            "1.5",
            "100000000000000000000000000000000000000000000.000000000000000000000000000001",
            "-578960446186580977117854925043439539266.34992332820282019728792003956564819967",
            "NaN",
            "Infinity",
            "-Infinity",
        ] {
            assert_eq!(round_trip(s), s, "{s}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_numeric_round_trips(digits in "[1-9][0-9]{0,60}|0", scale in 0u32..40, neg: bool) {
            let d = Decimal::from_parts(neg, &digits, scale).unwrap();
            let mut b = BytesMut::new();
            encode_numeric(&d, &mut b);
            let back = decode_numeric(&b).unwrap();
            proptest::prop_assert_eq!(back.to_string(), d.to_string());
        }
    }

    #[test]
    fn numeric_matches_postgres_bytes() {
        // SELECT numeric_send(12345.678) → 0003 0001 0000 0003 0001 0929 1a7c
        let bytes = [0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c];
        assert_eq!(decode_numeric(&bytes).unwrap().to_string(), "12345.678");
        let mut b = BytesMut::new();
        encode_numeric(&"12345.678".parse().unwrap(), &mut b);
        assert_eq!(&b[..], &bytes);
    }
}
