//! The wire layout of a writer schema, compiled once: named references resolved into an
//! arena, logical types reduced to the bytes they occupy. Used to refuse schemas whose
//! arrays can hold zero-byte items (a few input bytes claiming billions of items) and to
//! walk a datum strictly — bounded nesting, every length checked against the input left,
//! end of input always an error — for skipping unknown fields and for validating a datum
//! before the apache-avro decoder builds a `Value` from it.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{InnerDecimalSchema, Name, UuidSchema};

use super::error::{DecodeErrorKind, SchemaError};
use super::wire::Cursor;

/// Index of a node in [`Shapes`].
pub(crate) type ShapeId = usize;

/// Deepest nesting of records/arrays/maps/unions a datum may use (recursive schemas
/// would otherwise let one byte per level overflow the stack).
pub(crate) const MAX_DEPTH: usize = 64;

/// One node of the wire layout.
#[derive(Debug, Clone)]
pub(crate) enum Shape {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Fixed(usize),
    Enum(usize),
    Array(ShapeId),
    Map(ShapeId),
    Union(Vec<ShapeId>),
    Record(Vec<ShapeId>),
}

/// The compiled layout of one schema; node 0 is the root.
#[derive(Debug, Clone)]
pub(crate) struct Shapes {
    nodes: Vec<Shape>,
    /// Where each array sits in the schema (field path), for error messages.
    array_paths: HashMap<ShapeId, String>,
}

/// Named type definitions of a schema by full name (records, enums, fixed).
pub(crate) fn named_definitions(schema: &Schema) -> HashMap<String, &Schema> {
    let mut defs = HashMap::new();
    collect(schema, None, &mut defs);
    defs
}

fn defined_name(schema: &Schema) -> Option<&Name> {
    match schema {
        Schema::Record(r) => Some(&r.name),
        Schema::Enum(e) => Some(&e.name),
        Schema::Fixed(f) | Schema::Duration(f) => Some(&f.name),
        Schema::Decimal(d) => match &d.inner {
            InnerDecimalSchema::Fixed(f) => Some(&f.name),
            InnerDecimalSchema::Bytes => None,
        },
        Schema::Uuid(UuidSchema::Fixed(f)) => Some(&f.name),
        _ => None,
    }
}

fn collect<'s>(schema: &'s Schema, ns: Option<&str>, defs: &mut HashMap<String, &'s Schema>) {
    let mut inner_ns = ns.map(str::to_owned);
    if let Some(name) = defined_name(schema) {
        let full = name.fully_qualified_name(ns);
        inner_ns = full.namespace().map(str::to_owned);
        defs.entry(full.fullname(None)).or_insert(schema);
    }
    let inner_ns = inner_ns.as_deref();
    match schema {
        Schema::Record(r) => r
            .fields
            .iter()
            .for_each(|f| collect(&f.schema, inner_ns, defs)),
        Schema::Array(a) => collect(&a.items, inner_ns, defs),
        Schema::Map(m) => collect(&m.types, inner_ns, defs),
        Schema::Union(u) => u.variants().iter().for_each(|v| collect(v, inner_ns, defs)),
        _ => {}
    }
}

/// Follows a `Ref` to its definition (other schemas are returned as they are).
pub(crate) fn resolve<'s>(
    schema: &'s Schema,
    ns: Option<&str>,
    defs: &HashMap<String, &'s Schema>,
) -> Result<&'s Schema, SchemaError> {
    match schema {
        Schema::Ref { name } => {
            let full = name.fully_qualified_name(ns).fullname(None);
            defs.get(&full)
                .copied()
                .ok_or_else(|| SchemaError::Invalid(format!("undefined name {full}")))
        }
        other => Ok(other),
    }
}

struct Builder<'s> {
    nodes: Vec<Shape>,
    named: HashMap<String, ShapeId>,
    defs: HashMap<String, &'s Schema>,
    array_paths: HashMap<ShapeId, String>,
}

impl Shapes {
    /// Compiles `root` and refuses arrays of zero-byte items.
    pub(crate) fn compile(root: &Schema) -> Result<Shapes, SchemaError> {
        let mut builder = Builder {
            nodes: Vec::new(),
            named: HashMap::new(),
            defs: named_definitions(root),
            array_paths: HashMap::new(),
        };
        builder.compile(root, None, "")?;
        let shapes = Shapes {
            nodes: builder.nodes,
            array_paths: builder.array_paths,
        };
        shapes.refuse_zero_byte_items()?;
        Ok(shapes)
    }

    /// The shape ids of the root record's fields, in writer order.
    pub(crate) fn root_fields(&self) -> &[ShapeId] {
        match self.nodes.first() {
            Some(Shape::Record(fields)) => fields,
            _ => &[],
        }
    }

    fn refuse_zero_byte_items(&self) -> Result<(), SchemaError> {
        let mut memo = vec![None; self.nodes.len()];
        for (id, node) in self.nodes.iter().enumerate() {
            let Shape::Array(items) = node else {
                continue;
            };
            if self.min_size(*items, &mut memo) == 0 {
                let path = match self.array_paths.get(&id).map(String::as_str) {
                    Some("") | None => "the top level",
                    Some(path) => path,
                };
                return Err(SchemaError::ZeroByteItems(format!(
                    "`{path}` (items: {})",
                    self.describe(*items)
                )));
            }
        }
        Ok(())
    }

    /// Fewest bytes a value of `id` can take; a node met again while being computed
    /// (recursion) counts as 1, which is conservative for this check.
    fn min_size(&self, id: ShapeId, memo: &mut Vec<Option<usize>>) -> usize {
        if let Some(known) = memo[id] {
            return known;
        }
        memo[id] = Some(1);
        let size = match &self.nodes[id] {
            Shape::Null => 0,
            Shape::Float => 4,
            Shape::Double => 8,
            Shape::Fixed(n) => *n,
            Shape::Record(fields) => fields
                .iter()
                .fold(0usize, |acc, f| acc.saturating_add(self.min_size(*f, memo))),
            _ => 1,
        };
        memo[id] = Some(size);
        size
    }

    fn describe(&self, id: ShapeId) -> String {
        match &self.nodes[id] {
            Shape::Null => "null".into(),
            Shape::Fixed(n) => format!("fixed of size {n}"),
            Shape::Record(f) if f.is_empty() => "an empty record".into(),
            Shape::Record(_) => "a record of zero-byte fields".into(),
            other => format!("{other:?}"),
        }
    }

    /// Walks one value of `id`, checking every byte, without building it.
    pub(crate) fn skip(
        &self,
        id: ShapeId,
        cur: &mut Cursor<'_>,
        depth: usize,
    ) -> Result<(), DecodeErrorKind> {
        if depth > MAX_DEPTH {
            return Err(DecodeErrorKind::InvalidDatum(format!(
                "nesting deeper than {MAX_DEPTH} levels"
            )));
        }
        match &self.nodes[id] {
            Shape::Null => {}
            Shape::Boolean => {
                cur.read_bool()?;
            }
            Shape::Int => {
                cur.read_int()?;
            }
            Shape::Long => {
                cur.read_long()?;
            }
            Shape::Float => {
                cur.read_fixed(4)?;
            }
            Shape::Double => {
                cur.read_fixed(8)?;
            }
            Shape::Bytes => {
                cur.read_bytes()?;
            }
            Shape::String => {
                cur.read_str()?;
            }
            Shape::Fixed(n) => {
                cur.read_fixed(*n)?;
            }
            Shape::Enum(n) => {
                cur.read_index(*n, "enum")?;
            }
            Shape::Union(branches) => {
                let i = cur.read_index(branches.len(), "union")?;
                self.skip(branches[i], cur, depth + 1)?;
            }
            Shape::Record(fields) => {
                for field in fields {
                    self.skip(*field, cur, depth + 1)?;
                }
            }
            Shape::Array(items) => self.skip_blocks(cur, |s, c| s.skip(*items, c, depth + 1))?,
            Shape::Map(values) => self.skip_blocks(cur, |s, c| {
                c.read_str()?;
                s.skip(*values, c, depth + 1)
            })?,
        }
        Ok(())
    }

    /// Array/map blocks: a count (negative: followed by a byte size), items, a 0 count.
    /// Every item takes at least one byte, so a count beyond the input left is truncation.
    fn skip_blocks(
        &self,
        cur: &mut Cursor<'_>,
        mut item: impl FnMut(&Self, &mut Cursor<'_>) -> Result<(), DecodeErrorKind>,
    ) -> Result<(), DecodeErrorKind> {
        loop {
            let count = cur.read_long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                let size = cur.read_long()?;
                if size < 0 {
                    return Err(DecodeErrorKind::InvalidDatum(format!(
                        "negative block size {size}"
                    )));
                }
            }
            let count = count.unsigned_abs();
            if count > cur.remaining() as u64 {
                return Err(DecodeErrorKind::Truncated(format!(
                    "block of {count} items but only {} byte(s) left",
                    cur.remaining()
                )));
            }
            for _ in 0..count {
                item(self, cur)?;
            }
        }
    }
}

impl<'s> Builder<'s> {
    fn push(&mut self, shape: Shape) -> ShapeId {
        self.nodes.push(shape);
        self.nodes.len() - 1
    }

    fn compile(
        &mut self,
        schema: &'s Schema,
        ns: Option<&str>,
        at: &str,
    ) -> Result<ShapeId, SchemaError> {
        let schema = resolve(schema, ns, &self.defs)?;
        let mut inner_ns = ns.map(str::to_owned);
        if let Some(name) = defined_name(schema) {
            let full = name.fully_qualified_name(ns);
            inner_ns = full.namespace().map(str::to_owned);
            let key = full.fullname(None);
            if let Some(&id) = self.named.get(&key) {
                return Ok(id);
            }
            // Reserve the slot before the children so recursive references find it.
            let id = self.push(Shape::Null);
            self.named.insert(key, id);
            let shape = self.compile_node(schema, inner_ns.as_deref(), at)?;
            self.nodes[id] = shape;
            return Ok(id);
        }
        let shape = self.compile_node(schema, inner_ns.as_deref(), at)?;
        let is_array = matches!(shape, Shape::Array(_));
        let id = self.push(shape);
        if is_array {
            self.array_paths.insert(id, at.to_owned());
        }
        Ok(id)
    }

    fn compile_node(
        &mut self,
        schema: &'s Schema,
        ns: Option<&str>,
        at: &str,
    ) -> Result<Shape, SchemaError> {
        Ok(match schema {
            Schema::Null => Shape::Null,
            Schema::Boolean => Shape::Boolean,
            Schema::Int | Schema::Date | Schema::TimeMillis => Shape::Int,
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => Shape::Long,
            Schema::Float => Shape::Float,
            Schema::Double => Shape::Double,
            Schema::Bytes | Schema::BigDecimal | Schema::Uuid(UuidSchema::Bytes) => Shape::Bytes,
            Schema::String | Schema::Uuid(UuidSchema::String) => Shape::String,
            Schema::Fixed(f) | Schema::Duration(f) | Schema::Uuid(UuidSchema::Fixed(f)) => {
                Shape::Fixed(f.size)
            }
            Schema::Decimal(d) => match &d.inner {
                InnerDecimalSchema::Bytes => Shape::Bytes,
                InnerDecimalSchema::Fixed(f) => Shape::Fixed(f.size),
            },
            Schema::Enum(e) => Shape::Enum(e.symbols.len()),
            Schema::Array(a) => Shape::Array(self.compile(&a.items, ns, &format!("{at}[]"))?),
            Schema::Map(m) => Shape::Map(self.compile(&m.types, ns, &format!("{at}{{}}"))?),
            Schema::Union(u) => {
                let mut branches = Vec::with_capacity(u.variants().len());
                for variant in u.variants() {
                    branches.push(self.compile(variant, ns, at)?);
                }
                Shape::Union(branches)
            }
            Schema::Record(r) => {
                let mut fields = Vec::with_capacity(r.fields.len());
                for field in &r.fields {
                    let path = if at.is_empty() {
                        field.name.clone()
                    } else {
                        format!("{at}.{}", field.name)
                    };
                    fields.push(self.compile(&field.schema, ns, &path)?);
                }
                Shape::Record(fields)
            }
            Schema::Ref { name } => {
                return Err(SchemaError::Invalid(format!(
                    "unresolved reference {name:?} at {at}"
                )));
            }
        })
    }
}
