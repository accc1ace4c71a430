//! The file's shape as serde sees it: every key the format knows, nothing validated yet.
//!
//! Values checked after deserializing are `Spanned`, so a semantic error can point at the
//! value the user wrote. Unknown keys are rejected at every level.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawManifest {
    #[serde(default)]
    pub app: Option<RawApp>,
    #[serde(default)]
    pub functions: BTreeMap<Spanned<String>, Spanned<RawFunction>>,
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
    #[serde(default)]
    pub queues: BTreeMap<Spanned<String>, Spanned<RawQueue>>,
    #[serde(default)]
    pub topics: BTreeMap<Spanned<String>, Spanned<RawTopic>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQueue {
    pub visibility: Option<Spanned<Scalar>>,
    pub max_receives: Option<Spanned<Int>>,
    pub dlq: Option<Spanned<String>>,
    #[serde(default)]
    pub fifo: bool,
    pub delay: Option<Spanned<Scalar>>,
    pub retention: Option<Spanned<Scalar>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTopic {
    #[serde(default)]
    pub subscribers: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAsync {
    pub max_attempts: Option<Spanned<Int>>,
    pub max_age: Option<Spanned<Scalar>>,
    pub retry_delay: Option<Spanned<Scalar>>,
    pub on_success: Option<Spanned<String>>,
    pub on_failure: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrigger {
    pub id: Spanned<String>,
    pub queue: Option<Spanned<String>>,
    pub batch_size: Option<Spanned<Int>>,
    pub window: Option<Spanned<Scalar>>,
    pub concurrency: Option<Spanned<Int>>,
    pub cron: Option<Spanned<String>>,
    pub timezone: Option<Spanned<String>>,
    pub missed: Option<Spanned<String>>,
    pub bucket: Option<Spanned<String>>,
    pub events: Option<Spanned<Vec<String>>>,
    pub prefix: Option<Spanned<String>>,
    pub suffix: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApp {
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFunction {
    pub path: Option<Spanned<String>>,
    pub build: Option<Spanned<String>>,
    pub source: Option<Spanned<String>>,
    pub runtime: Option<Spanned<String>>,
    pub mode: Option<Spanned<String>>,
    pub command: Option<Spanned<String>>,
    pub health: Option<Spanned<String>>,
    pub handler: Option<Spanned<String>>,
    pub startup_timeout: Option<Spanned<Scalar>>,
    pub idle_timeout: Option<Spanned<Scalar>>,
    pub instance: Option<Spanned<String>>,
    pub memory: Option<Spanned<Scalar>>,
    pub timeout: Option<Spanned<Scalar>>,
    pub max_body: Option<Spanned<Scalar>>,
    #[serde(default)]
    pub private: bool,
    #[serde(default)]
    pub allow_outbound: Vec<Spanned<String>>,
    #[serde(default)]
    pub buckets: Vec<Spanned<String>>,
    #[serde(default)]
    pub kv: Vec<Spanned<String>>,
    #[serde(default)]
    pub sql: Vec<Spanned<String>>,
    #[serde(default)]
    pub env: BTreeMap<Spanned<String>, Spanned<String>>,
    pub secrets: Option<Spanned<RawSecrets>>,
    #[serde(default)]
    pub tags: BTreeMap<Spanned<String>, Spanned<Scalar>>,
    pub traffic: Option<Spanned<BTreeMap<Spanned<String>, Spanned<Int>>>>,
    pub rollout: Option<Spanned<Scalar>>,
    pub sticky: Option<Spanned<String>>,
    pub scale: Option<RawScale>,
    #[serde(default, rename = "async")]
    pub asynchronous: Option<Spanned<RawAsync>>,
    #[serde(default)]
    pub triggers: Vec<Spanned<RawTrigger>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScale {
    pub min: Option<Spanned<Int>>,
    pub max: Option<Spanned<Int>>,
    pub concurrency: Option<Spanned<Int>>,
    pub idle: Option<Spanned<Scalar>>,
    pub keep_alive: Option<Spanned<String>>,
    pub queue: Option<Spanned<Int>>,
    pub queue_timeout: Option<Spanned<Scalar>>,
    pub freeze: Option<Spanned<Scalar>>,
    pub window: Option<Spanned<Scalar>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub path: Spanned<String>,
    pub host: Option<Spanned<String>>,
    pub function: Spanned<String>,
    pub tag: Option<Spanned<String>>,
}

/// A value that may be written as a string or an integer (`memory = "128Mi"` or
/// `memory = 134217728`, `stable = 3` or `prod = "latest"`). Decoding it by hand rather than
/// with an untagged enum keeps the deserializer's own spans and error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scalar {
    Str(String),
    Int(i64),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                i64::try_from(v).map(Scalar::Int).map_err(|_| E::custom(format!("{v} is too large")))
            }
        }
        d.deserialize_any(V)
    }
}

/// An integer, decoded by hand so a wrong type reads "expected an integer" rather than the
/// Rust type's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Int(pub i64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                i64::try_from(v).map(Int).map_err(|_| E::custom(format!("{v} is too large")))
            }
        }
        d.deserialize_any(V)
    }
}

/// `secrets` in either form, as (env var, secret name) pairs in file order: the array form
/// `["DB_PASSWORD"]` names both with the same string.
#[derive(Debug)]
pub(crate) struct RawSecrets(pub Vec<(Spanned<String>, Spanned<String>)>);

impl<'de> Deserialize<'de> for RawSecrets {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawSecrets;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"an array of secret names or a table of ENV_VAR = "secret-name""#)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawSecrets, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = seq.next_element::<Spanned<String>>()? {
                    out.push((name.clone(), name));
                }
                Ok(RawSecrets(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawSecrets, A::Error> {
                let mut out = Vec::new();
                while let Some((var, name)) = map.next_entry::<Spanned<String>, Spanned<String>>()? {
                    out.push((var, name));
                }
                Ok(RawSecrets(out))
            }
        }
        d.deserialize_any(V)
    }
}
