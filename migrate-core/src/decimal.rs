//! Exact decimals of any length. Migration needs to *carry* numbers losslessly (Postgres NUMERIC
//! with 100+ digits, BigQuery BIGNUMERIC, Snowflake NUMBER(38,s)), not do arithmetic on them, so
//! a validated digit string is the whole representation: no f64 anywhere, no precision cap.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// An exact decimal number (or NaN / ±Infinity, which Postgres NUMERIC allows).
///
/// Stored as sign, significant digits and a scale. Keeps the scale it was given (`5.00` stays
/// `5.00` when written back) while [`Decimal::normalized`] and equality ignore trailing zeros.
#[derive(Clone)]
pub struct Decimal {
    repr: Repr,
}

#[derive(Clone, PartialEq, Eq)]
enum Repr {
    Finite {
        negative: bool,
        /// ASCII digits with no leading zeros ("" for zero).
        digits: String,
        /// Digits after the decimal point; may exceed `digits.len()` (0.001 = "1", scale 3).
        scale: u32,
    },
    NaN,
    PosInf,
    NegInf,
}

/// Why a string is not a decimal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid decimal {input:?}: {reason}")]
pub struct ParseDecimalError {
    input: String,
    reason: &'static str,
}

impl Decimal {
    /// Zero with scale 0.
    pub fn zero() -> Self {
        Decimal {
            repr: Repr::Finite {
                negative: false,
                digits: String::new(),
                scale: 0,
            },
        }
    }

    /// Not-a-number (Postgres NUMERIC 'NaN').
    pub fn nan() -> Self {
        Decimal { repr: Repr::NaN }
    }

    /// Positive or negative infinity (Postgres 14+ NUMERIC).
    pub fn infinity(negative: bool) -> Self {
        Decimal {
            repr: if negative { Repr::NegInf } else { Repr::PosInf },
        }
    }

    /// Builds a decimal from an unscaled integer's digits and a scale: `("12345", 2)` is 123.45.
    pub fn from_parts(negative: bool, digits: &str, scale: u32) -> Result<Self, ParseDecimalError> {
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseDecimalError {
                input: digits.to_string(),
                reason: "digits must be 0-9",
            });
        }
        let trimmed = digits.trim_start_matches('0');
        Ok(Decimal {
            repr: Repr::Finite {
                negative: negative && !trimmed.is_empty(),
                digits: trimmed.to_string(),
                scale,
            },
        })
    }

    /// Exact conversion from an integer.
    pub fn from_i128(v: i128) -> Self {
        let digits = v.unsigned_abs().to_string();
        // from_parts only fails on non-digits; an integer's digits never are.
        Decimal::from_parts(v < 0, &digits, 0).unwrap_or_else(|_| Decimal::zero())
    }

    /// Whether this is a finite number.
    pub fn is_finite(&self) -> bool {
        matches!(self.repr, Repr::Finite { .. })
    }

    /// The scale (digits after the point) as given; 0 for NaN and infinities.
    pub fn scale(&self) -> u32 {
        match &self.repr {
            Repr::Finite { scale, .. } => *scale,
            _ => 0,
        }
    }

    /// Number of significant digits (precision needed to hold the value at its scale).
    pub fn precision(&self) -> u32 {
        match &self.repr {
            Repr::Finite { digits, scale, .. } => (digits.len() as u32).max(*scale).max(1),
            _ => 0,
        }
    }

    /// Sign, unscaled digits (no leading zeros, "" for zero) and scale of a finite value.
    pub fn parts(&self) -> Option<(bool, &str, u32)> {
        match &self.repr {
            Repr::Finite {
                negative,
                digits,
                scale,
            } => Some((*negative, digits.as_str(), *scale)),
            _ => None,
        }
    }

    /// The same value with trailing fractional zeros removed: `5.00` → `5`, `-0.10` → `-0.1`.
    pub fn normalized(&self) -> Decimal {
        match &self.repr {
            Repr::Finite {
                negative,
                digits,
                scale,
            } => {
                let mut digits = digits.clone();
                let mut scale = *scale;
                while scale > 0 && digits.ends_with('0') {
                    digits.pop();
                    scale -= 1;
                }
                if digits.is_empty() {
                    scale = 0;
                }
                Decimal {
                    repr: Repr::Finite {
                        negative: *negative && !digits.is_empty(),
                        digits,
                        scale,
                    },
                }
            }
            _ => self.clone(),
        }
    }

    /// Appends what `self.normalized().to_string()` would give, without allocating (the
    /// checksum's per-value path).
    pub fn write_normalized(&self, out: &mut String) {
        let (negative, digits, scale) = match &self.repr {
            Repr::Finite {
                negative,
                digits,
                scale,
            } => (*negative, digits.as_str(), *scale as usize),
            Repr::NaN => return out.push_str("NaN"),
            Repr::PosInf => return out.push_str("Infinity"),
            Repr::NegInf => return out.push_str("-Infinity"),
        };
        let mut digits = digits;
        let mut scale = scale;
        while scale > 0 && digits.ends_with('0') {
            digits = &digits[..digits.len() - 1];
            scale -= 1;
        }
        if digits.is_empty() {
            return out.push('0');
        }
        if negative {
            out.push('-');
        }
        if scale == 0 {
            out.push_str(digits);
        } else if digits.len() > scale {
            let (int, frac) = digits.split_at(digits.len() - scale);
            out.push_str(int);
            out.push('.');
            out.push_str(frac);
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', scale - digits.len()));
            out.push_str(digits);
        }
    }

    /// The same value at a larger scale (pads zeros); `None` if `scale` is smaller than needed.
    pub fn with_scale(&self, new_scale: u32) -> Option<Decimal> {
        let n = self.normalized();
        match n.repr {
            Repr::Finite {
                negative,
                digits,
                scale,
            } if scale <= new_scale => {
                let mut digits = digits;
                if !digits.is_empty() {
                    digits.extend(std::iter::repeat_n('0', (new_scale - scale) as usize));
                }
                Some(Decimal {
                    repr: Repr::Finite {
                        negative,
                        digits,
                        scale: new_scale,
                    },
                })
            }
            Repr::Finite { .. } => None,
            other => Some(Decimal { repr: other }),
        }
    }
}

impl FromStr for Decimal {
    type Err = ParseDecimalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| ParseDecimalError {
            input: s.to_string(),
            reason,
        };
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "nan" => return Ok(Decimal::nan()),
            "infinity" | "+infinity" | "inf" => return Ok(Decimal::infinity(false)),
            "-infinity" | "-inf" => return Ok(Decimal::infinity(true)),
            _ => {}
        }
        let (negative, rest) = match t.as_bytes().first() {
            Some(b'-') => (true, &t[1..]),
            Some(b'+') => (false, &t[1..]),
            Some(_) => (false, t),
            None => return Err(err("empty")),
        };
        let (mantissa, exp) = match rest.find(['e', 'E']) {
            Some(i) => {
                let e: i64 = rest[i + 1..].parse().map_err(|_| err("bad exponent"))?;
                (&rest[..i], e)
            }
            None => (rest, 0),
        };
        let (int_part, frac_part) = match mantissa.split_once('.') {
            Some((i, f)) => (i, f),
            None => (mantissa, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(err("no digits"));
        }
        if !int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|b| b.is_ascii_digit())
        {
            return Err(err("unexpected character"));
        }
        let mut digits = String::with_capacity(int_part.len() + frac_part.len());
        digits.push_str(int_part);
        digits.push_str(frac_part);
        let mut scale = frac_part.len() as i64 - exp;
        // Postgres's NUMERIC holds 131 072 digits before the point: an exponent asking for
        // more is not a number any target holds (and would allocate its zeros).
        if scale < -131_072 {
            return Err(err("exponent out of range"));
        }
        if scale < 0 {
            digits.extend(std::iter::repeat_n('0', (-scale) as usize));
            scale = 0;
        }
        let scale = u32::try_from(scale).map_err(|_| err("exponent out of range"))?;
        Decimal::from_parts(negative, &digits, scale).map_err(|_| err("unexpected character"))
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::NaN => f.write_str("NaN"),
            Repr::PosInf => f.write_str("Infinity"),
            Repr::NegInf => f.write_str("-Infinity"),
            Repr::Finite {
                negative,
                digits,
                scale,
            } => {
                if *negative {
                    f.write_str("-")?;
                }
                let scale = *scale as usize;
                if scale == 0 {
                    return f.write_str(if digits.is_empty() { "0" } else { digits });
                }
                if digits.len() > scale {
                    let (i, fr) = digits.split_at(digits.len() - scale);
                    write!(f, "{i}.{fr}")
                } else {
                    f.write_str("0.")?;
                    for _ in 0..(scale - digits.len()) {
                        f.write_str("0")?;
                    }
                    f.write_str(digits)
                }
            }
        }
    }
}

impl fmt::Debug for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Decimal({self})")
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Decimal {}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal {
    /// Numeric order; NaN sorts above everything (as in Postgres), infinities at the ends.
    fn cmp(&self, other: &Self) -> Ordering {
        fn rank(r: &Repr) -> u8 {
            match r {
                Repr::NegInf => 0,
                Repr::Finite { .. } => 1,
                Repr::PosInf => 2,
                Repr::NaN => 3,
            }
        }
        let (a, b) = (self.normalized(), other.normalized());
        match (&a.repr, &b.repr) {
            (
                Repr::Finite {
                    negative: an,
                    digits: ad,
                    scale: asc,
                },
                Repr::Finite {
                    negative: bn,
                    digits: bd,
                    scale: bsc,
                },
            ) => {
                let mag = cmp_magnitude(ad, *asc, bd, *bsc);
                match (an, bn) {
                    (false, false) => mag,
                    (true, true) => mag.reverse(),
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                }
            }
            (x, y) => rank(x).cmp(&rank(y)),
        }
    }
}

impl std::hash::Hash for Decimal {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.normalized().to_string().hash(state)
    }
}

/// Compares |a| and |b| given normalized digit strings and scales.
fn cmp_magnitude(ad: &str, asc: u32, bd: &str, bsc: u32) -> Ordering {
    // Integer-part length decides first.
    let ai = ad.len() as i64 - asc as i64;
    let bi = bd.len() as i64 - bsc as i64;
    match (ad.is_empty(), bd.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        _ => {}
    }
    if ai != bi {
        return ai.cmp(&bi);
    }
    // Same magnitude: compare digit strings left-aligned, shorter padded with zeros.
    let n = ad.len().max(bd.len());
    let pad = |s: &str, i: usize| s.as_bytes().get(i).copied().unwrap_or(b'0');
    (0..n)
        .map(|i| pad(ad, i).cmp(&pad(bd, i)))
        .find(|o| *o != Ordering::Equal)
        .unwrap_or(Ordering::Equal)
}

impl serde::Serialize for Decimal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Decimal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl From<ParseDecimalError> for Error {
    fn from(e: ParseDecimalError) -> Self {
        Error::with_source(crate::ErrorKind::Validation, "invalid decimal", e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    proptest! {
        #[test]
        fn write_normalized_is_normalized_to_string(v in any::<i64>(), scale in 0u32..12, neg: bool) {
            let x = Decimal::from_parts(neg, &v.unsigned_abs().to_string(), scale).unwrap();
            let mut out = String::from("x");
            x.write_normalized(&mut out);
            prop_assert_eq!(out, format!("x{}", x.normalized()));
        }
    }

    #[test]
    fn carries_long_numerics_exactly() {
        let s = format!("-{}.{}", "9".repeat(120), "1234567890".repeat(5));
        assert_eq!(d(&s).to_string(), s);
        // BigQuery BIGNUMERIC max and Snowflake NUMBER(38,37).
        let big = "578960446186580977117854925043439539266.34992332820282019728792003956564819967";
        assert_eq!(d(big).to_string(), big);
        assert_eq!(d("0.1234567890123456789012345678901234567").scale(), 37);
    }

    #[test]
    fn keeps_scale_but_compares_by_value() {
        assert_eq!(d("5.00").to_string(), "5.00");
        assert_eq!(d("5.00"), d("5"));
        assert_eq!(d("5.00").normalized().to_string(), "5");
        assert_eq!(d("-0.000").to_string(), "0.000");
        assert_eq!(d("0.001").to_string(), "0.001");
        assert_eq!(d("1.5e3").to_string(), "1500");
        assert_eq!(d("1.5e-3").to_string(), "0.0015");
        assert!(d("-2") < d("-1.5"));
        assert!(d("10") > d("9.999"));
        assert!(d("NaN") > d("Infinity"));
        assert_eq!(d("12.3").with_scale(3).unwrap().to_string(), "12.300");
        assert!(d("12.345").with_scale(2).is_none());
    }

    #[test]
    fn rejects_garbage_with_the_input_named() {
        let e = "12a.5".parse::<Decimal>().unwrap_err();
        assert!(e.to_string().contains("12a.5"));
        assert!("".parse::<Decimal>().is_err());
        assert!(".".parse::<Decimal>().is_err());
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(neg: bool, int in "[0-9]{1,60}", frac in "[0-9]{0,60}") {
            let s = if frac.is_empty() { int.clone() } else { format!("{int}.{frac}") };
            let s = if neg { format!("-{s}") } else { s };
            let v = d(&s);
            prop_assert_eq!(d(&v.to_string()), v.clone());
            prop_assert_eq!(v.to_string().parse::<Decimal>().unwrap().scale(), v.scale());
        }

        #[test]
        fn order_matches_i128(a: i64, b: i64, sa in 0u32..6, sb in 0u32..6) {
            let da = Decimal::from_parts(a < 0, &a.unsigned_abs().to_string(), sa).unwrap();
            let db = Decimal::from_parts(b < 0, &b.unsigned_abs().to_string(), sb).unwrap();
            let (x, y) = (a as i128 * 10i128.pow(6 - sa), b as i128 * 10i128.pow(6 - sb));
            prop_assert_eq!(da.cmp(&db), x.cmp(&y));
        }
    }
}
