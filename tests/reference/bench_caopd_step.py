# A straightforward eager PyTorch implementation of one CaOPD step, at the model size and token
# counts of `caopd bench`, to compare its step time with the C harness's (README.md, bench).
# Never needed by the build or the tests; Debian's /usr/bin/python3 with python3-torch (1.13).
#
# Side by side on one machine, same thread count (the C bench writes its JSON, this script
# reads the model config, threads and token counts from it and prints one JSON object):
#
#     build/caopd bench --json --opd-only --threads 1 > /tmp/c.json
#     /usr/bin/python3 tests/reference/bench_caopd_step.py --c-json /tmp/c.json
#
# (--opd-only skips the bench's other parts; the full `build/caopd bench --json` works too.)
# Without a C JSON, give the counts yourself: --prompt-tokens, --teacher-prompt-tokens,
# --train-tokens (and --vocab, --threads ...; see --help).
#
# What it does per step, all float32, GPT-2 initialization, no prefix sharing anywhere:
#   1. rollouts: each of the prompts x K rows gets its own copy of its prompt, prefilled into its
#      own KV cache (torch.cat per step), then max_new tokens sampled at temperature 1
#      (multinomial over the softmax; a row that emits EOS keeps emitting it);
#   2-3. verification and the CaOPD replacement are host-side text work in the C step; here the
#      trained completion of each row is its sampled tokens, cut or extended (with fixed tokens
#      standing for the appended "Confidence: x.xx") to the C bench's mean target count, then EOS;
#   4. teacher (the EMA copy, no grad): forward over teacher context + completion, every row
#      whole;
#   5. student (grad): forward over prompt + completion, every row whole; per-token forward
#      KL(teacher || student) over the completion targets, the first 3 left out, mean per row,
#      mean over rows; backward;
#   6. the logged entropies of student and teacher (the C step logs them too), global-norm clip
#      1.0, AdamW (betas 0.9/0.95, eps 1e-8, weight decay 0.01 on matrices), EMA 0.01.
# Prompts and contexts are random tokens of the C bench's mean lengths (prompt_tokens / prompts
# and teacher_prompt_tokens / teacher_contexts), the same for every row, so this side has no
# padding at all (the C side pads its variable-length prompts).
#
# Rates use the C bench's definitions (harness/bench/bench.h), counts of the step's work rather than
# of what an implementation recomputes, so they compare directly:
#   rollout_tok_s = new_tokens / rollout_s                          (new_tokens = N * max_new)
#   teacher_tok_s = (teacher_prompt_tokens + train_tokens) / teacher_s
#   train_tok_s   = (prompt_tokens + train_tokens) / train_s
# with N = prompts * K rows. computed_teacher_tokens / computed_student_tokens say how many
# token positions this implementation actually runs through the teacher / student.
# step_s is the median over --steps measured steps after one warm-up step.

import argparse
import json
import math
import os
import statistics
import sys
import time

BOS, EOS = 1, 2  # the tasks tokenizer's ids (PAD is 0)
LN_EPS = 1e-5


def parse_args():
    ap = argparse.ArgumentParser(description="One CaOPD step in eager PyTorch, timed (see the top of this file).")
    ap.add_argument("--c-json", help="the JSON object of `caopd bench --json` (file, or - for stdin)")
    ap.add_argument("--steps", type=int, default=3, help="measured steps after one warm-up [3]")
    ap.add_argument("--threads", type=int, help="torch intra-op threads [the C JSON's, else 1]")
    ap.add_argument("--blas-threads", type=int,
                    help="OpenBLAS threads [the C JSON's blas_threads, else 1: the C policy]")
    ap.add_argument("--vocab", type=int)
    ap.add_argument("--block-size", type=int)
    ap.add_argument("--layers", type=int)
    ap.add_argument("--heads", type=int)
    ap.add_argument("--width", type=int)
    ap.add_argument("--prompts", type=int)
    ap.add_argument("--k", type=int)
    ap.add_argument("--new", type=int, help="tokens sampled per rollout")
    ap.add_argument("--prompt-tokens", type=int, help="student prompt tokens per step, BOS included")
    ap.add_argument("--teacher-prompt-tokens", type=int, help="teacher context tokens per step")
    ap.add_argument("--train-tokens", type=int, help="target tokens per step (completion + EOS)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    cfg = {"vocab": 99, "block_size": 256, "n_layer": 4, "n_head": 4, "n_embd": 128,
           "threads": 1, "blas_threads": 1, "prompts": 16, "k": 8, "max_new": 24,
           "prompt_tokens": None, "teacher_prompt_tokens": None, "teacher_contexts": None,
           "train_tokens": None, "c": None}
    if a.c_json:
        with (sys.stdin if a.c_json == "-" else open(a.c_json)) as f:
            c = json.load(f)
        o = c.get("opd_step")
        if not o:
            sys.exit("bench_caopd_step: %s has no opd_step (run the C bench with --opd-steps >= 1)"
                     % a.c_json)
        for key in ("vocab", "block_size", "n_layer", "n_head", "n_embd"):
            cfg[key] = c["model"][key]
        cfg["threads"], cfg["blas_threads"] = c["threads"], c["blas_threads"]
        for key in ("prompts", "k", "max_new", "prompt_tokens", "teacher_prompt_tokens",
                    "teacher_contexts", "train_tokens"):
            cfg[key] = o[key]
        cfg["c"] = c
    for key, val in (("vocab", a.vocab), ("block_size", a.block_size), ("n_layer", a.layers),
                     ("n_head", a.heads), ("n_embd", a.width), ("threads", a.threads),
                     ("blas_threads", a.blas_threads), ("prompts", a.prompts), ("k", a.k),
                     ("max_new", a.new), ("prompt_tokens", a.prompt_tokens),
                     ("teacher_prompt_tokens", a.teacher_prompt_tokens),
                     ("train_tokens", a.train_tokens)):
        if val is not None:
            cfg[key] = val
    missing = [k for k in ("prompt_tokens", "teacher_prompt_tokens", "train_tokens") if cfg[k] is None]
    if missing:
        sys.exit("bench_caopd_step: give --c-json or --" + ", --".join(m.replace("_", "-") for m in missing))
    if cfg["teacher_contexts"] is None:
        cfg["teacher_contexts"] = cfg["prompts"]  # mode demo: one context per prompt
    cfg["steps"], cfg["seed"] = a.steps, a.seed
    return cfg


cfg = parse_args()
# OpenBLAS reads this once, when libtorch loads it: set before importing torch. The C bench's
# policy is one BLAS thread per call next to the intra-op threads (two pools on every core
# oversubscribe the machine).
os.environ["OPENBLAS_NUM_THREADS"] = str(cfg["blas_threads"])

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

V, TMAX, L, H, C = cfg["vocab"], cfg["block_size"], cfg["n_layer"], cfg["n_head"], cfg["n_embd"]
HD = C // H


# ---- the model: tests/fixtures/make_gpt_fixture.py, batched float32, with a KV cache -------

def param_shapes():
    """(name, shape) of every parameter, in the order the C model stores them."""
    shapes = [("wte", (V, C)), ("wpe", (TMAX, C))]
    for l in range(L):
        p = f"h.{l}."
        shapes += [
            (p + "ln_1.weight", (C,)),
            (p + "ln_1.bias", (C,)),
            (p + "attn.c_attn.weight", (3 * C, C)),
            (p + "attn.c_attn.bias", (3 * C,)),
            (p + "attn.c_proj.weight", (C, C)),
            (p + "attn.c_proj.bias", (C,)),
            (p + "ln_2.weight", (C,)),
            (p + "ln_2.bias", (C,)),
            (p + "mlp.c_fc.weight", (4 * C, C)),
            (p + "mlp.c_fc.bias", (4 * C,)),
            (p + "mlp.c_proj.weight", (C, 4 * C)),
            (p + "mlp.c_proj.bias", (C,)),
        ]
    shapes += [("ln_f.weight", (C,)), ("ln_f.bias", (C,))]
    return shapes


def init_params(gen):
    """GPT-2 initialization as gpt_new: N(0, 0.02), residual projections 0.02/sqrt(2L), zero
    biases, unit LayerNorm gains."""
    params = {}
    for name, shape in param_shapes():
        if len(shape) >= 2:
            std = 0.02 / math.sqrt(2 * L) if name.endswith("c_proj.weight") else 0.02
            w = torch.randn(shape, generator=gen) * std
        elif ".ln_" in name or name.startswith("ln_f"):
            w = torch.ones(shape) if name.endswith("weight") else torch.zeros(shape)
        else:
            w = torch.zeros(shape)
        params[name] = w.requires_grad_(True)
    return params


def layer_norm(x, w, b):
    return F.layer_norm(x, (C,), w, b, LN_EPS)


def forward(p, tokens, past=None):
    """Logits (B, T, V) of tokens (B, T) that follow the `past` cached positions (a list of
    per-layer (k, v), each (B, H, Tpast, HD); None: no past). Returns (logits, new past).
    Causal attention; every row has the same length (no padding)."""
    Bn, Tn = tokens.shape
    t0 = 0 if past is None else past[0][0].shape[2]
    pos = torch.arange(t0, t0 + Tn)
    x = p["wte"][tokens] + p["wpe"][pos]  # (B, T, C)
    mask = None
    if Tn > 1:
        i = torch.arange(Tn).view(Tn, 1)
        j = torch.arange(t0 + Tn).view(1, t0 + Tn)
        mask = j > i + t0  # (T, Tpast + T): True where not allowed
    new_past = []
    for l in range(L):
        h = f"h.{l}."
        a = layer_norm(x, p[h + "ln_1.weight"], p[h + "ln_1.bias"])
        qkv = F.linear(a, p[h + "attn.c_attn.weight"], p[h + "attn.c_attn.bias"])  # (B, T, 3C)
        q, k, v = qkv.split(C, dim=-1)
        q = q.view(Bn, Tn, H, HD).transpose(1, 2)  # (B, H, T, hd)
        k = k.view(Bn, Tn, H, HD).transpose(1, 2)
        v = v.view(Bn, Tn, H, HD).transpose(1, 2)
        if past is not None:
            k = torch.cat([past[l][0], k], dim=2)  # (B, H, Tpast + T, hd)
            v = torch.cat([past[l][1], v], dim=2)
        new_past.append((k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(HD)  # (B, H, T, Tpast + T)
        if mask is not None:
            att = att.masked_fill(mask, float("-inf"))
        att = torch.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(Bn, Tn, C)
        x = x + F.linear(y, p[h + "attn.c_proj.weight"], p[h + "attn.c_proj.bias"])
        m = layer_norm(x, p[h + "ln_2.weight"], p[h + "ln_2.bias"])
        m = F.gelu(F.linear(m, p[h + "mlp.c_fc.weight"], p[h + "mlp.c_fc.bias"]))  # exact erf GELU
        x = x + F.linear(m, p[h + "mlp.c_proj.weight"], p[h + "mlp.c_proj.bias"])
    x = layer_norm(x, p["ln_f.weight"], p["ln_f.bias"])
    return x @ p["wte"].T, new_past  # tied head, no bias


# ---- one CaOPD step --------------------------------------------------------------------------

def sample(logits, gen, temperature=1.0):
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=gen).squeeze(1)


def caopd_step(student, teacher, opt, prompts, contexts, tail, weights, K, max_new, gen, alpha=0.01,
               clip=1.0):
    """prompts (P, Lp) and contexts (P, Lt) int64, BOS first; tail (N, W - 1) tokens appended
    to every sampled completion (then cut to W - 1); weights (N, W) of the loss targets.
    Returns the wall seconds of its parts."""
    N, W = weights.shape
    Lp, Lt = prompts.shape[1], contexts.shape[1]
    params = list(student.values())
    t0 = time.perf_counter()
    # 1. rollouts: K copies of each prompt, each prefilled into its own cache (no sharing)
    with torch.no_grad():
        rows = prompts.repeat_interleave(K, dim=0)  # (N, Lp)
        logits, past = forward(student, rows)
        nxt = sample(logits[:, -1], gen)
        done = nxt == EOS
        out = [nxt]
        for _ in range(1, max_new):
            if bool(done.all()):
                break
            logits, past = forward(student, nxt.view(N, 1), past)
            nxt = torch.where(done, torch.full_like(nxt, EOS), sample(logits[:, -1], gen))
            done = done | (nxt == EOS)
            out.append(nxt)
        sampled = torch.stack(out, dim=1)  # (N, <= max_new)
        host = sampled.tolist()  # verification reads the rollouts on the host
        del host, past
    t1 = time.perf_counter()
    # 2-3. the trained completion: W - 1 tokens (sampled, then the tail), targets + EOS
    comp = torch.cat([sampled, tail], dim=1)[:, : W - 1]
    targets_in = comp  # (N, W - 1)
    # 4. teacher: every row's context + completion, whole
    with torch.no_grad():
        tin = torch.cat([contexts.repeat_interleave(K, dim=0), targets_in], dim=1)
        t_logits = forward(teacher, tin)[0][:, Lt - 1:]  # (N, W, V)
    t2 = time.perf_counter()
    # 5. student: prompt + completion, whole; forward KL over the targets; backward
    sin = torch.cat([rows, targets_in], dim=1)
    s_logits = forward(student, sin)[0][:, Lp - 1:]  # (N, W, V)
    log_s = F.log_softmax(s_logits, dim=-1)
    log_t = F.log_softmax(t_logits, dim=-1)
    kl = (log_t.exp() * (log_t - log_s)).sum(-1)  # (N, W)
    loss = (kl * weights).sum()
    loss_value = loss.item()
    loss.backward()
    t3 = time.perf_counter()
    # 6. the logged entropies, clip, AdamW, EMA
    with torch.no_grad():
        counted = weights > 0
        ent_s = -(log_s.exp() * log_s).sum(-1)[counted].mean().item()
        ent_t = -(log_t.exp() * log_t).sum(-1)[counted].mean().item()
    torch.nn.utils.clip_grad_norm_(params, max_norm=clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    with torch.no_grad():
        for name, w in student.items():
            teacher[name].lerp_(w, alpha)
    t4 = time.perf_counter()
    assert math.isfinite(loss_value) and math.isfinite(ent_s) and math.isfinite(ent_t)
    return {"step_s": t4 - t0, "rollout_s": t1 - t0, "teacher_s": t2 - t1, "train_s": t3 - t2,
            "other_s": (t4 - t0) - (t3 - t2) - (t2 - t1) - (t1 - t0)}


def main():
    torch.set_num_threads(cfg["threads"])
    gen = torch.Generator().manual_seed(cfg["seed"])
    torch.manual_seed(cfg["seed"])
    P, K, max_new = cfg["prompts"], cfg["k"], cfg["max_new"]
    N = P * K
    Lp = max(2, round(cfg["prompt_tokens"] / P))
    Lt = max(2, round(cfg["teacher_prompt_tokens"] / cfg["teacher_contexts"]))
    W = max(2, round(cfg["train_tokens"] / N))  # targets per row: completion + EOS
    if Lt + W - 1 > TMAX or Lp + max_new > TMAX:
        sys.exit("bench_caopd_step: sequences longer than block_size %d" % TMAX)
    skip = 3

    student = init_params(gen)
    teacher = {n: w.detach().clone() for n, w in student.items()}
    decay = [w for w in student.values() if w.dim() >= 2]
    no_decay = [w for w in student.values() if w.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=3e-5, betas=(0.9, 0.95), eps=1e-8)
    prompts = torch.randint(3, V, (P, Lp), generator=gen)
    prompts[:, 0] = BOS
    contexts = torch.randint(3, V, (P, Lt), generator=gen)
    contexts[:, 0] = BOS
    tail = torch.randint(3, V, (N, W - 1), generator=gen)  # enough even for a short rollout
    weights = torch.zeros(N, W)
    if W > skip:
        weights[:, skip:] = 1.0 / (W - skip) / N  # mean per row, then mean over rows

    times = []
    for r in range(-1, cfg["steps"]):
        t = caopd_step(student, teacher, opt, prompts, contexts, tail, weights, K, max_new, gen)
        print("bench_caopd_step: step %d: %.3f s (rollout %.3f, teacher %.3f, student %.3f)"
              % (r, t["step_s"], t["rollout_s"], t["teacher_s"], t["train_s"]), file=sys.stderr)
        if r >= 0:
            times.append(t)
    med = {k: statistics.median(t[k] for t in times) for k in times[0]}

    prompt_tokens, teacher_prompt_tokens = P * Lp, P * Lt
    train_tokens, new_tokens = N * W, N * max_new
    teacher_tokens, student_tokens = teacher_prompt_tokens + train_tokens, prompt_tokens + train_tokens
    n_params = sum(w.numel() for w in student.values())
    res = {
        "impl": "pytorch eager, KV-cached, no prefix sharing (tests/reference/bench_caopd_step.py)",
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "torch_version": torch.__version__, "threads": torch.get_num_threads(),
        "blas_threads": cfg["blas_threads"],
        "model": {"vocab": V, "block_size": TMAX, "n_layer": L, "n_head": H, "n_embd": C,
                  "params": n_params},
        "opd_step": {
            "prompts": P, "k": K, "max_new": max_new, "steps": cfg["steps"], "vocab": V,
            "params": n_params, "prompt_len": Lp, "teacher_context_len": Lt, "targets_per_row": W,
            "prompt_tokens": prompt_tokens, "teacher_prompt_tokens": teacher_prompt_tokens,
            "new_tokens": new_tokens, "train_tokens": train_tokens,
            "teacher_tokens": teacher_tokens, "student_tokens": student_tokens,
            "computed_teacher_tokens": N * (Lt + W - 1), "computed_student_tokens": N * (Lp + W - 1),
            "step_s": med["step_s"], "rollout_s": med["rollout_s"], "teacher_s": med["teacher_s"],
            "train_s": med["train_s"], "other_s": med["other_s"],
            "rollout_tok_s": new_tokens / med["rollout_s"],
            "teacher_tok_s": teacher_tokens / med["teacher_s"],
            "train_tok_s": student_tokens / med["train_s"],
            "step_tok_s": (new_tokens + train_tokens) / med["step_s"],
        },
    }
    c = cfg["c"]
    if c is not None:
        if c["model"]["params"] != n_params:
            sys.exit("bench_caopd_step: %d parameters here, %d in the C bench: not the same model"
                     % (n_params, c["model"]["params"]))
        res["c_step_s"] = c["opd_step"]["step_s"]
        res["c_over_pytorch_step_s"] = c["opd_step"]["step_s"] / med["step_s"]
    print(json.dumps(res))


if __name__ == "__main__":
    main()
