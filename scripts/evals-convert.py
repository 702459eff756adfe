"""Converts the match / includes / fuzzy-match evals that ship inside the
`evals` package (OpenAI's eval registry) into `switchyard eval` suites.

    python scripts/evals-convert.py REGISTRY_DIR OUT_DIR [--per-set N] [--sample M]

REGISTRY_DIR is the package's `evals/registry`. For every eval whose class
is `basic.match:Match` (the answer starts with an ideal), `basic.includes:
Includes` (the answer contains one; case-insensitive when the eval says
so) or `basic.fuzzy_match:FuzzyMatch` (normalised containment either way)
and whose samples are chat messages, OUT_DIR/<eval>.jsonl gets one case per
sample (at most N) with the equivalent scorer. With --sample M, OUT_DIR/
sample.jsonl also gets the first cases of every set, round-robin, until M.
Few-shot samples are not added (the conversion runs each sample as is).
"""

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

CLASSES = {
    "evals.elsuite.basic.match:Match": "match",
    "evals.elsuite.basic.includes:Includes": "includes",
    "evals.elsuite.basic.fuzzy_match:FuzzyMatch": "fuzzy",
}


def specs(registry: Path):
    """(eval name, kind, samples path, args) for each convertible eval."""
    for f in sorted((registry / "evals").glob("*.yaml")):
        try:
            doc = yaml.safe_load(f.read_text())
        except yaml.YAMLError:
            continue
        if not isinstance(doc, dict):
            continue
        for name, spec in doc.items():
            if not isinstance(spec, dict) or spec.get("class") not in CLASSES:
                continue
            args = spec.get("args") or {}
            samples = args.get("samples_jsonl")
            if not samples:
                continue
            path = registry / "data" / samples
            if path.exists():
                yield name, CLASSES[spec["class"]], path, args


def scorer(kind: str, ideal, args) -> dict:
    ideals = [ideal] if isinstance(ideal, str) else [str(i) for i in ideal]
    alts = "|".join(re.escape(i) for i in ideals)
    if kind == "match":
        return {"type": "regex", "pattern": f"^(?:{alts})"}
    if kind == "includes":
        flags = "(?i)" if args.get("ignore_case") else ""
        return {"type": "regex", "pattern": f"{flags}(?:{alts})"}
    return {"type": "fuzzy", "values": ideals}


def convert(registry: Path, out: Path, per_set: int, sample: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    sets = {}
    for name, kind, path, args in specs(registry):
        cases = []
        for i, line in enumerate(path.read_text().splitlines()):
            if len(cases) >= per_set:
                break
            try:
                s = json.loads(line)
            except json.JSONDecodeError:
                continue
            msgs, ideal = s.get("input"), s.get("ideal")
            if not isinstance(msgs, list) or not msgs or ideal in (None, "", []):
                continue
            if not all(isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("role") for m in msgs):
                continue
            expected = ideal if isinstance(ideal, str) else str(ideal[0])
            cases.append(
                {
                    "id": f"{name}/{i}",
                    "messages": [{"role": m["role"], "content": m["content"]} for m in msgs],
                    "expected": expected,
                    "tags": [name, kind],
                    "scorers": [scorer(kind, ideal, args)],
                }
            )
        if cases:
            sets[name] = cases
            (out / f"{name}.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    print(f"{len(sets)} suites, {sum(len(c) for c in sets.values())} cases in {out}", file=sys.stderr)
    if sample:
        picked, k = [], 0
        while len(picked) < sample and any(k < len(c) for c in sets.values()):
            for cases in sets.values():
                if k < len(cases) and len(picked) < sample:
                    picked.append(cases[k])
            k += 1
        (out / "sample.jsonl").write_text("".join(json.dumps(c) + "\n" for c in picked))
        print(f"sample.jsonl: {len(picked)} cases from {min(len(sets), len(picked))} suites", file=sys.stderr)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("registry", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--per-set", type=int, default=1000)
    p.add_argument("--sample", type=int, default=0)
    a = p.parse_args()
    convert(a.registry, a.out, a.per_set, a.sample)


if __name__ == "__main__":
    main()
