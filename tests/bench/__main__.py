"""Runs every tests/bench/bench_*.py and writes <name>.json plus a readable SUMMARY.md."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover() -> list[str]:
    return sorted(p.stem[len("bench_") :] for p in HERE.glob("bench_*.py"))


def flatten(figures: dict, prefix: str = "", depth: int = 0) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for key, value in figures.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and depth < 2:
            rows += flatten(value, f"{name}.", depth + 1)
        elif isinstance(value, (int, float, str, bool)) or value is None:
            rows.append((name, value))
    return rows


def fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def run_one(name: str, out_dir: Path, quick: bool) -> dict:
    module = importlib.import_module(f"tests.bench.bench_{name}")
    target = out_dir / f"{name}.json"
    started = time.time()
    t0 = time.perf_counter()
    figures = module.run(out_dir, quick)
    elapsed = time.perf_counter() - t0
    if not isinstance(figures, dict):
        raise TypeError(f"bench_{name}.run returned {type(figures).__name__}, not a dict")
    # a module may write a richer file itself; otherwise its figures are the file
    if not target.exists() or target.stat().st_mtime < started:
        target.write_text(json.dumps(figures, indent=2, sort_keys=True, default=str) + "\n")
    return {"name": name, "ok": True, "seconds": elapsed, "figures": figures}


def summary(results: list[dict], quick: bool) -> str:
    lines = [
        "# Fieldpost benchmarks",
        "",
        (
            f"Run {time.strftime('%Y-%m-%d %H:%M:%S %Z')}{' (quick)' if quick else ''}. Figures are from this "
            "machine; compare the ratios, each against its own baseline measured in the same run."
        ),
        "",
    ]
    for r in results:
        lines.append(f"## {r['name']} — {'ok' if r['ok'] else 'FAILED'} ({r['seconds']:.1f} s)")
        lines.append("")
        if not r["ok"]:
            lines += ["```", r["error"].rstrip(), "```", ""]
            continue
        lines += ["| figure | value |", "| --- | --- |"]
        lines += [f"| {k} | {fmt(v)} |" for k, v in flatten(r["figures"])]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    parser.add_argument("--quick", action="store_true", help="small sizes: the whole run in under 2 minutes")
    parser.add_argument("--only", action="append", metavar="NAME", help="run only bench_NAME (repeatable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    names = discover()
    if args.only:
        unknown = set(args.only) - set(names)
        if unknown:
            parser.error(f"no such benchmark: {', '.join(sorted(unknown))} (have: {', '.join(names)})")
        names = [n for n in names if n in args.only]
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in names:
        print(f"bench {name} ...", flush=True)
        t0 = time.perf_counter()
        try:
            results.append(run_one(name, args.out, args.quick))
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others' figures
            results.append(
                {
                    "name": name,
                    "ok": False,
                    "seconds": time.perf_counter() - t0,
                    "error": traceback.format_exc(),
                }
            )
        print(
            f"bench {name} {'ok' if results[-1]['ok'] else 'FAILED'} in {results[-1]['seconds']:.1f} s",
            flush=True,
        )
    (args.out / "SUMMARY.md").write_text(summary(results, args.quick))
    print(f"wrote {args.out / 'SUMMARY.md'}")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
