"""PyTorch on the benchmark workloads of shared/reference/workloads.md (W1-W4 and "mm").

The peer that `dl4rs bench compare` runs beside dl4rs. Same data (the SplitMix64 generator of
the spec), same initial weights, same updates, so the losses are a cross-check as well as the
times. One process runs one thread count; it prints one JSON line per workload:

    {"peer": "pytorch 2.15.0", "workload": "W1 train", "threads": 2, "ms": 1.93, "loss": 2.305956}

`ms` is the median per iteration, except for W3, where it is the mean over the timed
iterations (its lengths differ; the spec reports the mean). Run it through
benches/peers/pytorch.sh, which installs torch into a venv first.

    python pytorch_workloads.py --threads 2 [--workloads w1,w2,w3,w4,mm]
"""

import argparse
import json
import os
import sys
import time

import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
C1 = np.uint64(0xBF58476D1CE4E5B9)
C2 = np.uint64(0x94D049BB133111EB)


def sm(seed, idx):
    """SplitMix64 in counter form for indices `idx` (a uint64 array), wrapping arithmetic."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + (idx + np.uint64(1)) * GOLDEN
        z = (z ^ (z >> np.uint64(30))) * C1
        z = (z ^ (z >> np.uint64(27))) * C2
        return z ^ (z >> np.uint64(31))


def unit(seed, start, n):
    """unit(seed, i) for i in start..start+n, as f32 in [0, 1)."""
    idx = np.arange(start, start + n, dtype=np.uint64)
    return (sm(seed, idx) >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-24)


def sym(seed, n, a):
    return (np.float32(2.0) * unit(seed, 0, n) - np.float32(1.0)) * np.float32(a)


def synthetic(rows):
    """The first `rows` rows of the spec's X (rows x 784) and labels sm(43, r) % 10."""
    x = unit(42, 0, rows * 784).reshape(rows, 784)
    y = (sm(43, np.arange(rows, dtype=np.uint64)) % np.uint64(10)).astype(np.int64)
    return x, y


def median_ms(times):
    times = sorted(times)
    return times[len(times) // 2] * 1e3


def w1_params(torch):
    def t(v, *shape):
        return torch.from_numpy(v.reshape(*shape).copy()).requires_grad_(True)

    f = np.float32
    return [
        t(sym(101, 784 * 256, np.sqrt(f(6) / f(784))), 784, 256),
        t(np.zeros(256, f), 256),
        t(sym(102, 256 * 128, np.sqrt(f(6) / f(256))), 256, 128),
        t(np.zeros(128, f), 128),
        t(sym(103, 128 * 10, np.sqrt(f(6) / f(138))), 128, 10),
        t(np.zeros(10, f), 10),
    ]


def w1_forward(torch, p, x):
    h = torch.relu(x @ p[0] + p[1])
    h = torch.relu(h @ p[2] + p[3])
    return h @ p[4] + p[5]


def sgd(torch, params, lr):
    with torch.no_grad():
        for q in params:
            q -= lr * q.grad
            q.grad = None


def w1(torch, out):
    x, y = synthetic(220 * 128)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    p = w1_params(torch)
    times, loss = [], None
    for k in range(220):
        r = (k % 468) * 128
        bx, by = x[r : r + 128], y[r : r + 128]
        t = time.perf_counter()
        l = torch.nn.functional.cross_entropy(w1_forward(torch, p, bx), by)
        l.backward()
        sgd(torch, p, 0.1)
        elapsed = time.perf_counter() - t
        if k >= 20:
            times.append(elapsed)
        if k == 219:
            loss = l.item()
    out("W1 train", median_ms(times), loss)


def w2(torch, out):
    x, _ = synthetic(256)
    x = torch.from_numpy(x)
    p = [q.detach() for q in w1_params(torch)]
    for batch in (1, 256):
        bx = x[:batch]
        times = []
        with torch.inference_mode():
            for k in range(1020):
                t = time.perf_counter()
                torch.softmax(w1_forward(torch, p, bx), dim=1)
                if k >= 20:
                    times.append(time.perf_counter() - t)
        out(f"W2 batch {batch}", median_ms(times), None)


def w3(torch, out):
    lengths = [10, 50, 100, 25]
    lstm = torch.nn.LSTM(32, 64, batch_first=True)
    head = torch.nn.Linear(64, 5)
    f = np.float32
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(sym(401, 256 * 32, 0.125).reshape(256, 32)))
        lstm.weight_hh_l0.copy_(torch.from_numpy(sym(402, 256 * 64, 0.125).reshape(256, 64)))
        lstm.bias_ih_l0.copy_(torch.from_numpy(sym(403, 256, 0.125)))
        lstm.bias_hh_l0.copy_(torch.from_numpy(sym(404, 256, 0.125)))
        w = sym(405, 64 * 5, np.sqrt(f(6) / f(69))).reshape(64, 5)
        head.weight.copy_(torch.from_numpy(w.T.copy()))
        head.bias.zero_()
    batches = {}
    for length in lengths:
        x = unit(200 + length, 0, 32 * length * 32).reshape(32, length, 32) - np.float32(0.5)
        y = (sm(300 + length, np.arange(32, dtype=np.uint64)) % np.uint64(5)).astype(np.int64)
        batches[length] = (torch.from_numpy(x), torch.from_numpy(y))
    params = list(lstm.parameters()) + list(head.parameters())
    total, loss = 0.0, None
    for k in range(108):
        bx, by = batches[lengths[k % 4]]
        t = time.perf_counter()
        h, _ = lstm(bx)
        l = torch.nn.functional.cross_entropy(head(h[:, -1]), by)
        l.backward()
        sgd(torch, params, 0.1)
        elapsed = time.perf_counter() - t
        if k >= 8:
            total += elapsed
        loss = l.item()
    out("W3 train", total / 100 * 1e3, loss)


def w4(torch, out):
    nn = torch.nn
    f = np.float32
    net = nn.Sequential(
        nn.Conv2d(1, 20, 5),
        nn.MaxPool2d(2, 2),
        nn.Conv2d(20, 50, 5),
        nn.MaxPool2d(2, 2),
        nn.Flatten(),
        nn.Linear(800, 500),
        nn.ReLU(),
        nn.Linear(500, 10),
    )
    with torch.no_grad():
        net[0].weight.copy_(torch.from_numpy(sym(501, 500, np.sqrt(f(6) / f(25))).reshape(20, 1, 5, 5)))
        net[2].weight.copy_(torch.from_numpy(sym(502, 25000, np.sqrt(f(6) / f(500))).reshape(50, 20, 5, 5)))
        net[5].weight.copy_(torch.from_numpy(sym(503, 400000, np.sqrt(f(6) / f(800))).reshape(800, 500).T.copy()))
        net[7].weight.copy_(torch.from_numpy(sym(504, 5000, np.sqrt(f(6) / f(510))).reshape(500, 10).T.copy()))
        for i in (0, 2, 5, 7):
            net[i].bias.zero_()
    x, y = synthetic(60 * 64)
    x, y = torch.from_numpy(x).reshape(-1, 1, 28, 28), torch.from_numpy(y)
    params = list(net.parameters())
    times, loss = [], None
    for k in range(60):
        r = (k % 937) * 64
        bx, by = x[r : r + 64], y[r : r + 64]
        t = time.perf_counter()
        l = torch.nn.functional.cross_entropy(net(bx), by)
        l.backward()
        sgd(torch, params, 0.01)
        elapsed = time.perf_counter() - t
        if k >= 10:
            times.append(elapsed)
        loss = l.item()
    out("W4 train", median_ms(times), loss)
    with torch.inference_mode():
        for batch in (1, 64):
            bx, times = x[:batch], []
            for k in range(60):
                t = time.perf_counter()
                torch.softmax(net(bx), dim=1)
                if k >= 10:
                    times.append(time.perf_counter() - t)
            out(f"W4 batch {batch}", median_ms(times), None)


def mm(torch, out):
    """The 8 products of one W1 step (3 forward, 3 dW, 2 dX) with torch.mm(out=)."""
    # (a, b) as (rows, cols, transposed): dW = xᵀ·dz and dx = dz·Wᵀ read transposed views.
    shapes = [
        ((128, 784, False), (784, 256, False)),
        ((128, 256, False), (256, 128, False)),
        ((128, 128, False), (128, 10, False)),
        ((784, 128, True), (128, 256, False)),
        ((256, 128, True), (128, 128, False)),
        ((128, 128, True), (128, 10, False)),
        ((128, 10, False), (10, 128, True)),
        ((128, 128, False), (128, 256, True)),
    ]

    def operand(seed, rows, cols, transposed):
        if transposed:
            return torch.from_numpy(sym(seed, rows * cols, 1.0).reshape(cols, rows)).t()
        return torch.from_numpy(sym(seed, rows * cols, 1.0).reshape(rows, cols))

    ops = []
    for i, (sa, sb) in enumerate(shapes):
        a, b = operand(600 + i, *sa), operand(700 + i, *sb)
        ops.append((a, b, torch.empty(sa[0], sb[1])))
    times = []
    for k in range(220):
        t = time.perf_counter()
        for a, b, c in ops:
            torch.mm(a, b, out=c)
        if k >= 20:
            times.append(time.perf_counter() - t)
    out("mm", median_ms(times), None)


WORKLOADS = {"w1": w1, "w2": w2, "w3": w3, "w4": w4, "mm": mm}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--workloads", default="w1,w2,w3,w4,mm")
    args = parser.parse_args()
    names = [w.strip().lower() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in names if w not in WORKLOADS]
    if unknown:
        sys.exit(f"unknown workload(s) {unknown}: expected some of {sorted(WORKLOADS)}")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var) != str(args.threads):
            sys.exit(f"set {var}={args.threads} before starting Python (the spec's threads rule)")
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    peer = f"pytorch {torch.__version__.split('+')[0]}"

    def out(workload, ms, loss):
        line = {"peer": peer, "workload": workload, "threads": args.threads, "ms": ms, "loss": loss}
        print(json.dumps(line), flush=True)

    for name in names:
        WORKLOADS[name](torch, out)


if __name__ == "__main__":
    main()
