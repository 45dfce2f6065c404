use migrate_core::{Column, DataType, Decimal, Schema, Value};

use super::Expr;

fn schema() -> Schema {
    Schema::new(
        vec![
            Column::new("id", DataType::Int64).not_null(),
            Column::new("first", DataType::text()),
            Column::new("last", DataType::Text { max_len: Some(20) }),
            Column::new("age", DataType::Int32),
            Column::new(
                "price",
                DataType::Decimal {
                    precision: Some(10),
                    scale: Some(2),
                },
            ),
            Column::new("score", DataType::Float64),
            Column::new("born", DataType::Date),
            Column::new("Mixed Case", DataType::text()),
        ],
        &["id"],
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn row() -> Vec<Value> {
    vec![
        Value::Int64(7),
        Value::Text("  Ada ".into()),
        Value::Text("Lovelace".into()),
        Value::Int32(36),
        Value::Decimal("19.99".parse().unwrap_or_else(|_| Decimal::zero())),
        Value::Float64(0.5),
        Value::Date(-56_000),
        Value::Null,
    ]
}

fn eval(text: &str) -> Value {
    let e = Expr::parse(text, &schema()).unwrap_or_else(|e| panic!("{e}"));
    e.eval(&row()).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn dec(s: &str) -> Value {
    Value::Decimal(s.parse().unwrap_or_else(|_| Decimal::zero()))
}

#[test]
fn text_functions_and_concatenation() {
    assert_eq!(
        eval("concat(trim(first), ' ', upper(last))"),
        text("Ada LOVELACE")
    );
    assert_eq!(eval("lower(last) || '!'"), text("lovelace!"));
    assert_eq!(
        eval("\"Mixed Case\" || 'x'"),
        Value::Null,
        "|| is NULL with a NULL side"
    );
    assert_eq!(
        eval("concat(\"Mixed Case\", 'x')"),
        text("x"),
        "concat skips NULLs"
    );
    assert_eq!(eval("substring(last, 1, 4)"), text("Love"));
    assert_eq!(eval("substring(last from 5)"), text("lace"));
    assert_eq!(
        eval("substring(last, 0, 2)"),
        text("L"),
        "SQL: start 0 eats one"
    );
    assert_eq!(eval("length('héllo')"), Value::Int64(5));
    assert_eq!(
        eval("regexp_replace(last, '([aeiou])', '<\\1>', 'g')"),
        text("L<o>v<e>l<a>c<e>")
    );
    assert_eq!(
        eval("regexp_replace(last, 'e', 'E')"),
        text("LovElace"),
        "first only"
    );
    assert_eq!(eval("coalesce(\"Mixed Case\", first)"), text("  Ada "));
}

#[test]
fn arithmetic_keeps_its_kind_and_reports_breakage_by_rule() {
    assert_eq!(eval("age + 1"), Value::Int64(37));
    assert_eq!(eval("age / 5"), Value::Int64(7), "integer division");
    assert_eq!(eval("price * 2"), dec("39.98"));
    assert_eq!(eval("price + 0.01"), dec("20.00"));
    assert_eq!(eval("price / 3"), dec("6.66333333"));
    assert_eq!(eval("score * age"), Value::Float64(18.0));
    assert_eq!(eval("-age"), Value::Int64(-36));
    assert_eq!(eval("abs(-price)"), dec("19.99"));
    let e = Expr::parse("age / (age - 36)", &schema()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.eval(&row()), Err("division by zero".to_string()));
    let e = Expr::parse("9223372036854775807 + id", &schema()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.eval(&row()), Err("integer overflow".to_string()));
}

#[test]
fn conditions_follow_sql_three_valued_logic() {
    assert_eq!(eval("age >= 18 AND last LIKE 'Love%'"), Value::Bool(true));
    assert_eq!(eval("\"Mixed Case\" = 'x'"), Value::Null);
    assert_eq!(eval("\"Mixed Case\" = 'x' OR age > 1"), Value::Bool(true));
    assert_eq!(eval("\"Mixed Case\" = 'x' AND age > 1"), Value::Null);
    assert_eq!(eval("\"Mixed Case\" IS NULL"), Value::Bool(true));
    assert_eq!(eval("age IN (1, 36)"), Value::Bool(true));
    assert_eq!(eval("age NOT IN (1, NULL)"), Value::Null);
    assert_eq!(eval("age BETWEEN 30 AND 40"), Value::Bool(true));
    assert_eq!(
        eval("price > 19.5"),
        Value::Bool(true),
        "decimal against decimal literal"
    );
    assert_eq!(
        eval("age > 35.5"),
        Value::Bool(true),
        "integer against decimal"
    );
    let e = Expr::parse("\"Mixed Case\" = 'x'", &schema()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.holds(&row()), Ok(false), "NULL does not hold");
}

#[test]
fn case_and_casts() {
    assert_eq!(
        eval("CASE WHEN age < 18 THEN 'minor' WHEN age < 65 THEN 'adult' ELSE 'senior' END"),
        text("adult")
    );
    assert_eq!(eval("CASE age WHEN 36 THEN 1 ELSE 2.5 END"), dec("1"));
    assert_eq!(
        eval("CASE age WHEN 35.5 THEN 'a' WHEN 36 THEN 'b' END"),
        text("b"),
        "every WHEN compared as the widest"
    );
    assert_eq!(
        eval("age <> 36 AND age / (age - 36) > 1"),
        Value::Bool(false),
        "the right side is not evaluated when the left decides"
    );
    assert_eq!(eval("CAST(age AS text)"), text("36"));
    assert_eq!(eval("CAST('42' AS bigint) + 1"), Value::Int64(43));
    assert_eq!(eval("CAST(price AS numeric(5,1))"), dec("20.0"));
    assert_eq!(eval("born::text"), text("1816-09-05"));
    let e = Expr::parse("CAST(last AS integer)", &schema()).unwrap_or_else(|e| panic!("{e}"));
    let err = e.eval(&row()).unwrap_err();
    assert!(
        err.contains("not an integer") && !err.contains("Lovelace"),
        "{err}"
    );
}

#[test]
fn mistakes_are_refused_with_their_place() {
    let err = |t: &str| Expr::parse(t, &schema()).unwrap_err();
    let e = err("lower(emial)");
    assert_eq!((e.line, e.column), (1, 7), "{e}");
    assert!(e.message.contains("unknown column `emial`"), "{e}");
    assert!(e.to_string().contains("`lower(emial)`"), "{e}");
    let e = err("first + 1");
    assert!(e.message.contains("needs numbers"), "{e}");
    let e = err("age = 'x'");
    assert!(e.message.contains("compared with"), "{e}");
    let e = err("nosuch(first)");
    assert!(e.message.contains("unknown function `nosuch`"), "{e}");
    let e = err("age +");
    assert!(e.message.contains("Expected"), "{e}");
    let e = err("age 1");
    assert!(e.message.contains("unexpected"), "{e}");
    assert_eq!(e.column, 5, "{e}");
    let e = err("CAST(born AS integer)");
    assert!(e.message.contains("cannot be cast"), "{e}");
    let e = err("\"mixed case\"");
    assert!(
        e.message.contains("unknown column"),
        "a quoted name is exact: {e}"
    );
    assert!(Expr::parse("\"Mixed Case\"", &schema()).is_ok());
    assert!(
        Expr::parse("AGE + 1", &schema()).is_ok(),
        "unquoted names fold"
    );
    let e = err("(SELECT 1)");
    assert!(
        e.message.contains("not part of the expression language"),
        "{e}"
    );
    let e = err("regexp_replace(last, '(', 'x')");
    assert!(e.message.contains("bad pattern"), "{e}");
}

#[test]
fn types_are_known_before_any_row() {
    let t = |s: &str| {
        Expr::parse(s, &schema())
            .unwrap_or_else(|e| panic!("{e}"))
            .data_type()
            .clone()
    };
    assert_eq!(t("age + 1"), DataType::Int64);
    assert_eq!(t("score + age"), DataType::Float64);
    assert_eq!(t("concat(first, age)"), DataType::text());
    assert_eq!(t("age > 1"), DataType::Bool);
    assert_eq!(t("born"), DataType::Date);
    assert_eq!(
        t("CAST(age AS varchar(3))"),
        DataType::text(),
        "the length is checked by the cast; the type is text"
    );
}
