"""``ternlib data``: where each data asset resolves, and fetching one into the user cache."""
from __future__ import annotations

import argparse

NAME = "data"


def add_parser(sub) -> argparse.ArgumentParser:
    from ..data.assets import ASSETS

    p = sub.add_parser(
        NAME,
        help="list where each data asset is found, or download one into the user cache",
        description="The data layer (ternlib.data.assets): each asset resolves from its environment variable, "
        "the system packages, the ecosystem's user folders and the user cache (~/.cache/ternlib), or is "
        "downloaded with the ecosystem's own fetcher (NLTK for WordNet and Brown, torchvision for Fashion-MNIST, "
        "pooch for the rest). Examples: ternlib data list; ternlib data fetch wordnet brown",
    )
    p.add_argument("action", choices=["list", "fetch"], help="list: where each asset is; fetch: download")
    p.add_argument("names", nargs="*", metavar="NAME", help=f"assets to fetch: {', '.join(ASSETS)}")
    return p


def run(args: argparse.Namespace) -> int:
    from ..data.assets import ASSETS, fetch, where

    if args.action == "list":
        for name, place in where().items():
            print(f"{name:14s} {place}    ({ASSETS[name].what}; ${ASSETS[name].env})")
        return 0
    if not args.names:
        raise SystemExit(f"ternlib data fetch: name the assets to fetch ({', '.join(ASSETS)})")
    unknown = [n for n in args.names if n not in ASSETS]
    if unknown:
        raise SystemExit(f"ternlib data fetch: unknown {', '.join(unknown)}; choose from {', '.join(ASSETS)}")
    for name in args.names:
        print(f"{name}: {fetch(name)}")
    return 0
