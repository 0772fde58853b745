"""`bartizan attacks`: keys, signed entries and verification of the known-attack similarity index.

    bartizan attacks keygen --out DIR                      new Ed25519 key pair (private file mode 0600)
    bartizan attacks add --key KEY --index DIR --category C (--text T | --text-file F)
    bartizan attacks verify [--index DIR ...] [--pubkey P ...]   signatures of the seed and of DIR/entries.jsonl
    bartizan attacks list [--index DIR ...] [--pubkey P ...] [--summary]
    bartizan attacks build-seed --key KEY --datasets DIR --out DIR   (development: rebuild the packaged seed)

An entry added with a key is trusted by the `known_attacks` detector only when that key's public half is
pinned in the policy (`detectors.known_attacks.config.public_keys`). Output never echoes attack texts or keys.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bartizan.cli.exitcodes import INPUT_ERROR, OK, USAGE_ERROR


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("attacks", help="manage the signed known-attack similarity index")
    s = p.add_subparsers(dest="attacks_command", required=True, metavar="ACTION")

    k = s.add_parser("keygen", help="create an Ed25519 key pair for signing entries")
    k.add_argument("--out", required=True, type=Path, help="folder for attacks_ed25519.key (0600) and .pub")
    k.set_defaults(run=_keygen)

    a = s.add_parser("add", help="append a signed entry to an index folder")
    a.add_argument("--key", required=True, type=Path, help="private key file (from keygen)")
    a.add_argument("--index", required=True, type=Path, help="index folder (entries.jsonl is created if missing)")
    a.add_argument("--category", required=True, help="injection, jailbreak, prompt_extraction, harmful or other")
    src = a.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="the attack text")
    src.add_argument("--text-file", type=Path, help="file holding the attack text (UTF-8)")
    a.add_argument("--source", default="operator", help="where the attack was seen (default: operator)")
    a.add_argument("--store-text", action="store_true", help="keep the raw text in the entry (default: hash only)")
    a.add_argument("--embedder", default=None, help="static model folder (default: the bundled one)")
    a.set_defaults(run=_add)

    for name, fn, helptext in (("verify", _verify, "check every entry's signature"), ("list", _list, "list entries")):
        v = s.add_parser(name, help=helptext)
        v.add_argument("--index", type=Path, action="append", default=[], help="index folder (repeatable)")
        v.add_argument("--pubkey", action="append", default=[], help="extra trusted public key (repeatable)")
        v.add_argument("--no-seed", action="store_true", help="leave out the packaged seed")
        v.add_argument("--json", action="store_true", help="machine-readable output")
        if name == "list":
            v.add_argument("--summary", action="store_true", help="counts by category and source only")
        v.set_defaults(run=fn)

    b = s.add_parser("build-seed", help="(development) rebuild the packaged seed from ../shared/datasets")
    b.add_argument("--key", required=True, type=Path)
    b.add_argument("--datasets", required=True, type=Path)
    b.add_argument("--out", required=True, type=Path)
    b.add_argument("--embedder", default=None)
    b.add_argument("--target-fpr", type=float, default=0.001)
    b.set_defaults(run=_build_seed)


def _err(msg: str) -> None:
    print(f"bartizan attacks: {msg}", file=sys.stderr)


def _keygen(args: argparse.Namespace) -> int:
    from bartizan.attacks.signing import SigningError, generate_keypair

    try:
        priv, pub, kid = generate_keypair(args.out)
    except (SigningError, OSError) as exc:
        _err(str(exc))
        return INPUT_ERROR
    print(f"private key: {priv} (mode 0600; keep it off shared disks, never commit it)")
    print(f"public key:  {pub} (key id {kid}); pin it in the policy to trust entries signed with it")
    return OK


def _add(args: argparse.Namespace) -> int:
    from bartizan.attacks.index import CATEGORIES, ENTRIES_FILE, append_record, make_record, read_lines
    from bartizan.attacks.seed import embedder_fingerprint
    from bartizan.attacks.signing import SigningError, key_id, load_private_key, sign_record
    from bartizan.text.views import TextViews

    if args.category not in CATEGORIES:
        _err(f"unknown category {args.category!r}; expected one of {', '.join(CATEGORIES)}")
        return USAGE_ERROR
    try:
        key = load_private_key(args.key)
    except SigningError as exc:
        _err(str(exc))
        return INPUT_ERROR
    if args.text_file is not None:
        try:
            text = args.text_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            _err(f"cannot read {args.text_file}: {type(exc).__name__}")
            return INPUT_ERROR
    else:
        text = args.text
    if not text.strip():
        _err("the attack text is empty")
        return INPUT_ERROR
    from bartizan.models.embedder import load_embedder

    embedder = load_embedder(args.embedder)
    vec = embedder.encode([TextViews(text).normalized.text])[0]
    try:
        record = make_record(
            text, args.category, args.source, vec, embedder_fingerprint(embedder), store_text=args.store_text
        )
    except ValueError as exc:
        _err(str(exc))
        return INPUT_ERROR
    path = args.index / ENTRIES_FILE
    if path.is_file() and any(r is not None and r.get("id") == record["id"] for _, r, _ in read_lines(path)):
        print(f"{record['id']} is already in {path}; nothing added")
        return OK
    append_record(path, sign_record(record, key))
    print(f"added {record['id']} ({args.category}) to {path}, signed by key {key_id(key.public_key())}")
    return OK


def _files(args: argparse.Namespace) -> list[Path]:
    from bartizan.attacks.index import ENTRIES_FILE
    from bartizan.attacks.seed import SEED_FILE, package_dir

    files = [] if args.no_seed else [package_dir() / SEED_FILE]
    return files + [d / ENTRIES_FILE for d in args.index]


def _scan_entries(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[str]]:
    """Every line of every file with its verdict; plus file-level problems (missing file, bad seed)."""
    from bartizan.attacks.index import check_record, read_lines
    from bartizan.attacks.seed import SeedIntegrityError, packaged_keyring, read_calibration
    from bartizan.attacks.signing import SigningError

    problems: list[str] = []
    try:
        ring = packaged_keyring(args.pubkey)
    except SigningError as exc:
        raise ValueError(str(exc)) from None
    model = None
    if not args.no_seed:
        try:
            _, cal = read_calibration(ring)
            model = cal.get("model")
        except SeedIntegrityError as exc:
            problems.append(f"packaged seed: {exc}")
    rows: list[dict[str, Any]] = []
    for f in _files(args):
        if not f.is_file():
            problems.append(f"{f}: no such file")
            continue
        for line, rec, err in read_lines(f):
            why = err or check_record(rec or {}, ring, model, None)
            r = rec or {}
            rows.append(
                {
                    "file": str(f),
                    "line": line,
                    "id": r.get("id") if isinstance(r.get("id"), str) else None,
                    "category": r.get("category"),
                    "source": r.get("source"),
                    "added_at": r.get("added_at"),
                    "key_id": r.get("key_id"),
                    "ok": why is None,
                    "reason": why,
                }
            )
    return rows, problems


def _verify(args: argparse.Namespace) -> int:
    try:
        rows, problems = _scan_entries(args)
    except ValueError as exc:
        _err(str(exc))
        return INPUT_ERROR
    bad = [r for r in rows if not r["ok"]]
    if args.json:
        out = {"entries": len(rows), "accepted": len(rows) - len(bad), "rejected": bad, "problems": problems}
        print(json.dumps(out, indent=2))
    else:
        per_file = Counter((r["file"], r["ok"]) for r in rows)
        for f in dict.fromkeys(r["file"] for r in rows):
            print(f"{f}: {per_file[(f, True)]} verified, {per_file[(f, False)]} rejected")
        for r in bad:
            print(f"  REJECTED {Path(r['file']).name}:{r['line']} {r['id'] or '-'}: {r['reason']}")
        for p in problems:
            print(f"  PROBLEM {p}")
    return INPUT_ERROR if bad or problems else OK


def _list(args: argparse.Namespace) -> int:
    try:
        rows, problems = _scan_entries(args)
    except ValueError as exc:
        _err(str(exc))
        return INPUT_ERROR
    if args.summary:
        counts = Counter((r["category"], r["source"], r["ok"]) for r in rows)
        summary = [
            {"category": c, "source": s, "verified": ok, "entries": n}
            for (c, s, ok), n in sorted(counts.items(), key=str)
        ]
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            for item in summary:
                flag = "" if item["verified"] else "  (REJECTED)"
                print(f"{item['entries']:6d}  {item['category']:<18} {item['source']}{flag}")
    elif args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            status = "ok" if r["ok"] else f"REJECTED: {r['reason']}"
            rid, cat, src = r["id"] or "-", r["category"] or "-", r["source"] or "-"
            print(f"{rid:<20} {cat:<18} {src:<26} {r['added_at'] or '-'}  {status}")
    for p in problems:
        _err(p)
    return INPUT_ERROR if problems else OK


def _build_seed(args: argparse.Namespace) -> int:
    from bartizan.attacks.seedbuild import build_seed
    from bartizan.models.embedder import load_embedder

    metrics = build_seed(
        args.datasets,
        args.key,
        args.out,
        load_embedder(args.embedder),
        target_fpr=args.target_fpr,
        log=lambda m: print(m, file=sys.stderr),
    )
    print(json.dumps(metrics, indent=2))
    return OK
