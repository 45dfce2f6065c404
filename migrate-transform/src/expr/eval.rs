//! Evaluating a typed tree against one row. NULL propagates; a rule a value breaks (a
//! division by zero, an overflow, a failed cast) is an error naming the rule, not the value.

use std::cmp::Ordering;

use migrate_core::{Decimal, Value};

use super::check::{Arith, Cmp, Node, Num, Order, TextFn};
use crate::cast::{cast, to_text};

type R = Result<Value, String>;

pub(crate) fn eval(n: &Node, row: &[Value]) -> R {
    match n {
        Node::Column(i) => Ok(row.get(*i).cloned().unwrap_or(Value::Null)),
        Node::Lit(v) => Ok(v.clone()),
        Node::Not(x) => Ok(match eval(x, row)? {
            Value::Bool(b) => Value::Bool(!b),
            _ => Value::Null,
        }),
        Node::Neg(x, k) => {
            let v = eval(x, row)?;
            if v.is_null() {
                return Ok(Value::Null);
            }
            arith(Arith::Sub, &num(&Value::Int64(0), *k)?, &num(&v, *k)?)
        }
        Node::Arith(op, l, r, k) => {
            let (a, b) = (eval(l, row)?, eval(r, row)?);
            if a.is_null() || b.is_null() {
                return Ok(Value::Null);
            }
            arith(*op, &num(&a, *k)?, &num(&b, *k)?)
        }
        Node::Cmp(c, l, r, order) => {
            let (a, b) = (eval(l, row)?, eval(r, row)?);
            Ok(match compare(&a, &b, *order)? {
                None => Value::Null,
                Some(o) => Value::Bool(match c {
                    Cmp::Eq => o == Ordering::Equal,
                    Cmp::Ne => o != Ordering::Equal,
                    Cmp::Lt => o == Ordering::Less,
                    Cmp::Le => o != Ordering::Greater,
                    Cmp::Gt => o == Ordering::Greater,
                    Cmp::Ge => o != Ordering::Less,
                }),
            })
        }
        // The right side only when the left does not decide (`x <> 0 AND y / x > 1`).
        Node::And(l, r) => Ok(match eval(l, row)? {
            Value::Bool(false) => Value::Bool(false),
            left => match (left, eval(r, row)?) {
                (_, Value::Bool(false)) => Value::Bool(false),
                (Value::Bool(true), Value::Bool(true)) => Value::Bool(true),
                _ => Value::Null,
            },
        }),
        Node::Or(l, r) => Ok(match eval(l, row)? {
            Value::Bool(true) => Value::Bool(true),
            left => match (left, eval(r, row)?) {
                (_, Value::Bool(true)) => Value::Bool(true),
                (Value::Bool(false), Value::Bool(false)) => Value::Bool(false),
                _ => Value::Null,
            },
        }),
        Node::IsNull(x, negated) => Ok(Value::Bool(eval(x, row)?.is_null() != *negated)),
        Node::InList(x, items, order, negated) => {
            let v = eval(x, row)?;
            if v.is_null() {
                return Ok(Value::Null);
            }
            let mut saw_null = false;
            for i in items {
                match compare(&v, &eval(i, row)?, *order)? {
                    Some(Ordering::Equal) => return Ok(Value::Bool(!negated)),
                    None => saw_null = true,
                    Some(_) => {}
                }
            }
            Ok(match saw_null {
                true => Value::Null,
                false => Value::Bool(*negated),
            })
        }
        Node::Like(x, re, negated) => Ok(match eval(x, row)? {
            Value::Text(s) => Value::Bool(re.is_match(&s) != *negated),
            _ => Value::Null,
        }),
        Node::Case(operand, whens, otherwise, order) => {
            let subject = operand.as_ref().map(|o| eval(o, row)).transpose()?;
            for (cond, result) in whens {
                let c = eval(cond, row)?;
                let taken = match &subject {
                    Some(s) => compare(s, &c, *order)? == Some(Ordering::Equal),
                    None => matches!(c, Value::Bool(true)),
                };
                if taken {
                    return eval(result, row);
                }
            }
            match otherwise {
                Some(o) => eval(o, row),
                None => Ok(Value::Null),
            }
        }
        Node::Cast(x, to) => cast(&eval(x, row)?, to),
        Node::Concat(parts) => {
            let mut out = String::new();
            for p in parts {
                let v = eval(p, row)?;
                if !v.is_null() {
                    out.push_str(&to_text(&v));
                }
            }
            Ok(Value::Text(out))
        }
        Node::Text(f, x) => Ok(match eval(x, row)? {
            Value::Text(s) => Value::Text(match f {
                TextFn::Lower => s.to_lowercase(),
                TextFn::Upper => s.to_uppercase(),
                TextFn::Trim => s.trim().to_string(),
            }),
            _ => Value::Null,
        }),
        Node::Length(x) => Ok(match eval(x, row)? {
            Value::Text(s) => Value::Int64(s.chars().count() as i64),
            _ => Value::Null,
        }),
        Node::Abs(x, k) => {
            let v = eval(x, row)?;
            if v.is_null() {
                return Ok(Value::Null);
            }
            let v = num(&v, *k)?;
            let negative =
                compare(&v, &num(&Value::Int64(0), *k)?, Order::Num(*k))? == Some(Ordering::Less);
            match negative {
                true => arith(Arith::Sub, &num(&Value::Int64(0), *k)?, &v),
                false => Ok(v),
            }
        }
        Node::Coalesce(items) => {
            for i in items {
                let v = eval(i, row)?;
                if !v.is_null() {
                    return Ok(v);
                }
            }
            Ok(Value::Null)
        }
        Node::Substring(s, from, len) => {
            let (s, from) = (eval(s, row)?, eval(from, row)?);
            let len = len.as_ref().map(|l| eval(l, row)).transpose()?;
            let (Value::Text(s), Some(from)) = (s, from.as_i64()) else {
                return Ok(Value::Null);
            };
            // SQL's positions: from 1; a start before 1 eats into the length.
            let (start, end) = match len {
                Some(Value::Null) => return Ok(Value::Null),
                Some(l) => {
                    let l = l.as_i64().unwrap_or(0);
                    if l < 0 {
                        return Err("substring() with a negative length".into());
                    }
                    (from, from.saturating_add(l))
                }
                None => (from, i64::MAX),
            };
            let start = start.max(1) as usize - 1;
            let end = end.max(1) as usize - 1;
            Ok(Value::Text(
                s.chars()
                    .skip(start)
                    .take(end.saturating_sub(start))
                    .collect(),
            ))
        }
        Node::Replace(s, re, with, global) => {
            let (s, with) = (eval(s, row)?, eval(with, row)?);
            let (Value::Text(s), Value::Text(with)) = (s, with) else {
                return Ok(Value::Null);
            };
            // Postgres's `\1` back-references, in the regex crate's spelling.
            let with = backrefs(&with);
            Ok(Value::Text(match global {
                true => re.replace_all(&s, with.as_str()).into_owned(),
                false => re.replace(&s, with.as_str()).into_owned(),
            }))
        }
    }
}

/// `\1` … `\9` as `${1}` … `${9}`; a literal `$` kept literal.
fn backrefs(with: &str) -> String {
    let mut out = String::new();
    let mut chars = with.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.peek() {
                Some(d) if d.is_ascii_digit() => {
                    out.push_str(&format!("${{{d}}}"));
                    chars.next();
                }
                Some('\\') => {
                    out.push('\\');
                    chars.next();
                }
                _ => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

/// A non-null value as a number of kind `k`.
fn num(v: &Value, k: Num) -> R {
    let to = match k {
        Num::Int => migrate_core::DataType::Int64,
        Num::Float => migrate_core::DataType::Float64,
        Num::Dec => migrate_core::DataType::Decimal {
            precision: None,
            scale: None,
        },
    };
    cast(v, &to)
}

/// Two non-null numbers of one kind combined.
fn arith(op: Arith, a: &Value, b: &Value) -> R {
    match (a, b) {
        (Value::Int64(x), Value::Int64(y)) => {
            let r = match op {
                Arith::Add => x.checked_add(*y),
                Arith::Sub => x.checked_sub(*y),
                Arith::Mul => x.checked_mul(*y),
                Arith::Div | Arith::Rem if *y == 0 => return Err("division by zero".into()),
                Arith::Div => x.checked_div(*y),
                Arith::Rem => x.checked_rem(*y),
            };
            r.map(Value::Int64)
                .ok_or_else(|| "integer overflow".to_string())
        }
        (Value::Float64(x), Value::Float64(y)) => {
            if matches!(op, Arith::Div | Arith::Rem) && *y == 0.0 {
                return Err("division by zero".into());
            }
            Ok(Value::Float64(match op {
                Arith::Add => x + y,
                Arith::Sub => x - y,
                Arith::Mul => x * y,
                Arith::Div => x / y,
                Arith::Rem => x % y,
            }))
        }
        (Value::Decimal(x), Value::Decimal(y)) => dec_arith(op, x, y).map(Value::Decimal),
        _ => Err("arithmetic on values of different kinds".into()),
    }
}

/// A finite decimal as an unscaled integer and its scale.
fn scaled(d: &Decimal) -> Result<(i128, u32), String> {
    let (neg, digits, scale) = d
        .parts()
        .ok_or_else(|| "arithmetic on NaN or infinity".to_string())?;
    let v: i128 = if digits.is_empty() {
        0
    } else {
        digits
            .parse()
            .map_err(|_| "a decimal too long for arithmetic (38 digits)".to_string())?
    };
    Ok((if neg { -v } else { v }, scale))
}

fn pow10(n: u32) -> Result<i128, String> {
    10i128
        .checked_pow(n)
        .ok_or_else(|| "decimal overflow".to_string())
}

fn from_scaled(v: i128, scale: u32) -> Result<Decimal, String> {
    Decimal::from_parts(v < 0, &v.unsigned_abs().to_string(), scale)
        .map_err(|_| "decimal overflow".to_string())
}

/// Exact decimal arithmetic (division keeps 6 more digits than its operands, as Postgres's
/// numeric does at least).
fn dec_arith(op: Arith, x: &Decimal, y: &Decimal) -> Result<Decimal, String> {
    let overflow = || "decimal overflow".to_string();
    let ((a, sa), (b, sb)) = (scaled(x)?, scaled(y)?);
    let s = sa.max(sb);
    let a2 = a.checked_mul(pow10(s - sa)?).ok_or_else(overflow)?;
    let b2 = b.checked_mul(pow10(s - sb)?).ok_or_else(overflow)?;
    match op {
        Arith::Add => from_scaled(a2.checked_add(b2).ok_or_else(overflow)?, s),
        Arith::Sub => from_scaled(a2.checked_sub(b2).ok_or_else(overflow)?, s),
        Arith::Mul => from_scaled(a.checked_mul(b).ok_or_else(overflow)?, sa + sb),
        Arith::Div | Arith::Rem if b == 0 => Err("division by zero".into()),
        Arith::Rem => from_scaled(a2 % b2, s),
        Arith::Div => {
            let out = s + 6;
            // a2 / b2 at `out` digits, rounded half away from zero.
            let num = a2.checked_mul(pow10(out + 1)?).ok_or_else(overflow)?;
            let q = num / b2;
            let q = (q + q.signum() * 5) / 10;
            let d = from_scaled(q, out)?;
            Ok(d.normalized()
                .with_scale(s.max(d.normalized().scale()))
                .unwrap_or(d))
        }
    }
}

/// How `a` and `b` are ordered (`None` when either is NULL).
fn compare(a: &Value, b: &Value, order: Order) -> Result<Option<Ordering>, String> {
    if a.is_null() || b.is_null() {
        return Ok(None);
    }
    Ok(Some(match order {
        Order::Num(Num::Float) => {
            let (x, y) = (num(a, Num::Float)?, num(b, Num::Float)?);
            match (x, y) {
                (Value::Float64(x), Value::Float64(y)) => x.total_cmp(&y),
                _ => Ordering::Equal,
            }
        }
        Order::Num(k) => {
            let (x, y) = (num(a, k)?, num(b, k)?);
            match (&x, &y) {
                (Value::Decimal(x), Value::Decimal(y)) => x.cmp(y),
                _ => x.cmp_key(&y),
            }
        }
        Order::Same => match (a, b) {
            (
                Value::Timestamp(x) | Value::TimestampTz(x),
                Value::Timestamp(y) | Value::TimestampTz(y),
            ) => x.cmp(y),
            (Value::Float32(x), Value::Float32(y)) => x.total_cmp(y),
            _ => a.cmp_key(b),
        },
    }))
}

/// `a + b` exactly, both read as decimals (what a CONSISTENCY sum adds with).
pub(crate) fn add_exact(a: &Value, b: &Value) -> Result<Value, String> {
    arith(Arith::Add, &num(a, Num::Dec)?, &num(b, Num::Dec)?)
}
