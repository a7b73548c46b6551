#!/usr/bin/env python3
"""Golden Avro vectors for royalty-ingest, made by an independent implementation (fastavro).

The Rust side (src/avro/tests/golden.rs) checks its own Parsing Canonical Form,
CRC-64-AVRO fingerprint and datum decoder against what this script writes, so a bug
shared by our encoder and our decoder cannot hide.

Run from the repository root (the output is committed; re-run only when a schema in
schemas/ changes or a vector is added):

    pip install fastavro==1.13.1 && python3 scripts/golden/make_avro_vectors.py

Writes tests/golden/avro_vectors.json:
  {"generator": "...", "schemas": [{
      "file": "royalty_line.v1.avsc",
      "canonical_form": <fastavro.schema.to_parsing_canonical_form>,
      "fingerprint_u64": "0x..." (the CRC-64-AVRO value as a number),
      "fingerprint_le_hex": <fastavro.schema.fingerprint(.., "CRC-64-AVRO")>, the 8 bytes
                            little-endian as they follow C3 01 on the wire,
      "single_object_header_hex": "c301" + fingerprint_le_hex,
      "datums": [{"name": .., "hex": <schemaless_writer bytes>, "expected": <DecodedLine
                  as JSON, amount as a decimal string with the writer's 13 places>}]}],
   "extra_canonical": [{"schema": .., "canonical_form": .., "fingerprint_u64": ..}]}
  (extra_canonical: schemas beyond ours that exercise the rest of the canonical form)
"""

import io
import json
import os
from decimal import Decimal

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA_DIR = os.path.join(ROOT, "schemas")
OUT = os.path.join(ROOT, "tests", "golden", "avro_vectors.json")

# Optional canonical fields, in DecodedLine order; None when a version lacks them.
OPTIONAL = ["territory", "usage_type", "line_type", "label", "artist", "report_id"]

# The quantity's field name per version (all map onto stream_count).
QUANTITY = {1: "streams", 2: "play_count", 3: "stream_count"}

# Base lines: canonical values. Amounts carry exactly 13 decimal places (the schema scale).
LINES = [
    {
        "name": "per_stream_13_places",
        "isrc": "USRC17607839",
        "upc": "00602537518357",
        "dsp_name": "Spotify",
        "report_period": "2024-03-01",
        "transaction_id": "SPOT-2024-03-000001",
        "stream_count": 1523,
        "royalty_amount": "0.0031234567891",
        "currency": "EUR",
        "territory": "DE",
        "usage_type": "stream",
        "line_type": "sale",
        "label": "Sonic Fox Records",
        "artist": "Zoë & the Ümlauts",
        "report_id": "DSR-2024-03-A",
    },
    {
        "name": "negative_return",
        "isrc": "gb-aaa-24-00001",
        "upc": "5012345678900",
        "dsp_name": "Apple Music",
        "report_period": "2024-02-01",
        "transaction_id": "  AM-778899  ",
        "stream_count": 0,
        "royalty_amount": "-12.5000000000000",
        "currency": "USD",
        "territory": None,
        "usage_type": "download",
        "line_type": "return",
        "label": None,
        "artist": None,
        "report_id": None,
    },
    {
        "name": "large_amount_nulls_at_end",
        "isrc": "FRZ039800212",
        "upc": "3760248830017",
        "dsp_name": "YouTube",
        "report_period": "2023-12-01",
        "transaction_id": "YT-1",
        "stream_count": 9007199254740993,
        "royalty_amount": "999999999999999.9999999999999",
        "currency": "JPY",
        "territory": "JP",
        "usage_type": None,
        "line_type": "adjustment",
        "label": None,
        "artist": None,
        "report_id": None,
    },
    {
        "name": "zero_and_tiny_negative",
        "isrc": "QZES72000001",
        "upc": "0886447779774",
        "dsp_name": "Deezer",
        "report_period": "2024-01-01",
        "transaction_id": "DZ-0",
        "stream_count": 1,
        "royalty_amount": "-0.0000000000001",
        "currency": "GBP",
        "territory": "GB",
        "usage_type": "stream",
        "line_type": "adjustment",
        "label": "L",
        "artist": "A",
        "report_id": "R",
    },
]


# Schemas beyond ours, to test the canonicaliser on what the royalty schemas do not use:
# namespace inheritance, references, enums, fixed, maps, logical types on fixed, object
# forms of primitives, doc/alias/default/order stripping, explicit full names.
EXTRA_SCHEMAS = [
    "string",
    {"type": "long", "logicalType": "timestamp-millis"},
    {
        "type": "record",
        "name": "Outer",
        "namespace": "a.b",
        "doc": "nested types",
        "aliases": ["Old"],
        "fields": [
            {"name": "inner", "type": {"type": "record", "name": "Inner", "fields": [
                {"name": "x", "type": {"type": "int"}, "default": 0, "order": "descending"},
            ]}},
            {"name": "again", "type": "Inner"},
            {"name": "qualified", "type": "a.b.Inner"},
            {"name": "kind", "type": {"type": "enum", "name": "Kind", "namespace": "x.y",
                                      "symbols": ["SALE", "RETURN"], "default": "SALE"}},
            {"name": "kinds", "type": {"type": "array", "items": "x.y.Kind"}},
            {"name": "money", "type": {"type": "fixed", "name": "Money", "size": 16,
                                       "logicalType": "decimal", "precision": 38,
                                       "scale": 2}},
            {"name": "tags", "type": {"type": "map", "values": ["null", "string", "Money"]},
             "default": {}},
            {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "other", "type": {"type": "record", "name": "c.d.Other", "fields": [
                {"name": "back", "type": ["null", "a.b.Outer"], "default": None},
                {"name": "local", "type": {"type": "enum", "name": "Local",
                                           "symbols": ["A"]}},
            ]}},
            {"name": "local_again", "type": "c.d.Local"},
        ],
    },
]


def schema_fields(schema):
    return {f["name"] for f in schema["fields"]}


def record_for(version, fields, line):
    """The record fastavro writes: the line's values under this version's field names."""
    rec = {}
    for name in fields:
        if name == QUANTITY[version]:
            rec[name] = line["stream_count"]
        elif name == "royalty_amount":
            rec[name] = Decimal(line["royalty_amount"])
        else:
            rec[name] = line[name]
    return rec


def expected_for(fields, line):
    """The DecodedLine our decoder must produce: fields the writer lacks are unknown (null)."""
    exp = {k: line[k] for k in ("isrc", "upc", "dsp_name", "report_period",
                                "transaction_id", "stream_count", "royalty_amount", "currency")}
    for k in OPTIONAL:
        exp[k] = line[k] if k in fields else None
    return exp


def main():
    out = {
        "generator": "fastavro %s (scripts/golden/make_avro_vectors.py)" % fastavro.__version__,
        "schemas": [],
    }
    for file in sorted(os.listdir(SCHEMA_DIR)):
        if not file.endswith(".avsc"):
            continue
        with open(os.path.join(SCHEMA_DIR, file), encoding="utf-8") as fh:
            raw = json.load(fh)
        pcf = to_parsing_canonical_form(raw)
        fp_le_hex = fingerprint(pcf, "CRC-64-AVRO")
        entry = {
            "file": file,
            "full_name": "%s.%s" % (raw.get("namespace", ""), raw["name"]),
            "canonical_form": pcf,
            "fingerprint_u64": "0x%016x" % int.from_bytes(bytes.fromhex(fp_le_hex), "little"),
            "fingerprint_le_hex": fp_le_hex,
            "single_object_header_hex": "c301" + fp_le_hex,
            "datums": [],
        }
        if entry["full_name"] == "io.royaltyingest.RoyaltyLine":
            version = int(file.split(".v")[1].split(".")[0])
            parsed = parse_schema(raw)
            fields = schema_fields(raw)
            for line in LINES:
                buf = io.BytesIO()
                fastavro.schemaless_writer(buf, parsed, record_for(version, fields, line))
                entry["datums"].append({
                    "name": line["name"],
                    "hex": buf.getvalue().hex(),
                    "expected": expected_for(fields, line),
                })
        out["schemas"].append(entry)
    out["extra_canonical"] = []
    for raw in EXTRA_SCHEMAS:
        pcf = to_parsing_canonical_form(raw)
        fp_le_hex = fingerprint(pcf, "CRC-64-AVRO")
        out["extra_canonical"].append({
            "schema": raw,
            "canonical_form": pcf,
            "fingerprint_u64": "0x%016x" % int.from_bytes(bytes.fromhex(fp_le_hex), "little"),
        })
    with open(OUT, "w", encoding="utf-8") as fh:
        json.dump(out, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    print("wrote %s (%d schemas)" % (os.path.relpath(OUT, ROOT), len(out["schemas"])))


if __name__ == "__main__":
    main()
