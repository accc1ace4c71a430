//! SQLite values and statement parameters, and their JSON forms.
//!
//! | SQLite  | JSON                                                                          |
//! |---------|-------------------------------------------------------------------------------|
//! | NULL    | `null`                                                                        |
//! | INTEGER | a number without fraction or exponent: `42`, `-7` (also `true`/`false` → 1/0) |
//! | REAL    | a number with a fraction or exponent: `1.0`, `2.5e3`; `{"real": 1}` forces it; `{"real": "Infinity"}` / `"-Infinity"` |
//! | TEXT    | a string                                                                      |
//! | BLOB    | `{"base64": "AAEC"}` (standard alphabet, padded)                              |
//!
//! Values come back in the same forms, so a result row fed back as parameters round-trips
//! exactly (a REAL that happens to be whole is written `1.0`, never `1`).

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rusqlite::types::{ToSqlOutput, ValueRef};
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One SQLite value: the five storage classes.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    /// What the value costs in a result, for the result-size bound.
    pub(crate) fn weight(&self) -> usize {
        match self {
            Value::Null => 1,
            Value::Integer(_) | Value::Real(_) => 8,
            Value::Text(s) => s.len(),
            Value::Blob(b) => b.len(),
        }
    }

    pub(crate) fn from_ref(v: ValueRef<'_>) -> Value {
        match v {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(r) => Value::Real(r),
            // SQLite does not check that TEXT is UTF-8; a lossy copy beats failing the query.
            ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        }
    }

    /// The value as a `serde_json::Value` in the forms of the module docs.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Integer(i) => (*i).into(),
            Value::Real(r) => match serde_json::Number::from_f64(*r) {
                Some(n) => serde_json::Value::Number(n),
                None => serde_json::json!({ "real": infinity_name(*r) }),
            },
            Value::Text(s) => serde_json::Value::String(s.clone()),
            Value::Blob(b) => serde_json::json!({ "base64": B64.encode(b) }),
        }
    }
}

fn infinity_name(r: f64) -> &'static str {
    // SQLite turns NaN into NULL, so a non-finite REAL is an infinity.
    if r.is_sign_negative() { "-Infinity" } else { "Infinity" }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Blob(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(r) => ValueRef::Real(*r),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Integer(i) => s.serialize_i64(*i),
            Value::Real(r) if r.is_finite() => s.serialize_f64(*r),
            Value::Real(r) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("real", infinity_name(*r))?;
                m.end()
            }
            Value::Text(t) => s.serialize_str(t),
            Value::Blob(b) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("base64", &B64.encode(b))?;
                m.end()
            }
        }
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"null, a number, a string, true/false, {"base64": "..."} or {"real": ...}"#)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Integer(i64::from(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Integer(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Integer)
            .map_err(|_| E::custom(format!("integer {v} does not fit SQLite's 64-bit signed INTEGER")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Real(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Text(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Text(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Some(key) = map.next_key::<String>()? else {
            return Err(de::Error::custom(r#"an object value must be {"base64": "..."} or {"real": ...}"#));
        };
        let value = match key.as_str() {
            "base64" => {
                let text: String = map.next_value()?;
                let bytes =
                    B64.decode(text.as_bytes()).map_err(|e| de::Error::custom(format!("base64: {e}")))?;
                Value::Blob(bytes)
            }
            "real" => match map.next_value::<serde_json::Value>()? {
                serde_json::Value::Number(n) => Value::Real(n.as_f64().unwrap_or(f64::NAN)),
                serde_json::Value::String(s) if s == "Infinity" => Value::Real(f64::INFINITY),
                serde_json::Value::String(s) if s == "-Infinity" => Value::Real(f64::NEG_INFINITY),
                other => {
                    return Err(de::Error::custom(format!(
                        r#""real" takes a number, "Infinity" or "-Infinity", not {other}"#
                    )));
                }
            },
            other => {
                return Err(de::Error::custom(format!(
                    r#"unknown value form {{"{other}": ...}}: use {{"base64": "..."}} or {{"real": ...}}"#
                )));
            }
        };
        if map.next_key::<String>()?.is_some() {
            return Err(de::Error::custom("an object value has exactly one key"));
        }
        Ok(value)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

/// A statement's parameters: positional for `?` / `?NNN`, or named for `:name`, `@name`, `$name`.
///
/// JSON: an array (`[1, "a"]`, the first binds `?1`) or an object (`{"name": "a"}`; a key may
/// carry its prefix, `{":name": "a"}`, and one without matches `:name`, `@name` or `$name`).
/// Missing entirely, a statement has no parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Params {
    Positional(Vec<Value>),
    Named(BTreeMap<String, Value>),
}

impl Default for Params {
    fn default() -> Self {
        Params::Positional(Vec::new())
    }
}

impl Params {
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Params::Positional(v) => v.is_empty(),
            Params::Named(m) => m.is_empty(),
        }
    }
}

impl Serialize for Params {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Params::Positional(v) => v.serialize(s),
            Params::Named(m) => m.serialize(s),
        }
    }
}

struct ParamsVisitor;

impl<'de> Visitor<'de> for ParamsVisitor {
    type Value = Params;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of values (positional) or an object of name → value (named)")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Params, E> {
        Ok(Params::default())
    }
    fn visit_none<E: de::Error>(self) -> Result<Params, E> {
        Ok(Params::default())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Params, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Params, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(x) = seq.next_element::<Value>()? {
            v.push(x);
        }
        Ok(Params::Positional(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Params, A::Error> {
        let mut m = BTreeMap::new();
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            m.insert(k, v);
        }
        Ok(Params::Named(m))
    }
}

impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Params, D::Error> {
        d.deserialize_any(ParamsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn json_forms_parse_to_the_storage_classes() {
        assert_eq!(parse("null"), Value::Null);
        assert_eq!(parse("42"), Value::Integer(42));
        assert_eq!(parse("-7"), Value::Integer(-7));
        assert_eq!(parse("true"), Value::Integer(1));
        assert_eq!(parse("1.0"), Value::Real(1.0));
        assert_eq!(parse("2.5e3"), Value::Real(2500.0));
        assert_eq!(parse(r#"{"real": 3}"#), Value::Real(3.0));
        assert_eq!(parse(r#"{"real": "-Infinity"}"#), Value::Real(f64::NEG_INFINITY));
        assert_eq!(parse(r#""hi""#), Value::Text("hi".into()));
        assert_eq!(parse(r#"{"base64": "AAEC"}"#), Value::Blob(vec![0, 1, 2]));
    }

    #[test]
    fn bad_forms_are_refused_with_a_reason() {
        let e = serde_json::from_str::<Value>(r#"{"hex": "00"}"#).unwrap_err().to_string();
        assert!(e.contains("unknown value form"), "{e}");
        let e = serde_json::from_str::<Value>(r#"{"base64": "%%%"}"#).unwrap_err().to_string();
        assert!(e.contains("base64"), "{e}");
        let e = serde_json::from_str::<Value>("18446744073709551615").unwrap_err().to_string();
        assert!(e.contains("does not fit"), "{e}");
        assert!(serde_json::from_str::<Value>(r#"{"base64": "AA==", "real": 1}"#).is_err());
    }

    #[test]
    fn values_round_trip_through_json() {
        for v in [
            Value::Null,
            Value::Integer(i64::MIN),
            Value::Real(1.0),
            Value::Real(-0.5),
            Value::Real(f64::INFINITY),
            Value::Text("'; DROP TABLE x; --".into()),
            Value::Blob(vec![0, 255, 10]),
        ] {
            let text = serde_json::to_string(&v).unwrap();
            assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v, "{text}");
            assert_eq!(serde_json::to_string(&v.to_json()).unwrap(), text);
        }
        assert_eq!(serde_json::to_string(&Value::Real(1.0)).unwrap(), "1.0");
    }

    #[test]
    fn params_are_an_array_or_an_object() {
        let p: Params = serde_json::from_str(r#"[1, "a", null]"#).unwrap();
        assert_eq!(p, Params::Positional(vec![1.into(), "a".into(), Value::Null]));
        let p: Params = serde_json::from_str(r#"{"id": 1, ":name": "a"}"#).unwrap();
        let Params::Named(m) = p else { panic!("named") };
        assert_eq!(m["id"], Value::Integer(1));
        assert_eq!(m[":name"], Value::Text("a".into()));
        assert_eq!(serde_json::from_str::<Params>("null").unwrap(), Params::default());
    }
}
