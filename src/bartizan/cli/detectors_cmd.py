"""`bartizan detectors`: the registered detectors, their categories and configuration schemas."""

from __future__ import annotations

import argparse
import json

from bartizan.cli.exitcodes import OK
from bartizan.detectors.registry import default_registry


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("detectors", help="list the registered detectors")
    p.add_argument("--json", action="store_true", help="machine-readable catalogue with config schemas")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    catalogue = default_registry.catalogue()
    if args.json:
        print(json.dumps(catalogue, indent=2))
        return OK
    width = max(len(d["name"]) for d in catalogue)
    for d in catalogue:
        print(f"{d['name']:<{width}}  {d['kind']:<6} {d['description']}")
        if d["categories"]:
            print(f"{'':<{width}}  {'':<6} categories: {', '.join(d['categories'])}")
    return OK
