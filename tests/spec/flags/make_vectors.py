#!/usr/bin/env python3
"""Writes the flag test vectors (cases.json) and their index (index.json).

Expectations are written by hand from the rules in core/src/flags (README: "Flags"),
except bucket numbers, which this script computes with its own MurmurHash3 so that the
Rust engine is checked against an independent implementation of the bucketing contract:
bucket = murmur3_x86_32("{flag_key}/{salt}/{stickiness_value}", seed 0) % 100000.
Run: python3 tests/spec/flags/make_vectors.py
"""
import json
import os

def murmur3_32(data: bytes, seed: int = 0) -> int:
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    rotl = lambda x, r: ((x << r) | (x >> (32 - r))) & mask
    h = seed
    n = len(data) // 4 * 4
    for i in range(0, n, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = rotl((k * c1) & mask, 15) * c2 & mask
        h = (rotl(h ^ k, 13) * 5 + 0xE6546B64) & mask
    tail = data[n:]
    if tail:
        k = int.from_bytes(tail, "little")
        h ^= rotl((k * c1) & mask, 15) * c2 & mask
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    return h ^ (h >> 16)

assert murmur3_32(b"hello") == 0x248BFA47
assert murmur3_32(b"The quick brown fox jumps over the lazy dog") == 0x2E4FF723

def bucket(flag, salt, value):
    return murmur3_32(f"{flag}/{salt}/{value}".encode()) % 100000

B = lambda v, k: {"key": k, "value": v}
BOOL = [B(True, "on"), B(False, "off")]

OPS = [
    ("eq", "x", None, "x", "y"),
    ("neq", "x", None, "y", "x"),
    ("in", None, ["a", "b", 3], 3, "c"),
    ("not_in", None, ["a", "b"], "c", "a"),
    ("contains", "ust", None, "rust-101", "go-101"),
    ("starts_with", "rust", None, "rust-101", "go-rust"),
    ("ends_with", "101", None, "rust-101", "rust-201"),
    ("lt", 10, None, 9.5, 10),
    ("lte", 10, None, 10, 10.5),
    ("gt", 10, None, 11, 10),
    ("gte", 10, None, 10, 9),
    ("semver_eq", "2.1.0", None, "2.1.0+build.7", "2.1.1"),
    ("semver_lt", "2.1.0", None, "2.1.0-rc.1", "2.1.0"),
    ("semver_lte", "2.1.0", None, "2.1.0", "2.10.0"),
    ("semver_gt", "2.1.0", None, "2.10.0", "2.0.9"),
    ("semver_gte", "2.1.0", None, "v2.1.0", "2.0.99"),
    ("before", "2026-01-01T00:00:00Z", None, "2025-12-31T23:59:59Z", 1767225600000),
    ("after", "2026-01-01T00:00:00Z", None, 1767225600001, "2025-06-01T00:00:00+02:00"),
]

def cond(attr, op, value, values):
    c = {"attribute": attr, "op": op}
    if values is not None:
        c["values"] = values
    else:
        c["value"] = value
    return c

flags = [
    {"key": "kill", "enabled": False, "variants": BOOL, "default_variant": "on", "off_variant": "off"},
    {"key": "static-banner", "description": "no rules", "variants": [B("Welcome back!", "v1"), B("Hi", "v2")], "default_variant": "v1"},
    {"key": "ops", "variants": [B(op, op) for op, *_ in OPS] + [B("none", "none")], "default_variant": "none",
     "rules": [{"id": f"r-{op}", "conditions": [cond(f"a_{op}", op, v, vs)], "serve": {"variant": op}} for op, v, vs, _, _ in OPS]},
    {"key": "teacher-beta", "variants": BOOL, "default_variant": "off",
     "rules": [{"id": "beta-teachers", "segments": ["beta-teachers"], "serve": {"variant": "on"}},
               {"id": "eu-students", "segments": ["eu"], "conditions": [{"attribute": "role", "op": "eq", "value": "student"}], "serve": {"variant": "on"}}]},
    {"key": "canary-30", "variants": BOOL, "default_variant": "off",
     "rules": [{"id": "canary", "serve": {"variant": "on", "rollout_percent": 30}}]},
    {"key": "course-split", "salt": "2026-autumn", "variants": [B("A", "a"), B("B", "b"), B("C", "c")], "default_variant": "a",
     "rules": [{"id": "by-course", "serve": {"split": [{"variant": "a", "weight": 50}, {"variant": "b", "weight": 30}, {"variant": "c", "weight": 20}], "stickiness": "course_id"}}]},
    {"key": "prereq-fails", "variants": BOOL, "default_variant": "on", "off_variant": "off",
     "prerequisites": [{"flag": "kill", "variants": ["on"]}]},
    {"key": "prereq-holds", "variants": BOOL, "default_variant": "on", "off_variant": "off",
     "prerequisites": [{"flag": "static-banner", "variants": ["v1"]}]},
    {"key": "partner-widget", "variants": BOOL, "default_variant": "on", "off_variant": "off", "requires_probe": "partner-api"},
    {"key": "autumn-sale", "variants": BOOL, "default_variant": "on", "off_variant": "off",
     "schedule": {"from": "2026-01-01T00:00:00Z", "until": "2026-02-01T00:00:00Z"}},
    {"key": "broken-op", "variants": BOOL, "default_variant": "off",
     "rules": [{"conditions": [{"attribute": "x", "op": "roughly", "value": 1}], "serve": {"variant": "on"}}]},
    {"key": "broken-split", "variants": BOOL, "default_variant": "on",
     "rules": [{"serve": {"split": [{"variant": "on", "weight": 60}, {"variant": "off", "weight": 30}]}}]},
    {"key": "cycle-a", "variants": BOOL, "default_variant": "on", "prerequisites": [{"flag": "cycle-b", "variants": ["on"]}]},
    {"key": "cycle-b", "variants": BOOL, "default_variant": "on", "prerequisites": [{"flag": "cycle-a", "variants": ["on"]}]},
    {"key": "typed", "variants": [B({"color": "blue", "size": 3}, "json"), B(42, "num")], "default_variant": "json",
     "rules": [{"id": "numbers", "conditions": [{"attribute": "wants", "op": "eq", "value": "number"}], "serve": {"variant": "num"}}]},
    {"key": "sticky-missing", "variants": BOOL, "default_variant": "off",
     "rules": [{"id": "by-school", "serve": {"variant": "on", "rollout_percent": 100, "stickiness": "school_id"}}]},
    {"key": "first-match", "variants": [B("first", "first"), B("second", "second"), B("none", "none")], "default_variant": "none",
     "rules": [{"id": "one", "conditions": [{"attribute": "plan", "op": "in", "values": ["pro", "team"]}], "serve": {"variant": "first"}},
               {"id": "two", "conditions": [{"attribute": "plan", "op": "eq", "value": "pro"}], "serve": {"variant": "second"}}]},
    {"key": "multi-cond", "variants": BOOL, "default_variant": "off",
     "rules": [{"id": "all-of", "conditions": [{"attribute": "role", "op": "eq", "value": "teacher"}, {"attribute": "courses", "op": "gte", "value": 3}], "serve": {"variant": "on"}}]},
]
segments = [
    {"key": "beta-teachers", "description": "teachers in the beta", "conditions": [{"attribute": "role", "op": "eq", "value": "teacher"}, {"attribute": "beta", "op": "eq", "value": True}]},
    {"key": "eu", "conditions": [{"attribute": "country", "op": "in", "values": ["DE", "FR", "NO"]}]},
]
ruleset = {"version": "vectors-1", "flags": flags, "segments": segments}
NOW = "2026-11-22T12:00:00Z"
cases = []

def case(name, flag, context, expect, now=None, probes=None):
    c = {"name": name, "flag": flag, "context": context, "expect": expect}
    if now:
        c["now"] = now
    if probes:
        c["probes"] = probes
    cases.append(c)

def ex(value, variant, reason, **more):
    e = {"value": value, "variant": variant, "reason": reason}
    e.update(more)
    return e

case("kill switch serves the off variant", "kill", {"user_id": "u1"}, ex(False, "off", "DISABLED"))
case("no rules is STATIC", "static-banner", {}, ex("Welcome back!", "v1", "STATIC"))
case("unknown flag", "no-such-flag", {}, {"value": None, "variant": None, "reason": "ERROR", "error_code": "FLAG_NOT_FOUND"})
for op, v, vs, yes, no in OPS:
    case(f"{op} matches", "ops", {f"a_{op}": yes}, ex(op, op, "TARGETING_MATCH", rule=f"r-{op}"))
    case(f"{op} does not match", "ops", {f"a_{op}": no}, ex("none", "none", "DEFAULT"))
    case(f"{op} with the attribute missing", "ops", {"other": yes}, ex("none", "none", "DEFAULT"))
case("null attribute matches nothing", "ops", {"a_neq": None}, ex("none", "none", "DEFAULT"))
case("eq compares numbers numerically", "ops", {"a_in": 3.0}, ex("in", "in", "TARGETING_MATCH", rule="r-in"))
case("string-typed number is not a number", "ops", {"a_gt": "11"}, ex("none", "none", "DEFAULT"))
case("invalid semver attribute does not match", "ops", {"a_semver_gt": "latest"}, ex("none", "none", "DEFAULT"))
case("segment member", "teacher-beta", {"role": "teacher", "beta": True}, ex(True, "on", "TARGETING_MATCH", rule="beta-teachers"))
case("not in the segment", "teacher-beta", {"role": "teacher", "beta": False}, ex(False, "off", "DEFAULT"))
case("segment plus condition", "teacher-beta", {"role": "student", "country": "NO"}, ex(True, "on", "TARGETING_MATCH", rule="eu-students"))
case("segment without the condition", "teacher-beta", {"role": "teacher", "country": "NO"}, ex(False, "off", "DEFAULT"))
case("first matching rule wins", "first-match", {"plan": "pro"}, ex("first", "first", "TARGETING_MATCH", rule="one"))
case("no rule matches", "first-match", {"plan": "free"}, ex("none", "none", "DEFAULT"))
case("all conditions must hold", "multi-cond", {"role": "teacher", "courses": 2}, ex(False, "off", "DEFAULT"))
case("all conditions hold", "multi-cond", {"role": "teacher", "courses": 3}, ex(True, "on", "TARGETING_MATCH", rule="all-of"))

for i in range(24):
    uid = f"student-{i}"
    b = bucket("canary-30", "", uid)
    if b < 30000:
        case(f"canary 30% user {uid}", "canary-30", {"user_id": uid}, ex(True, "on", "SPLIT", rule="canary", bucket=b))
    else:
        case(f"canary 30% user {uid}", "canary-30", {"user_id": uid}, ex(False, "off", "DEFAULT"))
b = bucket("canary-30", "", "anon-77")
case("canary falls back to anonymous_id", "canary-30", {"anonymous_id": "anon-77"},
     ex(True, "on", "SPLIT", rule="canary", bucket=b) if b < 30000 else ex(False, "off", "DEFAULT"))
b = bucket("canary-30", "", "student-3")
case("user_id beats anonymous_id", "canary-30", {"user_id": "student-3", "anonymous_id": "anon-77"},
     ex(True, "on", "SPLIT", rule="canary", bucket=b) if b < 30000 else ex(False, "off", "DEFAULT"))
case("no stickiness value: the rollout rule does not match", "canary-30", {"role": "teacher"}, ex(False, "off", "DEFAULT"))
for i in range(16):
    course = f"course-{i}"
    b = bucket("course-split", "2026-autumn", course)
    variant = "a" if b < 50000 else "b" if b < 80000 else "c"
    case(f"split by course {course}", "course-split", {"course_id": course, "user_id": "same-user"},
         ex(variant.upper(), variant, "SPLIT", rule="by-course", bucket=b))
b = bucket("course-split", "2026-autumn", "7")
case("numeric stickiness values are stringified", "course-split", {"course_id": 7},
     ex(("a" if b < 50000 else "b" if b < 80000 else "c").upper(), "a" if b < 50000 else "b" if b < 80000 else "c", "SPLIT", rule="by-course", bucket=b))
case("stickiness attribute missing", "sticky-missing", {"user_id": "u1"}, ex(False, "off", "DEFAULT"))
b = bucket("sticky-missing", "", "school-9")
case("100% rollout by school", "sticky-missing", {"school_id": "school-9"}, ex(True, "on", "SPLIT", rule="by-school", bucket=b))
case("prerequisite not met", "prereq-fails", {}, ex(False, "off", "PREREQUISITE_FAILED"))
case("prerequisite met", "prereq-holds", {}, ex(True, "on", "STATIC"))
case("probe down disables", "partner-widget", {}, ex(False, "off", "DISABLED", probe="partner-api"), probes={"partner-api": "down"})
case("probe up", "partner-widget", {}, ex(True, "on", "STATIC"), probes={"partner-api": "up"})
case("probe unknown does not disable", "partner-widget", {}, ex(True, "on", "STATIC"), probes={"partner-api": "unknown"})
case("probe not reported does not disable", "partner-widget", {}, ex(True, "on", "STATIC"))
case("before the schedule", "autumn-sale", {}, ex(False, "off", "DISABLED"), now="2025-12-31T23:59:59Z")
case("at the schedule start", "autumn-sale", {}, ex(True, "on", "STATIC"), now="2026-01-01T00:00:00Z")
case("inside the schedule", "autumn-sale", {}, ex(True, "on", "STATIC"), now="2026-01-15T08:00:00+01:00")
case("at the schedule end", "autumn-sale", {}, ex(False, "off", "DISABLED"), now="2026-02-01T00:00:00Z")
case("a broken operator serves the default", "broken-op", {"x": 1}, ex(False, "off", "ERROR", error_code="PARSE_ERROR"))
case("weights not summing to 100", "broken-split", {"user_id": "u"}, ex(True, "on", "ERROR", error_code="PARSE_ERROR"))
case("prerequisite cycle a", "cycle-a", {}, ex(True, "on", "ERROR", error_code="PARSE_ERROR"))
case("prerequisite cycle b", "cycle-b", {}, ex(True, "on", "ERROR", error_code="PARSE_ERROR"))
case("JSON variant", "typed", {}, ex({"color": "blue", "size": 3}, "json", "DEFAULT"))
case("number variant", "typed", {"wants": "number"}, ex(42, "num", "TARGETING_MATCH", rule="numbers"))
case("broken flags do not break others", "static-banner", {"x": 1}, ex("Welcome back!", "v1", "STATIC"))

doc = {
    "description": "Flag decisions. Each case evaluates `flag` for `context` at `now` (case or file) "
                   "with `probes` (default none) against `ruleset`; `expect` lists value, variant, reason "
                   "and, when present, rule, bucket, error_code and probe. Absent keys must be absent (null).",
    "now": NOW,
    "ruleset": ruleset,
    "expected_warnings": ["flags.broken-op.rules[0].conditions[0].op", "flags.broken-split.rules[0].serve.split",
                          "flags.cycle-a.prerequisites", "flags.cycle-b.prerequisites"],
    "cases": cases,
}
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "cases.json"), "w") as f:
    json.dump(doc, f, indent=1, ensure_ascii=False)
    f.write("\n")
with open(os.path.join(here, "index.json"), "w") as f:
    json.dump({"description": "Flag vector files; every binding runs each.", "files": ["cases.json"]}, f, indent=1)
    f.write("\n")
print(f"{len(cases)} cases")
