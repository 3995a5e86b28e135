"""Makes the SentencePiece fixtures that nlp/data/sentencepiece_test.cc checks our tokenizer with.

Trains a small unigram model (T5's recipe: nmt_nfkc normaliser, character_coverage 0.9995, so
rare characters are unknown) on the English and Romanian sides of
../shared/data/wmt16_en_ro/train.json, then encodes every line of both sides of
validation.json with PyPI's sentencepiece and records, per line, the number of ids and a
64-bit FNV-1a hash of them (spm_wmt16_ids.txt), plus the full ids and decoded text of the first
lines (spm_wmt16_head.txt) for readable failures.

    python3 nlp/data/testdata/make_spm_fixtures.py      # needs sentencepiece (PyPI)
"""
import json
import os
import tempfile

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "..", "..", "shared", "data", "wmt16_en_ro")


def lines(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                t = json.loads(line)["translation"]
                yield t["en"]
                yield t["ro"]


def fnv1a(ids):
    h = 0xCBF29CE484222325
    for i in ids:
        for b in int(i).to_bytes(4, "little"):
            h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def main():
    with tempfile.TemporaryDirectory() as tmp:
        text = os.path.join(tmp, "train.txt")
        with open(text, "w", encoding="utf-8") as f:
            for s in lines(os.path.join(DATA, "train.json")):
                f.write(s + "\n")
        spm.SentencePieceTrainer.train(input=text, model_prefix=os.path.join(HERE, "spm_wmt16"), vocab_size=2000,
                                       model_type="unigram", character_coverage=0.9995,
                                       normalization_rule_name="nmt_nfkc", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                       minloglevel=2)
    os.remove(os.path.join(HERE, "spm_wmt16.vocab"))
    sp = spm.SentencePieceProcessor(model_file=os.path.join(HERE, "spm_wmt16.model"))
    val = list(lines(os.path.join(DATA, "validation.json")))
    with open(os.path.join(HERE, "spm_wmt16_ids.txt"), "w") as f:
        for s in val:
            ids = sp.encode(s)
            f.write("%d %016x\n" % (len(ids), fnv1a(ids)))
    with open(os.path.join(HERE, "spm_wmt16_head.txt"), "w", encoding="utf-8") as f:
        for s in val[:40]:
            ids = sp.encode(s)
            f.write(" ".join(map(str, ids)) + "\t" + sp.decode(ids) + "\n")
    print("lines", len(val), "unk lines", sum(2 in sp.encode(s) for s in val))


if __name__ == "__main__":
    main()
