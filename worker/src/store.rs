//! Storage bindings: one small D1 layer and the KV opener.
//!
//! D1 statements take typed [`Arg`]s (integers stay integers, times are [`UtcMs`]) and
//! return typed rows. Every D1 or KV failure, including a statement that fails to bind
//! or a row that fails to decode, becomes one answer: `503 storage_unavailable`, logged
//! with what was being done. Nothing a client or storage can cause is a 500.

use crate::http::ApiError;
use serde::de::DeserializeOwned;
use telltale_core::time::UtcMs;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, Env, KvStore};

/// One bound parameter of a D1 statement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arg<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
}

impl Arg<'_> {
    fn to_js(self) -> JsValue {
        match self {
            Arg::Null => JsValue::NULL,
            // D1 takes JS numbers: integers are exact up to 2^53, far beyond any id,
            // count or UTC millisecond the collector stores.
            Arg::Int(n) => JsValue::from_f64(n as f64),
            Arg::Real(x) => JsValue::from_f64(x),
            Arg::Text(s) => JsValue::from_str(s),
        }
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(s: &'a str) -> Self {
        Arg::Text(s)
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(s: &'a String) -> Self {
        Arg::Text(s)
    }
}

impl From<i64> for Arg<'_> {
    fn from(n: i64) -> Self {
        Arg::Int(n)
    }
}

impl From<u32> for Arg<'_> {
    fn from(n: u32) -> Self {
        Arg::Int(i64::from(n))
    }
}

impl From<u16> for Arg<'_> {
    fn from(n: u16) -> Self {
        Arg::Int(i64::from(n))
    }
}

impl From<bool> for Arg<'_> {
    fn from(b: bool) -> Self {
        Arg::Int(i64::from(b))
    }
}

impl From<f64> for Arg<'_> {
    fn from(x: f64) -> Self {
        Arg::Real(x)
    }
}

impl From<UtcMs> for Arg<'_> {
    fn from(t: UtcMs) -> Self {
        Arg::Int(t.ms())
    }
}

impl<'a, T: Into<Arg<'a>>> From<Option<T>> for Arg<'a> {
    fn from(value: Option<T>) -> Self {
        value.map_or(Arg::Null, Into::into)
    }
}

/// Builds a `&[Arg]` from mixed values: `args![id, now, None::<&str>]`.
#[macro_export]
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        &[$($crate::store::Arg::from($value)),*]
    };
}

/// A prepared, bound statement, for [`Db::batch`].
pub struct Stmt(D1PreparedStatement);

/// The D1 database `DB`.
pub struct Db(D1Database);

/// A D1 failure, logged with its context and answered as a 503.
fn storage<T>(context: &str, r: worker::Result<T>) -> Result<T, ApiError> {
    r.map_err(|e| ApiError::storage(context, e))
}

impl Db {
    /// Opens the binding; a missing binding is a logged 503 like any storage failure.
    pub fn open(env: &Env) -> Result<Db, ApiError> {
        env.d1("DB")
            .map(Db)
            .map_err(|e| ApiError::storage("opening D1", e))
    }

    /// Prepares and binds a statement.
    pub fn stmt(&self, sql: &str, args: &[Arg]) -> Result<Stmt, ApiError> {
        let values: Vec<JsValue> = args.iter().map(|a| a.to_js()).collect();
        storage("binding a statement", self.0.prepare(sql).bind(&values)).map(Stmt)
    }

    /// The first row, if any.
    pub async fn first<T: DeserializeOwned>(
        &self,
        context: &str,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<T>, ApiError> {
        let stmt = self.stmt(sql, args)?;
        storage(context, stmt.0.first::<T>(None).await)
    }

    /// Every row.
    pub async fn all<T: DeserializeOwned>(
        &self,
        context: &str,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Vec<T>, ApiError> {
        let stmt = self.stmt(sql, args)?;
        let result = storage(context, stmt.0.all().await)?;
        storage(context, result.results::<T>())
    }

    /// Every row, and how many rows D1 read to answer (its billing unit): for endpoints
    /// that report their own cost.
    pub async fn all_counting<T: DeserializeOwned>(
        &self,
        context: &str,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<(Vec<T>, u64), ApiError> {
        let stmt = self.stmt(sql, args)?;
        let result = storage(context, stmt.0.all().await)?;
        let read = result
            .meta()
            .ok()
            .flatten()
            .and_then(|m| m.rows_read)
            .map_or(0, |n| n as u64);
        Ok((storage(context, result.results::<T>())?, read))
    }

    /// Runs one statement; returns the rows it wrote.
    pub async fn run(&self, context: &str, sql: &str, args: &[Arg<'_>]) -> Result<u64, ApiError> {
        let stmt = self.stmt(sql, args)?;
        let result = storage(context, stmt.0.run().await)?;
        Ok(rows_written(&result))
    }

    /// Runs statements in one transaction: all of them or none. Returns the rows written.
    pub async fn batch(&self, context: &str, statements: Vec<Stmt>) -> Result<u64, ApiError> {
        if statements.is_empty() {
            return Ok(0);
        }
        let inner = statements.into_iter().map(|s| s.0).collect();
        let results = storage(context, self.0.batch(inner).await)?;
        Ok(results.iter().map(rows_written).sum())
    }
}

fn rows_written(result: &worker::D1Result) -> u64 {
    result
        .meta()
        .ok()
        .flatten()
        .and_then(|m| m.rows_written)
        .map_or(0, |n| n as u64)
}

/// One statement of a `.sql` file split by `-- name:` lines (store_events.sql, archive.sql):
/// the text from its `-- name:` line to the next.
pub fn sql_section<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let marker = format!("-- name: {name}\n");
    let start = text.find(&marker)? + marker.len();
    let rest = &text[start..];
    Some(rest.find("-- name: ").map_or(rest, |end| &rest[..end]))
}

const EXPERIMENTS_SQL: &str = include_str!("experiments.sql");

/// One statement of `experiments.sql`: experiment results (experiments.rs) and the
/// registration of measured events when an experiment is staged (config/staging.rs).
pub fn experiments_sql(name: &str) -> Result<&'static str, ApiError> {
    sql_section(EXPERIMENTS_SQL, name)
        .ok_or_else(|| crate::http::internal(format!("experiments.sql has no statement `{name}`")))
}

/// The KV namespace `KV`.
pub fn kv(env: &Env) -> Result<KvStore, ApiError> {
    env.kv("KV").map_err(|e| ApiError::storage("opening KV", e))
}

/// Every key under a prefix, following KV's pagination.
pub async fn list_keys(store: &KvStore, prefix: &str) -> Result<Vec<String>, ApiError> {
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut listing = store.list().prefix(prefix.into());
        if let Some(c) = cursor.take() {
            listing = listing.cursor(c);
        }
        let page = listing.execute().await?;
        names.extend(page.keys.into_iter().map(|k| k.name));
        match page.cursor {
            Some(c) if !page.list_complete && !c.is_empty() => cursor = Some(c),
            _ => return Ok(names),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_keep_their_types() {
        let name = String::from("search");
        let args: &[Arg] = args![&name, 42_i64, UtcMs(1_767_225_600_000), true, None::<&str>];
        assert_eq!(
            args,
            &[
                Arg::Text("search"),
                Arg::Int(42),
                Arg::Int(1_767_225_600_000),
                Arg::Int(1),
                Arg::Null
            ]
        );
        assert_eq!(Arg::from(Some(7_u16)), Arg::Int(7));
    }
}
