#!/usr/bin/env python3
"""Regenerates data/sequences/fashion-rows/ from the bundled Fashion-MNIST t10k files.

Each 28x28 image is read top to bottom as a sequence of rows: time step t is image row t,
its 28 columns the 28 pixels (integers 0..255). Every sequence is cut after L rows,
L = 8 + sm(seed, i) % 21 (8..28 steps), where sm is the SplitMix64 counter generator of
shared/reference/workloads.md (the one dl4rs_array::random::splitmix implements), so the cut
is reproducible without Python's own generator. Train: images 0..3000 of t10k (inside the
bundled training split, rows 0..8000), cut with seed 7; test: images 8000..9000 (inside the
bundled test split), cut with seed 8. Layout (DL4J's CSV sequence layout):

    fashion-rows/{train,test}/features/{i}.csv   one line per time step, 28 columns
    fashion-rows/{train,test}/labels/{i}.csv     one line: the class index 0..9

Standard library only: python3 data/sequences/generate.py (from the repository root).
"""
import gzip
import os
import shutil

ROOT = os.path.dirname(os.path.abspath(__file__))
FASHION = os.path.join(ROOT, "..", "fashion-mnist")
OUT = os.path.join(ROOT, "fashion-rows")
MASK = (1 << 64) - 1
SPLITS = [("train", range(0, 3000), 7), ("test", range(8000, 9000), 8)]
MIN_LEN, MAX_LEN = 8, 28


def sm(seed, i):
    z = (seed + (i + 1) * 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def main():
    images = gzip.open(os.path.join(FASHION, "t10k-images-idx3-ubyte.gz")).read()
    labels = gzip.open(os.path.join(FASHION, "t10k-labels-idx1-ubyte.gz")).read()
    assert images[:4] == b"\x00\x00\x08\x03" and labels[:4] == b"\x00\x00\x08\x01"
    images, labels = images[16:], labels[8:]
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    for split, rows, seed in SPLITS:
        for kind in ("features", "labels"):
            os.makedirs(os.path.join(OUT, split, kind))
        for i, r in enumerate(rows):
            length = MIN_LEN + sm(seed, i) % (MAX_LEN - MIN_LEN + 1)
            img = images[r * 784:(r + 1) * 784]
            text = "".join(
                ",".join(str(p) for p in img[t * 28:(t + 1) * 28]) + "\n" for t in range(length)
            )
            with open(os.path.join(OUT, split, "features", f"{i}.csv"), "w") as f:
                f.write(text)
            with open(os.path.join(OUT, split, "labels", f"{i}.csv"), "w") as f:
                f.write(f"{labels[r]}\n")


if __name__ == "__main__":
    main()
