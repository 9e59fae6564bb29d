#!/usr/bin/env python3
"""The grammar benchmark's cases: real-world-shaped JSON Schemas (API payloads, tool arguments,
records), each with a valid document, tokenized with the benchmark vocabulary. Every engine
replays the same token ids. Documents are written with ", " and ": " separators and every
property present in schema order, a layout all the engines accept.

    python3 tests/bench/grammar_cases.py TOKENIZER_DIR OUT.jsonl
"""
import json
import sys

import jsonschema
from tokenizers import Tokenizer

STR = {"type": "string"}


def s(n):
    return {"type": "string", "maxLength": n}


def obj(props):
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


CASES = [
    ("user_profile", obj({
        "id": {"type": "integer", "minimum": 1},
        "username": {"type": "string", "pattern": "^[a-z0-9_]{3,32}$"},
        "email": {"type": "string", "format": "email"},
        "full_name": s(100),
        "age": {"type": "integer", "minimum": 13, "maximum": 120},
        "roles": {"type": "array", "items": {"enum": ["admin", "editor", "viewer"]}, "maxItems": 3},
        "created_at": {"type": "string", "format": "date-time"},
        "settings": obj({"theme": {"enum": ["light", "dark", "system"]}, "notifications": {"type": "boolean"},
                         "language": s(10)})}),
     {"id": 48213, "username": "maria_lopez", "email": "maria.lopez@example.com", "full_name": "María López García",
      "age": 34, "roles": ["editor", "viewer"], "created_at": "2024-03-15T09:42:17Z",
      "settings": {"theme": "dark", "notifications": True, "language": "es-ES"}}),
    ("product", obj({
        "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
        "name": s(100), "description": STR,
        "price": {"type": "number", "exclusiveMinimum": 0, "maximum": 100000},
        "currency": {"enum": ["USD", "EUR", "GBP", "JPY"]},
        "in_stock": {"type": "boolean"},
        "tags": {"type": "array", "items": s(30), "maxItems": 10},
        "dimensions": obj({k: {"type": "number", "minimum": 0} for k in ("width", "height", "depth")}),
        "variants": {"type": "array", "maxItems": 5, "items": obj({
            "color": s(20), "size": {"enum": ["S", "M", "L", "XL"]},
            "stock": {"type": "integer", "minimum": 0}})}}),
     {"sku": "TSH-0042", "name": "Organic cotton T-shirt",
      "description": "A soft, breathable T-shirt made from 100% organic cotton. Pre-shrunk and machine washable.",
      "price": 24.99, "currency": "EUR", "in_stock": True, "tags": ["clothing", "organic", "summer"],
      "dimensions": {"width": 52.5, "height": 71, "depth": 0.4},
      "variants": [{"color": "navy", "size": "M", "stock": 120}, {"color": "white", "size": "L", "stock": 0}]}),
    ("github_issue", obj({
        "number": {"type": "integer", "minimum": 1}, "title": s(256),
        "state": {"enum": ["open", "closed"]},
        "labels": {"type": "array", "items": obj({"name": s(50), "color": {"type": "string", "pattern": "^[0-9a-f]{6}$"}})},
        "assignee": {"anyOf": [{"type": "null"}, obj({"login": s(39), "id": {"type": "integer"}})]},
        "body": STR, "comments": {"type": "integer", "minimum": 0}}),
     {"number": 1834, "title": "Streaming responses stall when the client reads slowly",
      "state": "open", "labels": [{"name": "bug", "color": "d73a4a"}, {"name": "server", "color": "0e8a16"}],
      "assignee": {"login": "octocat", "id": 583231},
      "body": "Steps to reproduce:\n1. Start a stream with max_tokens 2000.\n2. Read one chunk per second.\n\nExpected: the stream continues. Actual: it stops after about 60 s.",
      "comments": 7}),
    ("tool_arguments", obj({
        "location": s(80), "unit": {"enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 14}, "include_hourly": {"type": "boolean"}}),
     {"location": "San Francisco, CA", "unit": "fahrenheit", "days": 5, "include_hourly": False}),
    ("recipe", obj({
        "title": s(120), "servings": {"type": "integer", "minimum": 1, "maximum": 20},
        "prep_minutes": {"type": "integer", "minimum": 0},
        "ingredients": {"type": "array", "maxItems": 30, "items": obj({
            "item": s(60), "quantity": {"type": "number", "exclusiveMinimum": 0},
            "unit": {"enum": ["g", "kg", "ml", "l", "cup", "tbsp", "tsp", "piece"]}})},
        "steps": {"type": "array", "items": STR, "maxItems": 20}}),
     {"title": "Lemon garlic roast chicken", "servings": 4, "prep_minutes": 20,
      "ingredients": [{"item": "whole chicken", "quantity": 1.6, "unit": "kg"},
                      {"item": "lemon", "quantity": 2, "unit": "piece"},
                      {"item": "garlic cloves", "quantity": 6, "unit": "piece"},
                      {"item": "olive oil", "quantity": 3, "unit": "tbsp"}],
      "steps": ["Heat the oven to 220 °C.", "Rub the chicken with oil, salt and pepper.",
                "Stuff it with the lemons and garlic.", "Roast for 75 minutes, then rest for 10."]}),
    ("log_event", obj({
        "timestamp": {"type": "string", "format": "date-time"},
        "level": {"enum": ["debug", "info", "warning", "error", "critical"]},
        "service": s(64), "message": STR,
        "trace_id": {"type": "string", "format": "uuid"},
        "attributes": {"type": "object", "additionalProperties": STR}}),
     {"timestamp": "2025-01-07T23:59:58.120Z", "level": "error", "service": "payments-api",
      "message": "charge declined: card expired (customer 88412)",
      "trace_id": "3f2b8c1e-9d4a-4e6b-a1c2-7e5f0d9b3a61",
      "attributes": {"region": "eu-west-1", "http.status": "402", "retry": "false"}}),
    ("invoice", obj({
        "invoice_id": {"type": "string", "pattern": "^INV-[0-9]{6}$"},
        "date": {"type": "string", "format": "date"}, "due_date": {"type": "string", "format": "date"},
        "customer": obj({"name": s(100), "address": obj({
            "street": s(100), "city": s(60),
            "postal_code": {"type": "string", "pattern": "^[0-9A-Z -]{3,10}$"},
            "country": {"type": "string", "pattern": "^[A-Z]{2}$"}})}),
        "lines": {"type": "array", "minItems": 1, "maxItems": 50, "items": obj({
            "description": s(200), "quantity": {"type": "integer", "minimum": 1},
            "unit_price": {"type": "number", "minimum": 0}})},
        "total": {"type": "number", "minimum": 0}, "paid": {"type": "boolean"}}),
     {"invoice_id": "INV-004217", "date": "2024-11-30", "due_date": "2024-12-30",
      "customer": {"name": "Nordic Design AB", "address": {"street": "Sveavägen 44", "city": "Stockholm",
                                                          "postal_code": "111 34", "country": "SE"}},
      "lines": [{"description": "Consulting, November", "quantity": 32, "unit_price": 1150},
                {"description": "Travel expenses", "quantity": 1, "unit_price": 2380.5}],
      "total": 39180.5, "paid": False}),
    ("calendar_event", obj({
        "title": s(200), "start": {"type": "string", "format": "date-time"},
        "end": {"type": "string", "format": "date-time"},
        "attendees": {"type": "array", "items": {"type": "string", "format": "email"}, "maxItems": 50},
        "location": {"anyOf": [s(200), {"type": "null"}]},
        "recurrence": {"anyOf": [{"type": "null"}, obj({
            "freq": {"enum": ["daily", "weekly", "monthly"]},
            "interval": {"type": "integer", "minimum": 1, "maximum": 99},
            "count": {"type": "integer", "minimum": 1}})]}}),
     {"title": "Weekly planning", "start": "2025-02-03T09:00:00+01:00", "end": "2025-02-03T09:30:00+01:00",
      "attendees": ["ana@example.org", "li.wei@example.org", "sam@example.org"], "location": None,
      "recurrence": {"freq": "weekly", "interval": 1, "count": 12}}),
    ("search_query", obj({
        "query": s(200),
        "filters": obj({"category": {"enum": ["books", "electronics", "home", "garden", "toys", "sports",
                                              "clothing", "beauty", "grocery", "automotive"]},
                        "min_price": {"type": "number", "minimum": 0}, "max_price": {"type": "number", "minimum": 0},
                        "sort": {"enum": ["relevance", "price_asc", "price_desc", "newest", "rating"]}}),
        "page": {"type": "integer", "minimum": 1}, "page_size": {"enum": [10, 20, 50]}}),
     {"query": "noise cancelling headphones under 200", "filters": {"category": "electronics",
                                                                    "min_price": 50, "max_price": 200,
                                                                    "sort": "rating"},
      "page": 1, "page_size": 20}),
    ("free_object", {"type": "object"},
     {"answer": "Paris", "confidence": 0.93, "sources": [{"title": "Wikipedia", "url": "https://en.wikipedia.org/wiki/Paris"}],
      "notes": None}),
]


def main(tok_dir, out):
    tok = Tokenizer.from_file(f"{tok_dir}/tokenizer.json")
    fmt = jsonschema.Draft202012Validator.FORMAT_CHECKER
    with open(out, "w") as f:
        for name, schema, doc in CASES:
            jsonschema.validate(doc, schema, format_checker=fmt)
            text = json.dumps(doc, ensure_ascii=False)
            ids = tok.encode(text, add_special_tokens=False).ids
            f.write(json.dumps({"name": name, "schema": schema, "doc": text, "ids": ids}) + "\n")
    print(f"{out}: {len(CASES)} cases")


if __name__ == "__main__":
    main(*sys.argv[1:])
