//! sqlparser's expression tree turned into a typed tree: every column found, every operand's
//! type checked, every function known — so a mistake is refused, with its place, before the run.

use migrate_core::{DataType, Decimal, Schema, Value};
use regex::Regex;
use sqlparser::ast::{
    self, BinaryOperator, CastKind, FunctionArg, FunctionArgExpr, FunctionArguments, Spanned,
    UnaryOperator,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Token};

use super::ExprError;
use crate::cast::{castable, parse_type};

/// A typed expression.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Column(usize),
    Lit(Value),
    Not(Box<Node>),
    Neg(Box<Node>, Num),
    Arith(Arith, Box<Node>, Box<Node>, Num),
    Cmp(Cmp, Box<Node>, Box<Node>, Order),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    IsNull(Box<Node>, bool),
    InList(Box<Node>, Vec<Node>, Order, bool),
    Like(Box<Node>, Regex, bool),
    Case(
        Option<Box<Node>>,
        Vec<(Node, Node)>,
        Option<Box<Node>>,
        Order,
    ),
    Cast(Box<Node>, DataType),
    Concat(Vec<Node>),
    Text(TextFn, Box<Node>),
    Length(Box<Node>),
    Abs(Box<Node>, Num),
    Coalesce(Vec<Node>),
    Substring(Box<Node>, Box<Node>, Option<Box<Node>>),
    Replace(Box<Node>, Regex, Box<Node>, bool),
}

/// A one-argument text function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextFn {
    Lower,
    Upper,
    Trim,
}

/// An arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// How numbers are computed: as 64-bit integers (checked), exact decimals, or floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Num {
    Int,
    Dec,
    Float,
}

/// How two values are ordered: as numbers of a kind, or as values of one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    Num(Num),
    Same,
}

/// The kinds the checker reasons with.
#[derive(Debug, Clone, PartialEq)]
enum Ty {
    Null,
    Num(Num),
    Of(DataType),
}

impl Ty {
    fn of(t: &DataType) -> Ty {
        match t {
            DataType::Int16 | DataType::Int32 | DataType::Int64 => Ty::Num(Num::Int),
            DataType::Float32 | DataType::Float64 => Ty::Num(Num::Float),
            DataType::Decimal { .. } => Ty::Num(Num::Dec),
            DataType::Text { .. } => Ty::Of(DataType::text()),
            other => Ty::Of(other.clone()),
        }
    }

    fn data_type(&self) -> DataType {
        match self {
            Ty::Null => DataType::text(),
            Ty::Num(Num::Int) => DataType::Int64,
            Ty::Num(Num::Float) => DataType::Float64,
            Ty::Num(Num::Dec) => DataType::Decimal {
                precision: None,
                scale: None,
            },
            Ty::Of(t) => t.clone(),
        }
    }

    fn name(&self) -> String {
        match self {
            Ty::Null => "NULL".into(),
            Ty::Num(Num::Int) => "an integer".into(),
            Ty::Num(Num::Float) => "a float".into(),
            Ty::Num(Num::Dec) => "a decimal".into(),
            Ty::Of(t) => t.to_string(),
        }
    }

    fn is_text(&self) -> bool {
        matches!(self, Ty::Null | Ty::Of(DataType::Text { .. }))
    }

    fn is_bool(&self) -> bool {
        matches!(self, Ty::Null | Ty::Of(DataType::Bool))
    }
}

/// The type two operands share, if they can be compared or chosen between.
fn common(a: &Ty, b: &Ty) -> Option<(Ty, Order)> {
    match (a, b) {
        (Ty::Null, Ty::Null) => Some((Ty::Null, Order::Same)),
        (Ty::Null, Ty::Num(n)) | (Ty::Num(n), Ty::Null) => Some((Ty::Num(*n), Order::Num(*n))),
        (Ty::Num(x), Ty::Num(y)) => {
            let n = (*x).max(*y);
            Some((Ty::Num(n), Order::Num(n)))
        }
        (Ty::Null, t) | (t, Ty::Null) => Some((t.clone(), Order::Same)),
        (Ty::Of(x), Ty::Of(y)) if x == y => Some((a.clone(), Order::Same)),
        (Ty::Of(DataType::Timestamp), Ty::Of(DataType::TimestampTz))
        | (Ty::Of(DataType::TimestampTz), Ty::Of(DataType::Timestamp)) => {
            Some((Ty::Of(DataType::TimestampTz), Order::Same))
        }
        _ => None,
    }
}

struct Checker<'a> {
    text: &'a str,
    schema: &'a Schema,
}

type Checked = Result<(Node, Ty), ExprError>;

/// Parses and checks `text` against `schema`: the tree and the type it yields.
pub(crate) fn compile(text: &str, schema: &Schema) -> Result<(Node, DataType), ExprError> {
    let at = |loc: Location, message: String| ExprError {
        text: text.to_string(),
        line: loc.line.max(1),
        column: loc.column.max(1),
        message,
    };
    let dialect = PostgreSqlDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(text)
        .map_err(|e| at(Location::of(1, 1), e.to_string()))?;
    let expr = parser
        .parse_expr()
        .map_err(|e| at(Location::of(1, 1), e.to_string()))?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(at(
            next.span.start,
            format!("unexpected `{}` after the expression", next.token),
        ));
    }
    let c = Checker { text, schema };
    let (node, ty) = c.check(&expr)?;
    Ok((node, ty.data_type()))
}

impl Checker<'_> {
    fn err(&self, e: &ast::Expr, message: impl Into<String>) -> ExprError {
        self.err_at(e.span().start, message)
    }

    fn err_at(&self, start: Location, message: impl Into<String>) -> ExprError {
        ExprError {
            text: self.text.to_string(),
            line: start.line.max(1),
            column: start.column.max(1),
            message: message.into(),
        }
    }

    fn column(&self, id: &ast::Ident) -> Checked {
        // Unquoted names fold to lower case (as in SQL) unless the column is spelled otherwise.
        let exact = self.schema.index_of(&id.value);
        let found = match (exact, id.quote_style) {
            (Some(i), _) => Some(i),
            (None, None) => self
                .schema
                .columns
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(&id.value)),
            (None, Some(_)) => None,
        };
        match found {
            Some(i) => Ok((Node::Column(i), Ty::of(&self.schema.columns[i].data_type))),
            None => {
                let names: Vec<&str> = self
                    .schema
                    .columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect();
                Err(self.err_at(
                    id.span.start,
                    format!(
                        "unknown column `{}` (columns: {})",
                        id.value,
                        names.join(", ")
                    ),
                ))
            }
        }
    }

    fn check(&self, e: &ast::Expr) -> Checked {
        use ast::Expr as E;
        match e {
            E::Identifier(id) => self.column(id),
            E::CompoundIdentifier(ids) => match ids.last() {
                Some(id) if ids.len() == 1 => self.column(id),
                _ => Err(self.err(e, "a qualified name: name the column alone")),
            },
            E::Nested(inner) => self.check(inner),
            E::Value(v) => self.literal(e, &v.value),
            E::UnaryOp { op, expr } => {
                let (n, t) = self.check(expr)?;
                match (op, &t) {
                    (UnaryOperator::Not, t) if t.is_bool() => {
                        Ok((Node::Not(Box::new(n)), t.clone()))
                    }
                    (UnaryOperator::Minus, Ty::Num(k)) => {
                        Ok((Node::Neg(Box::new(n), *k), t.clone()))
                    }
                    (UnaryOperator::Plus, Ty::Num(_)) => Ok((n, t)),
                    _ => Err(self.err(e, format!("`{op}` does not apply to {}", t.name()))),
                }
            }
            E::BinaryOp { left, op, right } => self.binary(e, left, op, right),
            E::IsNull(x) | E::IsNotNull(x) => {
                let (n, _) = self.check(x)?;
                Ok((
                    Node::IsNull(Box::new(n), matches!(e, E::IsNotNull(_))),
                    Ty::Of(DataType::Bool),
                ))
            }
            E::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let (x, tx) = self.check(expr)?;
                let (lo, tl) = self.check(low)?;
                let (hi, th) = self.check(high)?;
                let order = |t: &Ty, other: &ast::Expr| {
                    common(&tx, t).map(|(_, o)| o).ok_or_else(|| {
                        self.err(other, format!("{} compared with {}", tx.name(), t.name()))
                    })
                };
                let (ol, oh) = (order(&tl, low)?, order(&th, high)?);
                let x2 = Box::new(x.clone());
                let between = Node::And(
                    Box::new(Node::Cmp(Cmp::Ge, Box::new(x), Box::new(lo), ol)),
                    Box::new(Node::Cmp(Cmp::Le, x2, Box::new(hi), oh)),
                );
                let n = if *negated {
                    Node::Not(Box::new(between))
                } else {
                    between
                };
                Ok((n, Ty::Of(DataType::Bool)))
            }
            E::In {
                expr,
                target: ast::InTarget::List(list),
                negated,
                ..
            } => {
                let (x, mut t) = self.check(expr)?;
                let mut items = Vec::new();
                let mut order = Order::Same;
                for item in list {
                    let (n, ti) = self.check(item)?;
                    let (c, o) = common(&t, &ti).ok_or_else(|| {
                        self.err(item, format!("{} in a list of {}", t.name(), ti.name()))
                    })?;
                    t = c;
                    order = o;
                    items.push(n);
                }
                Ok((
                    Node::InList(Box::new(x), items, order, *negated),
                    Ty::Of(DataType::Bool),
                ))
            }
            E::Like {
                negated,
                any: false,
                expr,
                pattern,
                escape_char: None,
            } => {
                let (x, t) = self.check(expr)?;
                if !t.is_text() {
                    return Err(self.err(expr, format!("LIKE needs text, not {}", t.name())));
                }
                let ast::Expr::Value(v) = pattern.as_ref() else {
                    return Err(self.err(pattern, "LIKE's pattern must be a string literal"));
                };
                let ast::Value::SingleQuotedString(p) = &v.value else {
                    return Err(self.err(pattern, "LIKE's pattern must be a string literal"));
                };
                let re = like_regex(p).map_err(|m| self.err(pattern, m))?;
                Ok((
                    Node::Like(Box::new(x), re, *negated),
                    Ty::Of(DataType::Bool),
                ))
            }
            E::Case {
                operand,
                conditions,
                else_result,
                ..
            } => self.case(e, operand.as_deref(), conditions, else_result.as_deref()),
            E::Cast {
                kind: CastKind::Cast | CastKind::DoubleColon,
                expr,
                data_type,
                format: None,
            } => {
                let (n, t) = self.check(expr)?;
                let to = parse_type(&data_type.to_string())
                    .ok_or_else(|| self.err(e, format!("unknown type `{data_type}` in CAST")))?;
                if t != Ty::Null && !castable(&t.data_type(), &to) {
                    return Err(self.err(e, format!("{} cannot be cast to {to}", t.name())));
                }
                Ok((Node::Cast(Box::new(n), to.clone()), Ty::of(&to)))
            }
            E::Trim {
                trim_where: None,
                trim_what: None,
                expr,
                trim_characters: None,
            } => self.text_fn(expr, TextFn::Trim),
            E::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                let from = substring_from
                    .as_deref()
                    .ok_or_else(|| self.err(e, "substring needs a start"))?;
                self.substring(expr, from, substring_for.as_deref())
            }
            E::Function(f) => self.function(e, f),
            _ => Err(self.err(e, format!("`{e}` is not part of the expression language"))),
        }
    }

    fn literal(&self, e: &ast::Expr, v: &ast::Value) -> Checked {
        Ok(match v {
            ast::Value::Number(s, _) => match s.parse::<i64>() {
                Ok(i) => (Node::Lit(Value::Int64(i)), Ty::Num(Num::Int)),
                Err(_) => match s.parse::<Decimal>() {
                    Ok(d) if !s.contains(['e', 'E']) => {
                        (Node::Lit(Value::Decimal(d)), Ty::Num(Num::Dec))
                    }
                    _ => match s.parse::<f64>() {
                        Ok(f) => (Node::Lit(Value::Float64(f)), Ty::Num(Num::Float)),
                        Err(_) => return Err(self.err(e, "not a number")),
                    },
                },
            },
            ast::Value::SingleQuotedString(s) | ast::Value::EscapedStringLiteral(s) => {
                (Node::Lit(Value::Text(s.clone())), Ty::Of(DataType::text()))
            }
            ast::Value::Boolean(b) => (Node::Lit(Value::Bool(*b)), Ty::Of(DataType::Bool)),
            ast::Value::Null => (Node::Lit(Value::Null), Ty::Null),
            _ => return Err(self.err(e, format!("literal `{v}` is not supported"))),
        })
    }

    fn binary(
        &self,
        e: &ast::Expr,
        left: &ast::Expr,
        op: &BinaryOperator,
        right: &ast::Expr,
    ) -> Checked {
        let (l, tl) = self.check(left)?;
        let (r, tr) = self.check(right)?;
        let (l, r) = (Box::new(l), Box::new(r));
        let arith = match op {
            BinaryOperator::Plus => Some(Arith::Add),
            BinaryOperator::Minus => Some(Arith::Sub),
            BinaryOperator::Multiply => Some(Arith::Mul),
            BinaryOperator::Divide => Some(Arith::Div),
            BinaryOperator::Modulo => Some(Arith::Rem),
            _ => None,
        };
        if let Some(a) = arith {
            let num = |t: &Ty| match t {
                Ty::Num(n) => Some(*n),
                Ty::Null => Some(Num::Int),
                _ => None,
            };
            return match (num(&tl), num(&tr)) {
                (Some(x), Some(y)) => {
                    let n = x.max(y);
                    Ok((Node::Arith(a, l, r, n), Ty::Num(n)))
                }
                _ => Err(self.err(
                    e,
                    format!("`{op}` needs numbers, not {} and {}", tl.name(), tr.name()),
                )),
            };
        }
        let cmp = match op {
            BinaryOperator::Eq => Some(Cmp::Eq),
            BinaryOperator::NotEq => Some(Cmp::Ne),
            BinaryOperator::Lt => Some(Cmp::Lt),
            BinaryOperator::LtEq => Some(Cmp::Le),
            BinaryOperator::Gt => Some(Cmp::Gt),
            BinaryOperator::GtEq => Some(Cmp::Ge),
            _ => None,
        };
        if let Some(c) = cmp {
            let (_, order) = common(&tl, &tr)
                .ok_or_else(|| self.err(e, format!("{} compared with {}", tl.name(), tr.name())))?;
            return Ok((Node::Cmp(c, l, r, order), Ty::Of(DataType::Bool)));
        }
        match op {
            BinaryOperator::And | BinaryOperator::Or => {
                if !tl.is_bool() || !tr.is_bool() {
                    return Err(self.err(
                        e,
                        format!(
                            "`{op}` needs conditions, not {} and {}",
                            tl.name(),
                            tr.name()
                        ),
                    ));
                }
                let n = match op {
                    BinaryOperator::And => Node::And(l, r),
                    _ => Node::Or(l, r),
                };
                Ok((n, Ty::Of(DataType::Bool)))
            }
            BinaryOperator::StringConcat => {
                // `||` is NULL when either side is (unlike concat()): SQL's rule.
                let n = Node::Case(
                    None,
                    vec![(
                        Node::Or(
                            Box::new(Node::IsNull(l.clone(), false)),
                            Box::new(Node::IsNull(r.clone(), false)),
                        ),
                        Node::Lit(Value::Null),
                    )],
                    Some(Box::new(Node::Concat(vec![*l, *r]))),
                    Order::Same,
                );
                Ok((n, Ty::Of(DataType::text())))
            }
            _ => Err(self.err(e, format!("operator `{op}` is not supported"))),
        }
    }

    fn case(
        &self,
        e: &ast::Expr,
        operand: Option<&ast::Expr>,
        conditions: &[ast::CaseWhen],
        else_result: Option<&ast::Expr>,
    ) -> Checked {
        let operand = operand.map(|o| self.check(o)).transpose()?;
        let mut ty = Ty::Null;
        let mut order = Order::Same;
        // A simple CASE compares its operand with every WHEN the same way: as the widest.
        let mut subject = operand.as_ref().map(|(_, t)| t.clone());
        let mut whens = Vec::new();
        for w in conditions {
            let (c, tc) = self.check(&w.condition)?;
            match &subject {
                Some(to) => {
                    let (t, o) = common(to, &tc).ok_or_else(|| {
                        self.err(
                            &w.condition,
                            format!("{} compared with {}", to.name(), tc.name()),
                        )
                    })?;
                    subject = Some(t);
                    order = o;
                }
                None if !tc.is_bool() => {
                    return Err(self.err(
                        &w.condition,
                        format!("WHEN needs a condition, not {}", tc.name()),
                    ))
                }
                None => {}
            }
            let (r, tr) = self.check(&w.result)?;
            ty = common(&ty, &tr).map(|(t, _)| t).ok_or_else(|| {
                self.err(
                    &w.result,
                    format!("CASE yields {} and {}", ty.name(), tr.name()),
                )
            })?;
            whens.push((c, r));
        }
        let otherwise = match else_result {
            Some(x) => {
                let (n, t) = self.check(x)?;
                ty = common(&ty, &t).map(|(t, _)| t).ok_or_else(|| {
                    self.err(x, format!("CASE yields {} and {}", ty.name(), t.name()))
                })?;
                Some(Box::new(n))
            }
            None => None,
        };
        if whens.is_empty() {
            return Err(self.err(e, "CASE without WHEN"));
        }
        let numeric = match &ty {
            Ty::Num(n) => Some(*n),
            _ => None,
        };
        // Results of mixed numeric kinds are brought to the widest.
        let widen = |n: Node| match numeric {
            Some(k) => Node::Cast(Box::new(n), Ty::Num(k).data_type()),
            None => n,
        };
        let whens = whens.into_iter().map(|(c, r)| (c, widen(r))).collect();
        let otherwise = otherwise.map(|n| Box::new(widen(*n)));
        Ok((
            Node::Case(operand.map(|(n, _)| Box::new(n)), whens, otherwise, order),
            ty,
        ))
    }

    fn args<'e>(
        &self,
        e: &ast::Expr,
        f: &'e ast::Function,
    ) -> Result<Vec<&'e ast::Expr>, ExprError> {
        match &f.args {
            FunctionArguments::None => Ok(Vec::new()),
            FunctionArguments::List(list)
                if list.duplicate_treatment.is_none() && list.clauses.is_empty() =>
            {
                list.args
                    .iter()
                    .map(|a| match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => Ok(x),
                        _ => Err(self.err(e, "only plain arguments are supported")),
                    })
                    .collect()
            }
            _ => Err(self.err(e, "only plain arguments are supported")),
        }
    }

    fn function(&self, e: &ast::Expr, f: &ast::Function) -> Checked {
        let name = f.name.to_string().to_ascii_lowercase();
        let args = self.args(e, f)?;
        let arity = |lo: usize, hi: usize| {
            if args.len() < lo || args.len() > hi {
                let want = if lo == hi {
                    format!("{lo}")
                } else {
                    format!("{lo} to {hi}")
                };
                return Err(self.err(
                    e,
                    format!("{name}() takes {want} arguments, not {}", args.len()),
                ));
            }
            Ok(())
        };
        match name.as_str() {
            "concat" => {
                arity(1, usize::MAX)?;
                let nodes = args
                    .iter()
                    .map(|a| self.check(a).map(|(n, _)| n))
                    .collect::<Result<_, _>>()?;
                Ok((Node::Concat(nodes), Ty::Of(DataType::text())))
            }
            "lower" | "upper" | "trim" | "btrim" => {
                arity(1, 1)?;
                let f = match name.as_str() {
                    "lower" => TextFn::Lower,
                    "upper" => TextFn::Upper,
                    _ => TextFn::Trim,
                };
                self.text_fn(args[0], f)
            }
            "length" | "char_length" => {
                arity(1, 1)?;
                let (n, t) = self.check(args[0])?;
                if !t.is_text() {
                    return Err(self.err(args[0], format!("{name}() needs text, not {}", t.name())));
                }
                Ok((Node::Length(Box::new(n)), Ty::Num(Num::Int)))
            }
            "abs" => {
                arity(1, 1)?;
                let (n, t) = self.check(args[0])?;
                match t {
                    Ty::Num(k) => Ok((Node::Abs(Box::new(n), k), t)),
                    _ => Err(self.err(args[0], format!("abs() needs a number, not {}", t.name()))),
                }
            }
            "coalesce" => {
                arity(1, usize::MAX)?;
                let mut ty = Ty::Null;
                let mut nodes = Vec::new();
                for a in &args {
                    let (n, t) = self.check(a)?;
                    ty = common(&ty, &t).map(|(t, _)| t).ok_or_else(|| {
                        self.err(a, format!("coalesce() of {} and {}", ty.name(), t.name()))
                    })?;
                    nodes.push(n);
                }
                if let Ty::Num(k) = ty {
                    let to = Ty::Num(k).data_type();
                    nodes = nodes
                        .into_iter()
                        .map(|n| Node::Cast(Box::new(n), to.clone()))
                        .collect();
                }
                Ok((Node::Coalesce(nodes), ty))
            }
            "substring" | "substr" => {
                arity(2, 3)?;
                self.substring(args[0], args[1], args.get(2).copied())
            }
            "regexp_replace" => {
                arity(3, 4)?;
                let (s, ts) = self.check(args[0])?;
                if !ts.is_text() {
                    return Err(self.err(args[0], format!("regexp_replace() needs text, not {}", ts.name())));
                }
                let pattern = self.string_literal(args[1], "regexp_replace()'s pattern")?;
                let (r, tr) = self.check(args[2])?;
                if !tr.is_text() {
                    return Err(self.err(args[2], "regexp_replace()'s replacement must be text"));
                }
                let flags = match args.get(3) {
                    Some(a) => self.string_literal(a, "regexp_replace()'s flags")?,
                    None => String::new(),
                };
                if let Some(bad) = flags.chars().find(|c| !matches!(c, 'g' | 'i')) {
                    return Err(self.err(args[3], format!("unknown regexp_replace() flag `{bad}` (g, i)")));
                }
                let pattern = match flags.contains('i') {
                    true => format!("(?i){pattern}"),
                    false => pattern,
                };
                let re = Regex::new(&pattern)
                    .map_err(|err| self.err(args[1], format!("bad pattern: {err}")))?;
                Ok((
                    Node::Replace(Box::new(s), re, Box::new(r), flags.contains('g')),
                    Ty::Of(DataType::text()),
                ))
            }
            _ => Err(self.err(
                e,
                format!("unknown function `{name}` (concat, lower, upper, trim, length, abs, coalesce, substring, regexp_replace)"),
            )),
        }
    }

    fn string_literal(&self, e: &ast::Expr, what: &str) -> Result<String, ExprError> {
        match e {
            ast::Expr::Value(v) => match &v.value {
                ast::Value::SingleQuotedString(s) => Ok(s.clone()),
                _ => Err(self.err(e, format!("{what} must be a string literal"))),
            },
            _ => Err(self.err(e, format!("{what} must be a string literal"))),
        }
    }

    fn text_fn(&self, arg: &ast::Expr, f: TextFn) -> Checked {
        let (n, t) = self.check(arg)?;
        if !t.is_text() {
            return Err(self.err(
                arg,
                format!("{f:?} needs text, not {}", t.name()).to_lowercase(),
            ));
        }
        Ok((Node::Text(f, Box::new(n)), Ty::Of(DataType::text())))
    }

    fn substring(&self, s: &ast::Expr, from: &ast::Expr, len: Option<&ast::Expr>) -> Checked {
        let (sn, ts) = self.check(s)?;
        if !ts.is_text() {
            return Err(self.err(s, format!("substring() needs text, not {}", ts.name())));
        }
        let int = |e: &ast::Expr| -> Result<Node, ExprError> {
            let (n, t) = self.check(e)?;
            match t {
                Ty::Num(Num::Int) | Ty::Null => Ok(n),
                _ => Err(self.err(
                    e,
                    format!("substring() positions are integers, not {}", t.name()),
                )),
            }
        };
        let from = int(from)?;
        let len = len.map(int).transpose()?;
        Ok((
            Node::Substring(Box::new(sn), Box::new(from), len.map(Box::new)),
            Ty::Of(DataType::text()),
        ))
    }
}

/// A LIKE pattern as an anchored regex (`%` any run, `_` one character, `\` escapes).
fn like_regex(p: &str) -> Result<Regex, String> {
    let mut re = String::from("(?s)^");
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => re.push_str(".*"),
            '_' => re.push('.'),
            '\\' => match chars.next() {
                Some(n) => re.push_str(&regex::escape(&n.to_string())),
                None => return Err("LIKE pattern ends with an escape".into()),
            },
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).map_err(|e| e.to_string())
}
