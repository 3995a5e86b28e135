"""Makes the BLEU fixtures that nlp/eval/bleu_test.cc checks our corpus BLEU with.

Hypotheses are the first 300 Romanian references of ../shared/data/wmt16_en_ro/validation.json,
damaged deterministically (words dropped, swapped, repeated; numbers, entities, punctuation,
non-breaking and trailing spaces inserted; some left empty), so that every n-gram order, the
brevity penalty and 13a's special cases count.  Recorded with PyPI's sacrebleu: the corpus
score and statistics (bleu_expected.json) and the 13a tokenisation of every hypothesis
(bleu_tokenized.txt).

    python3 nlp/eval/testdata/make_bleu_fixtures.py      # needs sacrebleu (PyPI)
"""
import json
import os
import random

import sacrebleu
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "..", "..", "shared", "data", "wmt16_en_ro", "validation.json")
EXTRAS = ["3.5", "1,000", "2-3", "&quot;citat&quot;", "a&amp;b", "&lt;x&gt;", "(sic)", "U.S.", "e.g.,", "x...",
          "\u00a0", "$100", "50%", "<skipped>", "well-known", "10-", "'quote'", "[a]", "{b}", "~", "a/b", "…"]


def damage(rng, ref):
    words = ref.split(" ")
    out = []
    for w in words:
        r = rng.random()
        if r < 0.12:
            continue
        if r < 0.18 and out:
            out[-1], w = w, out[-1]
        out.append(w)
        if r > 0.93:
            out.append(rng.choice(EXTRAS))
        if r > 0.985:
            out.append(w)
    line = " ".join(out)
    if rng.random() < 0.05:
        line = ""
    if rng.random() < 0.1:
        line += "   "
    return line


def main():
    refs = []
    with open(DATA, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                refs.append(json.loads(line)["translation"]["ro"])
            if len(refs) == 300:
                break
    rng = random.Random(2026)
    hyps = [damage(rng, r) for r in refs]
    with open(os.path.join(HERE, "bleu_hyps.txt"), "w", encoding="utf-8", newline="\n") as f:
        for h in hyps:
            f.write(h + "\n")
    tok = Tokenizer13a()
    with open(os.path.join(HERE, "bleu_tokenized.txt"), "w", encoding="utf-8", newline="\n") as f:
        for h in hyps:
            f.write(tok(h.rstrip()) + "\n")
    b = sacrebleu.corpus_bleu(hyps, [refs])
    expected = {"score": b.score, "counts": b.counts, "totals": b.totals, "sys_len": b.sys_len, "ref_len": b.ref_len,
                "bp": b.bp, "sacrebleu": sacrebleu.__version__}
    with open(os.path.join(HERE, "bleu_expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(expected)


if __name__ == "__main__":
    main()
