#!/usr/bin/env python3
"""Reference for the insights judge: can a small GGUF model, run by llama.cpp,
tell planted risks, opportunities, decoys and ordinary sentence pairs apart?

Each case is two statements from two departments of an evaluation corpus (the
evidence of a planted answer, or two random sentences); the model sees a
few-shot prompt of generic cases written for this script (no corpus text) and
the verdict is the label word with the highest log-probability, corrected by
the content-free prior ("N/A" statements), as in Zhao et al. 2021, "Calibrate
before use". Prints a confusion table per corpus. Compare with
`warroom eval judge --corpus DIR`, which scores the in-process judges.

    ~/.cache/warroom/llamacpp-venv/bin/python scripts/judge_gguf_reference.py \
        MODEL.gguf eval/handbook-18f eval/handbook-sourcegraph samples/company

Exit codes: 0 ok, 2 bad arguments, 3 llama_cpp is not importable.
"""
import glob
import json
import math
import os
import random
import re
import sys
import time

try:
    from llama_cpp import Llama
except ImportError:
    print("llama_cpp is not importable: install llama-cpp-python (see scripts/llamacpp_reference.py)", file=sys.stderr)
    sys.exit(3)

if len(sys.argv) < 3 or not os.path.isfile(sys.argv[1]):
    print("usage: judge_gguf_reference.py MODEL.gguf CORPUS_DIR [CORPUS_DIR...]", file=sys.stderr)
    sys.exit(2)
GGUF = sys.argv[1]
CORPORA = sys.argv[2:]
for c in CORPORA:
    if not os.path.isfile(os.path.join(c, "ANSWERS.json")):
        print(f"{c} has no ANSWERS.json: point at a corpus folder", file=sys.stderr)
        sys.exit(2)

FEWSHOT = """Each case gives two statements from different departments of one company. The verdict says what they mean together for the company's leaders:
risk = together they show something will go wrong (a conflict, a shortfall, a broken promise, a deadline missed);
opportunity = together they show a chance to gain (a need one team has that another team can meet);
settled = one statement says the matter is already resolved, fixed, withdrawn or closed;
routine = ordinary process text, nothing for leaders.

Case:
A (sales): We promised Harlow Foods delivery of 5,000 units by March 3.
B (operations): The only press that makes those units is down for repairs until mid-April.
Verdict: risk

Case:
A (support): Dozens of customers asked this month whether we can export reports to spreadsheets.
B (engineering): The data team already built a spreadsheet export for internal use last quarter.
Verdict: opportunity

Case:
A (security): A laptop with customer records was reported lost on May 2.
B (it): The lost laptop was encrypted, was wiped remotely the same day, and the case was closed.
Verdict: settled

Case:
A (hr): Expense reports are submitted through the finance portal by the fifth of each month.
B (legal): Contracts are reviewed by the legal team before signature.
Verdict: routine

Case:
A (finance): The Denver office lease costs $40,000 a month and runs until 2028.
B (operations): The Denver team moves fully remote in June, leaving the office empty.
Verdict: risk

Case:
A (marketing): Our trade-show booth budget for the autumn fair is unspent.
B (sales): Three prospects asked to meet us in person at the autumn fair.
Verdict: opportunity

Case:
A (legal): The vendor contract required a privacy review before launch.
B (product): The privacy review was completed in July and the launch was approved.
Verdict: settled

"""

LABELS = ["risk", "opportunity", "settled", "routine"]


def sentences(text):
    text = re.sub(r"^---.*?---", "", text, flags=re.S)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("|") or line.startswith("```"):
            continue
        line = re.sub(r"^[-*]\s+|^\d+\.\s+", "", line)
        line = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", line)
        for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", line):
            if len(s.split()) >= 6 and s.endswith((".", "!", "?")):
                out.append(s)
    return out


def main():
    llm = Llama(model_path=GGUF, n_ctx=2048, logits_all=True, verbose=False, n_threads=2)
    prefix_tokens = llm.tokenize(FEWSHOT.encode(), add_bos=True)
    label_tokens = {l: llm.tokenize((" " + l).encode(), add_bos=False)[0] for l in LABELS}
    print("label tokens", label_tokens, file=sys.stderr)

    def raw(a_dept, a, b_dept, b):
        case = f"Case:\nA ({a_dept}): {a}\nB ({b_dept}): {b}\nVerdict:"
        toks = prefix_tokens + llm.tokenize(case.encode(), add_bos=False)
        llm.reset()
        llm.eval(toks)
        logits = llm.scores[llm.n_tokens - 1]
        m = float(max(logits))
        z = m + math.log(sum(math.exp(float(x) - m) for x in logits))
        return {l: float(logits[t]) - z for l, t in label_tokens.items()}

    prior = raw("x", "N/A", "y", "N/A")
    print("content-free prior", prior, file=sys.stderr)

    def score(a_dept, a, b_dept, b):
        r = raw(a_dept, a, b_dept, b)
        return {l: r[l] - prior[l] for l in LABELS}

    for corpus in CORPORA:
        answers = json.load(open(os.path.join(corpus, "ANSWERS.json")))
        cases = []
        for a in answers:
            if a["kind"] in ("risk", "opportunity", "decoy") and len(a["evidence"]) >= 2:
                e = a["evidence"]
                cases.append((a["kind"] if a["kind"] != "decoy" else "settled",
                              e[0]["path"].split("/")[0], e[0]["quote"], e[1]["path"].split("/")[0], e[1]["quote"]))
        by_dept = {}
        for f in glob.glob(os.path.join(corpus, "*", "*.md")):
            d = f.split("/")[-2]
            by_dept.setdefault(d, []).extend(sentences(open(f).read()))
        planted = {e["quote"] for a in answers for e in a["evidence"]}
        rng = random.Random(7)
        depts = sorted(by_dept)
        for _ in range(30):
            d1, d2 = rng.sample(depts, 2)
            s1 = rng.choice(by_dept[d1]); s2 = rng.choice(by_dept[d2])
            if s1 in planted or s2 in planted:
                continue
            cases.append(("routine", d1, s1, d2, s2))
        conf = {}
        t0 = time.time()
        for kind, d1, s1, d2, s2 in cases:
            sc = score(d1, s1, d2, s2)
            pred = max(sc, key=sc.get)
            conf[(kind, pred)] = conf.get((kind, pred), 0) + 1
            if kind != "routine":
                print(f"{kind:12s} -> {pred:12s} " + " ".join(f"{l[:4]}={sc[l]:.2f}" for l in LABELS), file=sys.stderr)
        print(corpus, f"{len(cases)} cases in {time.time()-t0:.0f}s")
        for k in ["risk", "opportunity", "settled", "routine"]:
            row = {p: conf.get((k, p), 0) for p in LABELS}
            print(f"  {k:12s}", row)


main()
