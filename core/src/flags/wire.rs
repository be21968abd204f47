//! The compiled engine as bytes: the collector compiles and validates a ruleset (it does
//! so anyway, to publish it) and serves this form beside the JSON, so the browser's engine
//! module only decodes and decides. It links no JSON-to-flag readers, no validation and no
//! compile step, which is most of what made it large.
//!
//! Layout (all integers LEB128 varints, signed ones zigzag; f64 little-endian; a string is
//! its byte length and UTF-8): the magic `TTE1`, the version, the attribute table, the
//! segments, the flags (sorted by key, each ready or broken), their source positions and
//! the compile warnings. Decoding checks every length, tag, index and UTF-8 string and
//! refuses anything else, so bytes that are not an encoding give an error, never a panic.

// A child of the engine module: it reads and writes the compiled types' private fields.
use super::*;
use serde_json::Number;

const MAGIC: &[u8; 4] = b"TTE1";
/// Containers nest at most this deep: exactly what core's JSON reader (and serde_json)
/// accept, so an attribute too deep for JSON is too deep here too.
const MAX_CONTAINER_DEPTH: usize = 127;

/// Why bytes are not a compiled engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireError {
    /// Byte offset where decoding stopped.
    pub offset: usize,
    pub reason: &'static str,
}

impl core::fmt::Display for WireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "not a compiled ruleset: {} at byte {}",
            self.reason, self.offset
        )
    }
}

/// The codes flag and segment validation uses (`FieldError::code`), so that a decoded
/// warning keeps a `&'static str` code. A code missing here reads back as `invalid_value`;
/// the vectors' round trip (tests below and core/tests/flag_vectors.rs) catches it.
const WARNING_CODES: [&str; 12] = [
    "invalid_value",
    "invalid_type",
    "invalid_flag",
    "invalid_segment",
    "invalid_ruleset",
    "required",
    "unknown_field",
    "unknown_flag",
    "unknown_segment",
    "prerequisite_cycle",
    "out_of_range",
    "too_long",
];

struct Writer(Vec<u8>);

impl Writer {
    fn uint(&mut self, mut n: u64) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.0.push(byte);
                return;
            }
            self.0.push(byte | 0x80);
        }
    }
    fn int(&mut self, n: i64) {
        self.uint(((n << 1) ^ (n >> 63)) as u64);
    }
    fn len(&mut self, n: usize) {
        self.uint(n as u64);
    }
    fn flag(&mut self, b: bool) {
        self.0.push(u8::from(b));
    }
    fn text(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn option<T>(&mut self, value: Option<T>, mut write: impl FnMut(&mut Self, T)) {
        match value {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                write(self, v);
            }
        }
    }
    fn value(&mut self, v: &Value) {
        match v {
            Value::Null => self.0.push(0),
            Value::Bool(false) => self.0.push(1),
            Value::Bool(true) => self.0.push(2),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    self.0.push(3);
                    self.uint(u);
                } else if let Some(i) = n.as_i64() {
                    self.0.push(4);
                    self.int(i);
                } else {
                    self.0.push(5);
                    self.0
                        .extend_from_slice(&n.as_f64().unwrap_or(0.0).to_le_bytes());
                }
            }
            Value::String(s) => {
                self.0.push(6);
                self.text(s);
            }
            Value::Array(items) => {
                self.0.push(7);
                self.len(items.len());
                items.iter().for_each(|item| self.value(item));
            }
            Value::Object(map) => {
                self.0.push(8);
                self.len(map.len());
                for (key, item) in map {
                    self.text(key);
                    self.value(item);
                }
            }
        }
    }
    fn condition(&mut self, c: &CompiledCondition) {
        self.len(c.attribute);
        let op = Op::ALL.iter().position(|o| *o == c.op).unwrap_or(0);
        self.len(op);
        match &c.operand {
            Operand::Scalar(v) => {
                self.0.push(0);
                self.value(v);
            }
            Operand::List(vs) => {
                self.0.push(1);
                self.len(vs.len());
                vs.iter().for_each(|v| self.value(v));
            }
            Operand::Text(t) => {
                self.0.push(2);
                self.text(t);
            }
            Operand::Number(n) => {
                self.0.push(3);
                self.0.extend_from_slice(&n.to_le_bytes());
            }
            Operand::Version(v) => {
                self.0.push(4);
                let (core, pre) = v.parts();
                core.iter().for_each(|n| self.uint(*n));
                self.len(pre.len());
                pre.iter().for_each(|p| self.text(p));
            }
            Operand::Time(t) => {
                self.0.push(5);
                self.int(*t);
            }
        }
    }
    fn conditions(&mut self, cs: &[CompiledCondition]) {
        self.len(cs.len());
        cs.iter().for_each(|c| self.condition(c));
    }
    fn flag_entry(&mut self, entry: &FlagEntry) {
        match entry {
            FlagEntry::Broken { default, problem } => {
                self.0.push(1);
                self.option(default.as_ref(), |w, (key, value)| {
                    w.text(key);
                    w.value(value);
                });
                self.text(problem);
            }
            FlagEntry::Ready(f) => {
                self.0.push(0);
                self.len(f.variants.len());
                for (key, value) in &f.variants {
                    self.text(key);
                    self.value(value);
                }
                self.flag(f.enabled);
                self.len(f.default);
                self.len(f.off);
                self.len(f.rules.len());
                for rule in &f.rules {
                    self.text(&rule.id);
                    self.conditions(&rule.conditions);
                    self.len(rule.segments.len());
                    rule.segments.iter().for_each(|s| self.len(*s));
                    match &rule.serve {
                        CompiledServe::Variant(v) => {
                            self.0.push(0);
                            self.len(*v);
                        }
                        CompiledServe::Rollout {
                            variant,
                            below_bucket,
                        } => {
                            self.0.push(1);
                            self.len(*variant);
                            self.uint(u64::from(*below_bucket));
                        }
                        CompiledServe::Split(ranges) => {
                            self.0.push(2);
                            self.len(ranges.len());
                            for (upper, variant) in ranges {
                                self.uint(u64::from(*upper));
                                self.len(*variant);
                            }
                        }
                    }
                    self.option(rule.stickiness, |w, a| w.len(a));
                }
                self.len(f.prerequisites.len());
                for p in &f.prerequisites {
                    self.text(&p.flag);
                    self.len(p.variants.len());
                    p.variants.iter().for_each(|v| self.text(v));
                }
                self.option(f.requires_probe.as_deref(), |w, p| w.text(p));
                self.option(f.from_ms, |w, t| w.int(t));
                self.option(f.until_ms, |w, t| w.int(t));
                self.text(&f.salt);
            }
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

type Read<T> = Result<T, WireError>;

impl<'a> Reader<'a> {
    fn fail<T>(&self, reason: &'static str) -> Read<T> {
        Err(WireError {
            offset: self.at,
            reason,
        })
    }
    fn byte(&mut self) -> Read<u8> {
        match self.bytes.get(self.at) {
            Some(b) => {
                self.at += 1;
                Ok(*b)
            }
            None => self.fail("cut short"),
        }
    }
    fn take(&mut self, n: usize) -> Read<&'a [u8]> {
        match self.bytes.get(self.at..self.at.saturating_add(n)) {
            Some(part) if self.at.checked_add(n).is_some() => {
                self.at += n;
                Ok(part)
            }
            _ => self.fail("cut short"),
        }
    }
    fn uint(&mut self) -> Read<u64> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            n |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(n);
            }
        }
        self.fail("a number over 64 bits")
    }
    fn int(&mut self) -> Read<i64> {
        let z = self.uint()?;
        Ok((z >> 1) as i64 ^ -((z & 1) as i64))
    }
    /// An index or a position.
    fn len(&mut self) -> Read<usize> {
        let n = self.uint()?;
        match usize::try_from(n) {
            Ok(n) if n <= u32::MAX as usize => Ok(n),
            _ => self.fail("an index over 32 bits"),
        }
    }
    /// A count: at most the bytes left (each item takes one at least), so a forged count
    /// cannot make a huge allocation.
    fn count(&mut self) -> Read<usize> {
        let n = self.len()?;
        if n > self.bytes.len().saturating_sub(self.at) {
            return self.fail("a count beyond the bytes");
        }
        Ok(n)
    }
    fn index(&mut self, below: usize, what: &'static str) -> Read<usize> {
        let i = self.len()?;
        if i < below {
            Ok(i)
        } else {
            self.fail(what)
        }
    }
    fn flag(&mut self) -> Read<bool> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => self.fail("a flag that is not 0 or 1"),
        }
    }
    fn text(&mut self) -> Read<String> {
        let n = self.count()?;
        let at = self.at;
        let bytes = self.take(n)?;
        match core::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => Err(WireError {
                offset: at,
                reason: "text that is not UTF-8",
            }),
        }
    }
    fn f64(&mut self) -> Read<f64> {
        let bytes = self.take(8)?;
        let mut raw = [0u8; 8];
        raw.copy_from_slice(bytes);
        Ok(f64::from_le_bytes(raw))
    }
    fn option<T>(&mut self, mut read: impl FnMut(&mut Self) -> Read<T>) -> Read<Option<T>> {
        if self.flag()? {
            read(self).map(Some)
        } else {
            Ok(None)
        }
    }
    fn list<T>(&mut self, mut read: impl FnMut(&mut Self) -> Read<T>) -> Read<Vec<T>> {
        let n = self.count()?;
        // A plain loop: an iterator chain here is instantiated once per item type, and that
        // code is most of what decoding would add to the engine module. Nothing is reserved
        // up front: nested lists each reserving their count would let a few bytes claim
        // gigabytes; growing as items arrive keeps memory in proportion to the bytes.
        let mut items = Vec::new();
        for _ in 0..n {
            items.push(read(self)?);
        }
        Ok(items)
    }
    /// A value inside `depth` containers.
    fn value(&mut self, depth: usize) -> Read<Value> {
        let tag = self.byte()?;
        if matches!(tag, 7 | 8) && depth >= MAX_CONTAINER_DEPTH {
            return self.fail("values nested too deep");
        }
        Ok(match tag {
            0 => Value::Null,
            1 => Value::Bool(false),
            2 => Value::Bool(true),
            3 => Value::Number(Number::from(self.uint()?)),
            4 => Value::Number(Number::from(self.int()?)),
            5 => match Number::from_f64(self.f64()?) {
                Some(n) => Value::Number(n),
                None => return self.fail("a number that is not finite"),
            },
            6 => Value::String(self.text()?),
            7 => Value::Array(self.list(|r| r.value(depth + 1))?),
            8 => {
                let n = self.count()?;
                let mut map = Map::new();
                for _ in 0..n {
                    let key = self.text()?;
                    map.insert(key, self.value(depth + 1)?);
                }
                Value::Object(map)
            }
            _ => return self.fail("an unknown value tag"),
        })
    }
    fn condition(&mut self, attributes: usize) -> Read<CompiledCondition> {
        let attribute = self.index(attributes, "an attribute number beyond the table")?;
        let op = match Op::ALL.get(self.len()?) {
            Some(op) => *op,
            None => return self.fail("an unknown operator"),
        };
        let operand = match self.byte()? {
            0 => Operand::Scalar(self.value(0)?),
            1 => Operand::List(self.list(|r| r.value(0))?),
            2 => Operand::Text(self.text()?),
            3 => Operand::Number(self.f64()?),
            4 => {
                let core = [self.uint()?, self.uint()?, self.uint()?];
                let pre = self.list(Reader::text)?;
                Operand::Version(Version::from_parts(core, pre))
            }
            5 => Operand::Time(self.int()?),
            _ => return self.fail("an unknown operand tag"),
        };
        Ok(CompiledCondition {
            attribute,
            op,
            operand,
        })
    }
    fn conditions(&mut self, attributes: usize) -> Read<Vec<CompiledCondition>> {
        self.list(|r| r.condition(attributes))
    }
    fn flag_entry(&mut self, attributes: usize, segments: usize) -> Read<FlagEntry> {
        match self.byte()? {
            1 => {
                let default = self.option(|r| Ok((r.text()?, r.value(0)?)))?;
                Ok(FlagEntry::Broken {
                    default,
                    problem: self.text()?,
                })
            }
            0 => {
                let variants = self.list(|r| Ok((r.text()?, r.value(0)?)))?;
                let n = variants.len();
                if n > MAX_VARIANTS {
                    return self.fail("more variants than a flag may have");
                }
                let enabled = self.flag()?;
                let default = self.index(n, "a variant number beyond the flag's")?;
                let off = self.index(n, "a variant number beyond the flag's")?;
                let rules = self.list(|r| {
                    let id = r.text()?;
                    let conditions = r.conditions(attributes)?;
                    let segment_numbers =
                        r.list(|r| r.index(segments, "a segment number beyond the table"))?;
                    let serve = match r.byte()? {
                        0 => CompiledServe::Variant(
                            r.index(n, "a variant number beyond the flag's")?,
                        ),
                        1 => CompiledServe::Rollout {
                            variant: r.index(n, "a variant number beyond the flag's")?,
                            below_bucket: r.bucket()?,
                        },
                        2 => CompiledServe::Split(r.list(|r| {
                            Ok((
                                r.bucket()?,
                                r.index(n, "a variant number beyond the flag's")?,
                            ))
                        })?),
                        _ => return r.fail("an unknown serve tag"),
                    };
                    let stickiness =
                        r.option(|r| r.index(attributes, "an attribute number beyond the table"))?;
                    Ok(CompiledRule {
                        id,
                        conditions,
                        segments: segment_numbers,
                        serve,
                        stickiness,
                    })
                })?;
                if rules.len() > MAX_RULES {
                    return self.fail("more rules than a flag may have");
                }
                let prerequisites = self.list(|r| {
                    Ok(Prerequisite {
                        flag: r.text()?,
                        variants: r.list(Reader::text)?,
                    })
                })?;
                Ok(FlagEntry::Ready(CompiledFlag {
                    variants,
                    enabled,
                    default,
                    off,
                    rules,
                    prerequisites,
                    requires_probe: self.option(Reader::text)?,
                    from_ms: self.option(Reader::int)?,
                    until_ms: self.option(Reader::int)?,
                    salt: self.text()?,
                }))
            }
            _ => self.fail("an unknown flag tag"),
        }
    }
    fn bucket(&mut self) -> Read<u32> {
        match u32::try_from(self.uint()?) {
            Ok(b) => Ok(b),
            Err(_) => self.fail("a bucket over 32 bits"),
        }
    }
}

/// Standard base64 with padding (RFC 4648): how the served ruleset carries the bytes in
/// JSON (its `compiled` field; browsers decode it with `atob`).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One JSON value in the wire form (how the engine module receives a context's object and
/// array values: JavaScript writes them, so no JSON reader is needed); `None` unless the
/// bytes are exactly one value.
pub fn read_wire_value(bytes: &[u8]) -> Option<Value> {
    let mut r = Reader { bytes, at: 0 };
    let value = r.value(0).ok()?;
    (r.at == bytes.len()).then_some(value)
}

/// A value in the wire form ([`read_wire_value`] reads it back).
pub fn write_wire_value(value: &Value) -> Vec<u8> {
    let mut w = Writer(Vec::new());
    w.value(value);
    w.0
}

/// A ruleset in the served form the engine module reads: its definitions, the probe states
/// given (if any), `compiled` (the compiled engine, base64) and the compile `warnings`
/// (`[{code, field, message}]`). What `POST /v1/flags/compile` answers.
pub fn compiled_form(ruleset: &Ruleset, probes: Option<&Value>) -> Value {
    let engine = compile(ruleset);
    let mut served = serde_json::to_value(ruleset).unwrap_or(Value::Null);
    if let Some(probes) = probes {
        served["probes"] = probes.clone();
    }
    served["compiled"] = Value::String(base64(&engine.to_wire()));
    served["warnings"] = engine
        .warnings()
        .iter()
        .map(|w| {
            let mut warning = Map::new();
            warning.insert("code".into(), Value::from(w.code));
            warning.insert("field".into(), Value::from(w.field.as_str()));
            warning.insert("message".into(), Value::from(w.message.as_str()));
            Value::Object(warning)
        })
        .collect();
    served
}

impl Engine {
    /// The engine as bytes ([`Engine::from_wire`] reads them back).
    pub fn to_wire(&self) -> Vec<u8> {
        let mut w = Writer(MAGIC.to_vec());
        w.text(&self.version);
        w.len(self.attributes.names.len());
        for (name, version) in self.attributes.names.iter().zip(&self.attributes.versions) {
            w.text(name);
            w.flag(*version);
        }
        w.len(self.segments.len());
        self.segments.iter().for_each(|s| w.conditions(s));
        w.len(self.flags.len());
        for (key, entry) in &self.flags {
            w.text(key);
            w.flag_entry(entry);
        }
        w.len(self.sources.len());
        self.sources.iter().for_each(|s| w.len(*s));
        w.len(self.warnings.len());
        for warning in &self.warnings {
            w.text(warning.code);
            w.text(&warning.field);
            w.text(&warning.message);
        }
        w.0
    }

    /// Reads an engine [`Engine::to_wire`] wrote; anything else is an error.
    pub fn from_wire(bytes: &[u8]) -> Result<Engine, WireError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(4)? != MAGIC {
            return Err(WireError {
                offset: 0,
                reason: "no TTE1 magic (not a compiled ruleset, or another format version)",
            });
        }
        let version = r.text()?;
        let table = r.list(|r| Ok((r.text()?, r.flag()?)))?;
        let (names, versions): (Vec<String>, Vec<bool>) = table.into_iter().unzip();
        let attributes = names.len();
        let segments = r.list(|r| r.conditions(attributes))?;
        let segment_count = segments.len();
        let flags = r.list(|r| Ok((r.text()?, r.flag_entry(attributes, segment_count)?)))?;
        if flags.windows(2).any(|w| w[0].0 >= w[1].0) {
            return r.fail("flags not sorted by key");
        }
        let sources = r.list(Reader::len)?;
        if sources.len() != flags.len() {
            return r.fail("a source position per flag");
        }
        let warnings = r.list(|r| {
            let code = r.text()?;
            let code = WARNING_CODES
                .iter()
                .find(|c| **c == code)
                .copied()
                .unwrap_or(WARNING_CODES[0]);
            Ok(FieldError::new(code, r.text()?, r.text()?))
        })?;
        if r.at != bytes.len() {
            return r.fail("bytes after the end");
        }
        Ok(Engine {
            version,
            flags,
            sources,
            segments,
            attributes: Attributes { names, versions },
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let doc = crate::json::parse(include_str!("../../../tests/spec/flags/cases.json")).unwrap();
        compile(&Ruleset::from_value(&doc["ruleset"]).unwrap())
    }

    #[test]
    fn an_engine_reads_back_as_itself() {
        let engine = engine();
        let bytes = engine.to_wire();
        let back = Engine::from_wire(&bytes).unwrap();
        assert_eq!(back.to_wire(), bytes, "the same bytes again");
        assert_eq!(format!("{back:?}"), format!("{engine:?}"));
        assert!(
            !engine.warnings().is_empty(),
            "the vectors' ruleset has warnings to carry"
        );
    }

    #[test]
    fn every_cut_and_corruption_is_an_error_not_a_panic() {
        let bytes = engine().to_wire();
        for cut in 0..bytes.len() {
            assert!(Engine::from_wire(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            Engine::from_wire(&longer).unwrap_err().reason,
            "bytes after the end"
        );
        assert!(Engine::from_wire(b"TTE2").is_err());
        // Every single-byte change either fails or decodes to something that encodes again.
        let mut seed: u32 = 7;
        for _ in 0..3_000 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let at = (seed as usize >> 8) % bytes.len();
            let mut changed = bytes.clone();
            changed[at] ^= (seed >> 24) as u8 | 1;
            if let Ok(engine) = Engine::from_wire(&changed) {
                assert!(Engine::from_wire(&engine.to_wire()).is_ok());
            }
        }
    }

    #[test]
    fn forged_counts_and_indexes_are_refused() {
        // A count of 2^32 strings with 4 bytes behind it.
        let mut w = Writer(MAGIC.to_vec());
        w.text("v");
        w.uint(1 << 32);
        assert!(Engine::from_wire(&w.0).is_err());
        // A flag whose default names a variant it does not have.
        let mut w = Writer(MAGIC.to_vec());
        w.text("v");
        w.len(0); // attributes
        w.len(0); // segments
        w.len(1);
        w.text("f");
        w.0.push(0); // ready
        w.len(1);
        w.text("on");
        w.value(&Value::Bool(true));
        w.flag(true);
        w.len(3); // default: out of range
        let e = Engine::from_wire(&w.0).unwrap_err();
        assert_eq!(e.reason, "a variant number beyond the flag's");
        // Values nested past the limit.
        let mut deep = Writer(Vec::new());
        for _ in 0..200 {
            deep.0.push(7);
            deep.len(1);
        }
        deep.0.push(0);
        let mut r = Reader {
            bytes: &deep.0,
            at: 0,
        };
        assert_eq!(r.value(0).unwrap_err().reason, "values nested too deep");
        // Exactly as deep as core's JSON reader (and serde_json) go, with and without a
        // value in the innermost container.
        for levels in 120..135 {
            for inner in ["", "1"] {
                let text = format!("{}{inner}{}", "[".repeat(levels), "]".repeat(levels));
                let json_ok = crate::json::parse(&text).is_ok();
                assert_eq!(
                    json_ok,
                    serde_json::from_str::<Value>(&text).is_ok(),
                    "{levels}{inner}"
                );
                let wire = nested(levels, !inner.is_empty());
                assert_eq!(
                    read_wire_value(&wire).is_some(),
                    json_ok,
                    "{levels} levels, inner {inner:?}"
                );
            }
        }
    }

    #[test]
    fn base64_matches_the_rfc_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }

    /// `levels` nested arrays in wire form, the innermost holding the number 1 or nothing.
    fn nested(levels: usize, with_value: bool) -> Vec<u8> {
        let mut w = Writer(Vec::new());
        for i in 0..levels {
            w.0.push(7);
            w.len(usize::from(i + 1 < levels || with_value));
        }
        if with_value {
            w.value(&Value::from(1u64));
        }
        w.0
    }

    #[test]
    fn counts_beyond_the_bytes_are_refused() {
        // Counts that promise more items than bytes follow are refused before anything is
        // allocated for them, however deeply they nest (and nothing is reserved up front
        // for the counts that do fit: see `list`).
        let mut w = Writer(Vec::new());
        for _ in 0..100 {
            w.0.push(7);
            w.uint(1_000_000);
        }
        assert!(read_wire_value(&w.0).is_none());
    }

    #[test]
    fn numbers_keep_their_kind() {
        for v in [
            serde_json::json!(1),
            serde_json::json!(-1),
            serde_json::json!(1.0),
            serde_json::json!(u64::MAX),
            serde_json::json!(i64::MIN),
            serde_json::json!({"b": [1, "x", null, {"c": false}], "a": 2.5}),
        ] {
            let mut w = Writer(Vec::new());
            w.value(&v);
            let mut r = Reader { bytes: &w.0, at: 0 };
            let back = r.value(0).unwrap();
            assert_eq!(back, v);
            assert_eq!(back.is_f64(), v.is_f64(), "{v}");
        }
    }
}
