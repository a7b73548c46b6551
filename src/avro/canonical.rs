//! The Avro specification's Parsing Canonical Form and CRC-64-AVRO (Rabin) fingerprint,
//! written here because apache-avro 0.22 keeps `precision`/`scale` in its canonical form
//! and so disagrees with Java and fastavro producers on every decimal schema.
//!
//! Also the "layout form": the canonical form plus `logicalType`, `precision` and `scale`,
//! the attributes the spec drops but that change how bytes decode. Two schemas with one
//! fingerprint must have one layout form, or single-object records would be ambiguous.

use serde_json::{Map, Value};
use std::collections::HashSet;

use super::error::SchemaError;

/// The empty CRC-64-AVRO fingerprint (also the polynomial), from the spec.
pub const EMPTY_FINGERPRINT: u64 = 0xc15d_213a_a4d7_a795;

const FINGERPRINT_TABLE: [u64; 256] = build_table();

const fn build_table() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut fp = i as u64;
        let mut j = 0;
        while j < 8 {
            fp = (fp >> 1) ^ (EMPTY_FINGERPRINT & (fp & 1).wrapping_neg());
            j += 1;
        }
        table[i] = fp;
        i += 1;
    }
    table
}

/// CRC-64-AVRO of `bytes` as the spec defines it (the single-object header carries it
/// little-endian).
pub fn crc64_avro(bytes: &[u8]) -> u64 {
    let mut fp = EMPTY_FINGERPRINT;
    for &b in bytes {
        fp = (fp >> 8) ^ FINGERPRINT_TABLE[((fp ^ u64::from(b)) & 0xff) as usize];
    }
    fp
}

/// The spec's Parsing Canonical Form of a schema given as JSON.
pub fn parsing_canonical_form(schema: &Value) -> Result<String, SchemaError> {
    let mut out = String::new();
    Canonicalizer::new(false).write(schema, "", &mut out)?;
    Ok(out)
}

/// The canonical form plus the logical-type attributes that change decoding
/// (`logicalType`, `precision`, `scale`): equal layout forms decode bytes identically.
pub fn layout_form(schema: &Value) -> Result<String, SchemaError> {
    let mut out = String::new();
    Canonicalizer::new(true).write(schema, "", &mut out)?;
    Ok(out)
}

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// Logical-type attributes kept by the layout form, in output order.
const LAYOUT_ATTRIBUTES: [&str; 3] = ["logicalType", "precision", "scale"];

struct Canonicalizer {
    layout: bool,
    seen: HashSet<String>,
}

fn invalid(reason: impl Into<String>) -> SchemaError {
    SchemaError::Invalid(reason.into())
}

fn quoted(out: &mut String, s: &str) {
    // serde_json escapes only what JSON requires and keeps other characters as UTF-8,
    // which is the spec's [STRINGS] rule.
    out.push_str(&Value::String(s.to_owned()).to_string());
}

fn namespace_of(fullname: &str) -> &str {
    fullname.rsplit_once('.').map_or("", |(ns, _)| ns)
}

impl Canonicalizer {
    fn new(layout: bool) -> Self {
        Canonicalizer {
            layout,
            seen: HashSet::new(),
        }
    }

    fn write(&mut self, schema: &Value, ns: &str, out: &mut String) -> Result<(), SchemaError> {
        match schema {
            Value::String(name) => {
                self.write_name_ref(name, ns, out);
                Ok(())
            }
            Value::Array(branches) => {
                out.push('[');
                for (i, branch) in branches.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.write(branch, ns, out)?;
                }
                out.push(']');
                Ok(())
            }
            Value::Object(obj) => self.write_object(obj, ns, out),
            other => Err(invalid(format!("a schema cannot be {other}"))),
        }
    }

    fn write_name_ref(&self, name: &str, ns: &str, out: &mut String) {
        if PRIMITIVES.contains(&name) || name.contains('.') || ns.is_empty() {
            quoted(out, name);
        } else {
            let qualified = format!("{ns}.{name}");
            if self.seen.contains(name) && !self.seen.contains(&qualified) {
                quoted(out, name);
            } else {
                quoted(out, &qualified);
            }
        }
    }

    fn write_object(
        &mut self,
        obj: &Map<String, Value>,
        ns: &str,
        out: &mut String,
    ) -> Result<(), SchemaError> {
        let type_name = match obj.get("type") {
            Some(Value::String(t)) => t.as_str(),
            Some(nested) => return self.write(nested, ns, out),
            None => return Err(invalid("schema object without \"type\"")),
        };
        match type_name {
            "record" | "error" | "enum" | "fixed" => self.write_named(obj, type_name, ns, out),
            "array" | "map" => {
                let (key, child) = if type_name == "array" {
                    ("items", obj.get("items"))
                } else {
                    ("values", obj.get("values"))
                };
                let child = child.ok_or_else(|| invalid(format!("{type_name} without {key}")))?;
                out.push_str(&format!("{{\"type\":\"{type_name}\",\"{key}\":"));
                self.write(child, ns, out)?;
                self.write_layout_attributes(obj, out);
                out.push('}');
                Ok(())
            }
            _ if self.layout && PRIMITIVES.contains(&type_name) && has_layout(obj) => {
                out.push_str("{\"type\":");
                quoted(out, type_name);
                self.write_layout_attributes(obj, out);
                out.push('}');
                Ok(())
            }
            // Primitive in object form, or {"type": "some.Name"}: the simple form.
            _ => {
                self.write_name_ref(type_name, ns, out);
                Ok(())
            }
        }
    }

    fn write_named(
        &mut self,
        obj: &Map<String, Value>,
        type_name: &str,
        ns: &str,
        out: &mut String,
    ) -> Result<(), SchemaError> {
        let name = match obj.get("name") {
            Some(Value::String(n)) => n.as_str(),
            _ => return Err(invalid(format!("{type_name} without a string \"name\""))),
        };
        let fullname = if name.contains('.') {
            name.to_owned()
        } else {
            let own_ns = match obj.get("namespace") {
                Some(Value::String(n)) => n.as_str(),
                Some(Value::Null) | None => ns,
                Some(_) => return Err(invalid("\"namespace\" must be a string")),
            };
            if own_ns.is_empty() {
                name.to_owned()
            } else {
                format!("{own_ns}.{name}")
            }
        };
        if !self.seen.insert(fullname.clone()) {
            // A second definition of a name is a reference in canonical form.
            quoted(out, &fullname);
            return Ok(());
        }
        let kind = if type_name == "error" {
            "record"
        } else {
            type_name
        };
        out.push_str("{\"name\":");
        quoted(out, &fullname);
        out.push_str(&format!(",\"type\":\"{kind}\""));
        match kind {
            "record" => self.write_fields(obj, namespace_of(&fullname), out)?,
            "enum" => write_symbols(obj, out)?,
            _ => write_size(obj, out)?,
        }
        self.write_layout_attributes(obj, out);
        out.push('}');
        Ok(())
    }

    fn write_fields(
        &mut self,
        obj: &Map<String, Value>,
        ns: &str,
        out: &mut String,
    ) -> Result<(), SchemaError> {
        let Some(Value::Array(fields)) = obj.get("fields") else {
            return Err(invalid("record without a \"fields\" array"));
        };
        out.push_str(",\"fields\":[");
        for (i, field) in fields.iter().enumerate() {
            let (Some(Value::String(name)), Some(field_type)) =
                (field.get("name"), field.get("type"))
            else {
                return Err(invalid(
                    "record field without a string \"name\" and a \"type\"",
                ));
            };
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"name\":");
            quoted(out, name);
            out.push_str(",\"type\":");
            self.write(field_type, ns, out)?;
            out.push('}');
        }
        out.push(']');
        Ok(())
    }

    fn write_layout_attributes(&self, obj: &Map<String, Value>, out: &mut String) {
        if !self.layout {
            return;
        }
        for key in LAYOUT_ATTRIBUTES {
            if let Some(value) = obj.get(key) {
                out.push_str(&format!(",\"{key}\":{value}"));
            }
        }
    }
}

fn has_layout(obj: &Map<String, Value>) -> bool {
    LAYOUT_ATTRIBUTES.iter().any(|k| obj.contains_key(*k))
}

fn write_symbols(obj: &Map<String, Value>, out: &mut String) -> Result<(), SchemaError> {
    let Some(Value::Array(symbols)) = obj.get("symbols") else {
        return Err(invalid("enum without a \"symbols\" array"));
    };
    out.push_str(",\"symbols\":[");
    for (i, symbol) in symbols.iter().enumerate() {
        let Value::String(symbol) = symbol else {
            return Err(invalid("enum symbols must be strings"));
        };
        if i > 0 {
            out.push(',');
        }
        quoted(out, symbol);
    }
    out.push(']');
    Ok(())
}

fn write_size(obj: &Map<String, Value>, out: &mut String) -> Result<(), SchemaError> {
    let size = match obj.get("size") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse::<u64>().ok(),
        _ => None,
    }
    .ok_or_else(|| invalid("fixed without a non-negative integer \"size\""))?;
    out.push_str(&format!(",\"size\":{size}"));
    Ok(())
}
