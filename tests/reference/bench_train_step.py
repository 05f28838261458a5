# The plain training step of `caopd bench` (GPT forward + cross-entropy + backward + AdamW) in
# eager PyTorch, with a float32 1024^3 matmul timed in the same process, to see which share of
# the machine's matmul rate eager libtorch itself reaches at the bench's model size.
# Never needed by the build or the tests; Debian's /usr/bin/python3 with python3-torch (1.13).
#
#     build/caopd bench --json --opd-steps 0 > /tmp/c.json
#     /usr/bin/python3 tests/reference/bench_train_step.py --c-json /tmp/c.json
#
# FLOPs use the C bench's count (harness/model/gpt.c gpt_config_flops_per_token, times 3 for
# forward + backward), so train_gflops and the ratio compare directly with the C JSON's.
# Policy as in the C bench: --threads intra-op threads, OpenBLAS 1 thread for the training step;
# the matmul runs with --threads intra-op threads and BLAS threads = --matmul-blas-threads
# (default: the number of cores, as the C bench's matmul_gflops).

import argparse
import json
import os
import statistics
import sys
import time

ap = argparse.ArgumentParser(description="eager PyTorch training step vs matmul rate")
ap.add_argument("--c-json", help="a `caopd bench --json` object: model, batch, seq and threads")
ap.add_argument("--threads", type=int, default=None)
ap.add_argument("--width", type=int, default=128)
ap.add_argument("--layers", type=int, default=4)
ap.add_argument("--heads", type=int, default=4)
ap.add_argument("--vocab", type=int, default=99)
ap.add_argument("--batch", type=int, default=16)
ap.add_argument("--seq", type=int, default=256)
ap.add_argument("--steps", type=int, default=5, help="measured steps after one warm-up [5]")
ap.add_argument("--matmul-n", type=int, default=1024)
a = ap.parse_args()
threads = a.threads if a.threads is not None else 1
if a.c_json:
    with open(a.c_json) as f:
        c = json.load(f)
    m = c["model"]
    a.width, a.layers, a.heads, a.vocab = m["n_embd"], m["n_layer"], m["n_head"], m["vocab"]
    a.batch, a.seq = c.get("train_batch", a.batch), c.get("train_seq", a.seq)
    if a.threads is None:
        threads = c["threads"]

os.environ["OPENBLAS_NUM_THREADS"] = str(os.cpu_count())  # the pool's size; calls set fewer
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(threads)
C, L, H, V, B, T = a.width, a.layers, a.heads, a.vocab, a.batch, a.seq
HD = C // H


def blas_threads(n):
    """OpenBLAS's thread count, through its C API (libtorch links the system OpenBLAS)."""
    import ctypes
    for name in ("libopenblas.so.0", "libblas.so.3"):
        try:
            lib = ctypes.CDLL(name)
            lib.openblas_set_num_threads(n)
            return True
        except (OSError, AttributeError):
            continue
    return False


def flops_per_token():
    per_layer = 2.0 * (3 * C * C + C * C + 4 * C * C + 4 * C * C) + 2.0 * 2.0 * T * C
    return L * per_layer + 2.0 * C * V


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = torch.nn.LayerNorm(C)
        self.c_attn = torch.nn.Linear(C, 3 * C)
        self.c_proj = torch.nn.Linear(C, C)
        self.ln_2 = torch.nn.LayerNorm(C)
        self.c_fc = torch.nn.Linear(C, 4 * C)
        self.c_fc_proj = torch.nn.Linear(4 * C, C)

    def forward(self, x, mask):
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, H, HD).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (HD ** -0.5) + mask
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.c_proj(y)
        return x + self.c_fc_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = torch.nn.Embedding(V, C)
        self.wpe = torch.nn.Embedding(T, C)
        self.h = torch.nn.ModuleList(Block() for _ in range(L))
        self.ln_f = torch.nn.LayerNorm(C)

    def forward(self, idx, mask):
        x = self.wte(idx) + self.wpe.weight[:T]
        for b in self.h:
            x = b(x, mask)
        return self.ln_f(x) @ self.wte.weight.t()  # tied head


def median_time(fn, reps):
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


torch.manual_seed(1)
model = GPT()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.01)
idx = torch.randint(0, V, (B, T))
tgt = torch.randint(0, V, (B, T))
mask = torch.full((T, T), float("-inf")).triu(1)


def train_step():
    logits = model(idx, mask)
    loss = F.cross_entropy(logits.view(-1, V), tgt.view(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


have_blas = blas_threads(1)
step_s = median_time(train_step, a.steps)
blas_threads(os.cpu_count())
x, y = torch.randn(a.matmul_n, a.matmul_n), torch.randn(a.matmul_n, a.matmul_n)
mm_s = median_time(lambda: torch.mm(x, y), 10)
matmul_gflops = 2.0 * a.matmul_n ** 3 / mm_s / 1e9
train_gflops = 3.0 * B * T * flops_per_token() / step_s / 1e9
print(json.dumps({
    "impl": "pytorch-eager", "torch": torch.__version__, "threads": threads,
    "blas_threads_settable": have_blas,
    "model": {"n_embd": C, "n_layer": L, "n_head": H, "vocab": V}, "batch": B, "seq": T,
    "train_step_s": round(step_s, 4), "train_tok_s": round(B * T / step_s, 1),
    "train_gflops": round(train_gflops, 2), "matmul_gflops": round(matmul_gflops, 2),
    "ratio": round(train_gflops / matmul_gflops, 3),
}))
