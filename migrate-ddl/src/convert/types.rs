//! A Postgres column type as sqlparser reads it → migrate's [`DataType`], through the same
//! mapping Postgres discovery uses (`migrate_backend_postgres::types::map_type`, keyed by the
//! catalog's type names): each spelling is first brought to the name and modifier the catalog
//! would hold (`integer` → `int4`, `character varying(20)` → `varchar` with its length,
//! `timestamp with time zone` and `timestamptz` → `timestamptz`). Domains resolve to their
//! base type and enums to text, as discovery resolves them.

use std::collections::BTreeMap;

use migrate_core::DataType;
use sqlparser::ast::{
    ArrayElemTypeDef, CharacterLength, DataType as Sql, ExactNumberInfo, ObjectName, TimezoneInfo,
};

/// A user type declared earlier in the files.
#[derive(Debug, Clone)]
pub(crate) enum UserDef {
    /// `CREATE TYPE … AS ENUM`.
    Enum,
    /// `CREATE DOMAIN … AS base`: the base as read, and its spelling.
    Domain(Box<Sql>),
}

/// A column's type: the model's, the source's own spelling (kept for Postgres targets), and
/// the serial kind when it was `serial`/`bigserial`/`smallserial`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mapped {
    pub data_type: DataType,
    pub source_type: String,
    pub serial: Option<&'static str>,
    /// The user type the column names (enum or domain), by its key in the declarations.
    pub user_type: Option<String>,
}

/// The key a user type is declared and used under: its last name part, folded as Postgres
/// folds an unquoted name.
pub(crate) fn type_key(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .map(crate::convert::fold)
        .unwrap_or_default()
}

/// Maps `t`; `Err` names what has no mapping.
pub(crate) fn map(t: &Sql, users: &BTreeMap<String, UserDef>) -> Result<Mapped, String> {
    if let Sql::Array(elem) = t {
        let inner = match elem {
            ArrayElemTypeDef::SquareBracket(e, _) | ArrayElemTypeDef::Qualified(e, _) => e,
            ArrayElemTypeDef::AngleBracket(e) => e,
            _ => return Err(format!("array type {t}")),
        };
        // Postgres arrays of any dimension are one type: `text[][]` is `text[]`.
        let mut inner: &Sql = inner;
        while let Sql::Array(
            ArrayElemTypeDef::SquareBracket(e, _) | ArrayElemTypeDef::Qualified(e, _),
        ) = inner
        {
            inner = e;
        }
        let m = map(inner, users)?;
        if m.serial.is_some() {
            return Err(format!("array of {}", m.source_type));
        }
        return Ok(Mapped {
            data_type: DataType::Array(Box::new(m.data_type)),
            source_type: format!("{}[]", m.source_type),
            serial: None,
            user_type: m.user_type,
        });
    }
    if let Sql::Custom(name, _) = t {
        let key = type_key(name);
        match users.get(&key) {
            Some(UserDef::Enum) => {
                return Ok(Mapped {
                    data_type: DataType::text(),
                    source_type: key.clone(),
                    serial: None,
                    user_type: Some(key),
                })
            }
            Some(UserDef::Domain(base)) => {
                let m = map(base, users)?;
                return Ok(Mapped {
                    source_type: key.clone(),
                    user_type: Some(key),
                    ..m
                });
            }
            None => {}
        }
        let serial = match key.as_str() {
            "serial" | "serial4" => Some(("int4", "serial")),
            "bigserial" | "serial8" => Some(("int8", "bigserial")),
            "smallserial" | "serial2" => Some(("int2", "smallserial")),
            _ => None,
        };
        if let Some((base, kind)) = serial {
            return catalog(base, -1, &spelling(base, -1)).map(|m| Mapped {
                serial: Some(kind),
                ..m
            });
        }
        // Any other word is a catalog name already (`citext`, `inet`, `pg_catalog.int4`):
        // discovery's mapping knows it or it has none.
        return catalog(&key, -1, &spelling(&key, -1)).map_err(|_| format!("type {t}"));
    }
    let (name, typmod) = catalog_name(t).ok_or_else(|| format!("type {t}"))?;
    catalog(name, typmod, &spelling(name, typmod))
}

fn catalog(name: &str, typmod: i32, source: &str) -> Result<Mapped, String> {
    let (data_type, _, _) = migrate_backend_postgres::types::map_type(name, typmod, false)
        .ok_or_else(|| format!("type {source}"))?;
    Ok(Mapped {
        data_type,
        source_type: source.to_string(),
        serial: None,
        user_type: None,
    })
}

/// The catalog's name and type modifier for `t` (`varchar(20)` → `("varchar", 24)`).
fn catalog_name(t: &Sql) -> Option<(&'static str, i32)> {
    // Postgres' limits: a length up to 10,485,760, a scale not below zero for a mapping.
    let len = |l: &Option<CharacterLength>| match l {
        Some(CharacterLength::IntegerLength { length, .. }) if *length <= 10_485_760 => {
            i32::try_from(*length).ok().map(|n| n + 4)
        }
        Some(CharacterLength::IntegerLength { .. }) => None,
        _ => Some(-1),
    };
    let numeric = |i: &ExactNumberInfo| match i {
        ExactNumberInfo::None => Some(-1),
        ExactNumberInfo::Precision(p) => i32::try_from(*p).ok().map(|p| (p << 16) + 4),
        ExactNumberInfo::PrecisionAndScale(p, s) => {
            let (p, s) = (i32::try_from(*p).ok()?, i32::try_from(*s).ok()?);
            // A negative scale (Postgres 15) rounds to tens, hundreds…: no mapping keeps it.
            (s >= 0 && s <= p).then_some(((p << 16) | s) + 4)
        }
    };
    Some(match t {
        Sql::Bool | Sql::Boolean => ("bool", -1),
        Sql::SmallInt(_) | Sql::Int2(_) => ("int2", -1),
        Sql::Int(_) | Sql::Integer(_) | Sql::Int4(_) => ("int4", -1),
        Sql::BigInt(_) | Sql::Int8(_) => ("int8", -1),
        Sql::Real | Sql::Float4 => ("float4", -1),
        Sql::DoublePrecision | Sql::Float8 => ("float8", -1),
        Sql::Float(ExactNumberInfo::Precision(p)) if *p <= 24 => ("float4", -1),
        Sql::Float(_) => ("float8", -1),
        Sql::Numeric(i) | Sql::Decimal(i) | Sql::Dec(i) => ("numeric", numeric(i)?),
        Sql::Varchar(l) | Sql::CharacterVarying(l) | Sql::CharVarying(l) => ("varchar", len(l)?),
        Sql::Char(l) | Sql::Character(l) => ("bpchar", len(l)?.max(5)),
        Sql::Text => ("text", -1),
        Sql::Bytea => ("bytea", -1),
        Sql::Date => ("date", -1),
        Sql::Time(_, TimezoneInfo::Tz | TimezoneInfo::WithTimeZone) => return None,
        Sql::Time(_, _) => ("time", -1),
        Sql::Timestamp(_, TimezoneInfo::Tz | TimezoneInfo::WithTimeZone) => ("timestamptz", -1),
        Sql::Timestamp(_, _) => ("timestamp", -1),
        Sql::Interval { .. } => ("interval", -1),
        Sql::Uuid => ("uuid", -1),
        Sql::JSON => ("json", -1),
        Sql::JSONB => ("jsonb", -1),
        Sql::Bit(_) => ("bit", -1),
        Sql::BitVarying(_) | Sql::VarBit(_) => ("varbit", -1),
        Sql::TsVector => ("tsvector", -1),
        _ => return None,
    })
}

/// How Postgres' `format_type` spells a catalog type (what discovery reports as the column's
/// own type).
fn spelling(name: &str, typmod: i32) -> String {
    let m = typmod - 4;
    match (name, typmod >= 4) {
        ("numeric", true) => format!("numeric({},{})", (m >> 16) & 0xffff, m & 0xffff),
        ("varchar", true) => format!("character varying({m})"),
        ("varchar", false) => "character varying".into(),
        ("bpchar", true) => format!("character({m})"),
        ("bpchar", false) => "character".into(),
        ("bool", _) => "boolean".into(),
        ("int2", _) => "smallint".into(),
        ("int4", _) => "integer".into(),
        ("int8", _) => "bigint".into(),
        ("float4", _) => "real".into(),
        ("float8", _) => "double precision".into(),
        ("timestamptz", _) => "timestamp with time zone".into(),
        ("timestamp", _) => "timestamp without time zone".into(),
        ("time", _) => "time without time zone".into(),
        ("varbit", _) => "bit varying".into(),
        (other, _) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn column_type(sql: &str) -> Sql {
        let st =
            Parser::parse_sql(&PostgreSqlDialect {}, &format!("CREATE TABLE t (c {sql})")).unwrap();
        match &st[0] {
            sqlparser::ast::Statement::CreateTable(ct) => ct.columns[0].data_type.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn mapped(sql: &str) -> (DataType, String) {
        let m = map(&column_type(sql), &BTreeMap::new()).unwrap();
        (m.data_type, m.source_type)
    }

    #[test]
    fn each_spelling_maps_as_the_catalog_type_it_is() {
        let dec = |p, s| DataType::Decimal {
            precision: p,
            scale: s,
        };
        let cases: Vec<(&str, DataType, &str)> = vec![
            ("int", DataType::Int32, "integer"),
            ("int4", DataType::Int32, "integer"),
            ("bigint", DataType::Int64, "bigint"),
            ("smallint", DataType::Int16, "smallint"),
            ("numeric(12,2)", dec(Some(12), Some(2)), "numeric(12,2)"),
            ("numeric(7)", dec(Some(7), Some(0)), "numeric(7,0)"),
            ("numeric", dec(None, None), "numeric"),
            (
                "varchar(20)",
                DataType::Text { max_len: Some(20) },
                "character varying(20)",
            ),
            (
                "character varying",
                DataType::Text { max_len: None },
                "character varying",
            ),
            (
                "char(3)",
                DataType::Text { max_len: Some(3) },
                "character(3)",
            ),
            (
                "timestamptz",
                DataType::TimestampTz,
                "timestamp with time zone",
            ),
            (
                "timestamp with time zone",
                DataType::TimestampTz,
                "timestamp with time zone",
            ),
            (
                "timestamp",
                DataType::Timestamp,
                "timestamp without time zone",
            ),
            ("jsonb", DataType::Json, "jsonb"),
            ("bytea", DataType::Bytes, "bytea"),
            ("double precision", DataType::Float64, "double precision"),
            (
                "text[]",
                DataType::Array(Box::new(DataType::text())),
                "text[]",
            ),
            (
                "integer[][]",
                DataType::Array(Box::new(DataType::Int32)),
                "integer[]",
            ),
            ("citext", DataType::text(), "citext"),
        ];
        for (sql, want, spelled) in cases {
            assert_eq!(mapped(sql), (want, spelled.to_string()), "{sql}");
        }
        let serial = map(&column_type("bigserial"), &BTreeMap::new()).unwrap();
        assert_eq!(
            (serial.data_type, serial.serial),
            (DataType::Int64, Some("bigserial"))
        );
    }

    #[test]
    fn domains_and_enums_resolve_and_the_unknown_is_named() {
        let mut users = BTreeMap::new();
        users.insert("mood".to_string(), UserDef::Enum);
        users.insert(
            "money_amount".to_string(),
            UserDef::Domain(Box::new(column_type("numeric(12,2)"))),
        );
        let m = map(&column_type("mood"), &users).unwrap();
        assert_eq!(
            (m.data_type, m.user_type.as_deref()),
            (DataType::text(), Some("mood"))
        );
        let m = map(&column_type("money_amount[]"), &users).unwrap();
        assert_eq!(
            m.data_type,
            DataType::Array(Box::new(DataType::Decimal {
                precision: Some(12),
                scale: Some(2)
            }))
        );
        assert_eq!(
            map(&column_type("geometry(Point, 4326)"), &users).unwrap_err(),
            "type geometry(Point, 4326)"
        );
        assert!(
            map(&column_type("timetz"), &users).is_err(),
            "no time-with-zone column in the model"
        );
    }
}
