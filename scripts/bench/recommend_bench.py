"""Our implicit-ALS trainer beside `implicit` 0.7 on the same synthetic data (driven by scripts/bench/recommend).

  run --hub BIN [--scale S] [--seed N] [--factors 64] [--iterations 15] [--regularization 0.01]
      [--alpha 1] [--epsilon 1] [--out DIR]
      generates the data set (cached in DIR), runs `argus-hub recommend eval` and `implicit` on the
      same train/test split and the same confidence values, and prints both.
  generate --out DIR [--scale S] [--seed N]   writes the data set (run by `run` in its own process).
  implicit --data DIR ...   one `implicit` fit and evaluation, as JSON (run by `run` in its own process,
      so its peak RSS is its own).

The data set: 100,000 users x 20,000 items x 4.75M distinct (user, item) pairs at scale 1. Each user
has a latent taste (rank 16); an item's pull on a user is the square root of its Zipf popularity (s = 0.9) times
exp(taste . item); each user's item count is log-normal (mean 47.5, at least 2); the items are drawn
without replacement (Gumbel top-k). Watch minutes grow with the affinity; timestamps are uniform
over 30 days. Split: per user, the latest 20% of pairs by timestamp (at least 1, leaving at least 1)
are test, as our --holdout time does; test pairs whose item no training pair has are dropped.
Confidence on both sides: c = 1 + alpha * log(1 + t / epsilon), computed here in float64, rounded
to float32 (our CLI computes the same from the same minutes); implicit is given it with alpha=1.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


def generate(out, scale, seed):
    users = int(round(100_000 * scale))
    items = int(round(20_000 * scale))
    target = int(round(4_750_000 * scale))
    rank = 16
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, items + 1) ** 0.9
    rng.shuffle(pop)
    log_pop = np.log(pop).astype(np.float32)
    item_taste = rng.standard_normal((items, rank)).astype(np.float32)
    user_taste = (rng.standard_normal((users, rank)) / np.sqrt(rank) * 2.5).astype(np.float32)
    counts = rng.lognormal(mean=0.0, sigma=0.8, size=users)
    counts = np.maximum(2, np.round(counts * target / counts.sum())).astype(np.int64)
    counts = np.minimum(counts, min(400, items - 1))
    # Nudge the total to the target exactly (users with room take the remainder one by one).
    diff = target - int(counts.sum())
    order = rng.permutation(users)
    k = 0
    while diff != 0:
        u = order[k % users]
        if diff > 0 and counts[u] < min(400, items - 1):
            counts[u] += 1
            diff -= 1
        elif diff < 0 and counts[u] > 2:
            counts[u] -= 1
            diff += 1
        k += 1
    u_out, i_out, aff_out = [], [], []
    block = 1000
    for s in range(0, users, block):
        e = min(users, s + block)
        logits = 0.5 * log_pop[None, :] + user_taste[s:e] @ item_taste.T
        gumbel = -np.log(-np.log(rng.random((e - s, items), dtype=np.float32) + 1e-12) + 1e-12)
        noisy = logits + gumbel
        kmax = int(counts[s:e].max())
        top = np.argpartition(-noisy, kmax - 1, axis=1)[:, :kmax]
        vals = np.take_along_axis(noisy, top, axis=1)
        top = np.take_along_axis(top, np.argsort(-vals, axis=1), axis=1)
        for r in range(e - s):
            n = counts[s + r]
            chosen = top[r, :n]
            u_out.append(np.full(n, s + r, dtype=np.int32))
            i_out.append(chosen.astype(np.int32))
            aff_out.append(logits[r, chosen] - 0.5 * log_pop[chosen])
    user = np.concatenate(u_out)
    item = np.concatenate(i_out)
    affinity = np.concatenate(aff_out)
    minutes = np.clip(np.exp(rng.normal(2.3 + 0.5 * affinity, 0.8)), 1, 600).round(1)
    stamp = rng.integers(1_764_547_200, 1_764_547_200 + 30 * 86_400, size=len(user))
    # Time holdout: per user the latest round(0.2 n) pairs (at least 1, leaving at least 1).
    order = np.lexsort((item, stamp, user))
    user, item, minutes, stamp = user[order], item[order], minutes[order], stamp[order]
    n = np.bincount(user, minlength=users)
    t = np.minimum(n - 1, np.maximum(1, np.floor(0.2 * n + 0.5).astype(np.int64)))
    first = np.concatenate(([0], np.cumsum(n)[:-1]))
    rank_in_user = np.arange(len(user)) - first[user]
    test = rank_in_user >= (n - t)[user]
    seen_items = np.zeros(items, dtype=bool)
    seen_items[item[~test]] = True
    keep_test = test & seen_items[item]
    os.makedirs(out, exist_ok=True)
    for name, mask in (("train", ~test), ("test", keep_test)):
        with open(os.path.join(out, name + ".tsv"), "w") as f:
            for a, b, m, ts in zip(user[mask], item[mask], minutes[mask], stamp[mask]):
                f.write(f"u{a}\ti{b}\t{m:.1f}\t{ts}\n")
        np.savez(os.path.join(out, name + ".npz"), user=user[mask], item=item[mask], minutes=minutes[mask])
    meta = {"users": users, "items": items, "pairs": int(len(user)), "train": int((~test).sum()),
            "test": int(keep_test.sum()), "test_dropped": int((test & ~keep_test).sum()), "seed": seed, "scale": scale}
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f)
    return meta


def confidence(minutes, alpha, epsilon):
    return (1.0 + alpha * np.log1p(minutes.astype(np.float64) / epsilon)).astype(np.float32)


def run_implicit(args):
    import scipy.sparse as sp
    from implicit.als import AlternatingLeastSquares
    from implicit.evaluation import ranking_metrics_at_k

    with open(os.path.join(args.data, "meta.json")) as f:
        meta = json.load(f)
    shape = (meta["users"], meta["items"])
    tr = np.load(os.path.join(args.data, "train.npz"))
    te = np.load(os.path.join(args.data, "test.npz"))
    train = sp.csr_matrix((confidence(tr["minutes"], args.alpha, args.epsilon), (tr["user"], tr["item"])), shape=shape)
    test = sp.csr_matrix((np.ones(len(te["user"]), dtype=np.float32), (te["user"], te["item"])), shape=shape)
    model = AlternatingLeastSquares(factors=args.factors, regularization=args.regularization, alpha=1.0,
                                    iterations=args.iterations, num_threads=2, random_state=args.seed,
                                    calculate_training_loss=False)
    start = time.perf_counter()
    model.fit(train, show_progress=False)
    fit = time.perf_counter() - start
    m = ranking_metrics_at_k(model, train, test, K=10, show_progress=False)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"fit_seconds": fit, "als": {"precision_at_10": m["precision"], "map_at_10": m["map"],
                      "ndcg_at_10": m["ndcg"]}, "peak_rss_mib": rss}))


def run(args):
    out = args.out or f"/tmp/argus-bench-recommend/scale{args.scale}-seed{args.seed}"
    if os.path.exists(os.path.join(out, "meta.json")):
        with open(os.path.join(out, "meta.json")) as f:
            meta = json.load(f)
        print(f"== data set (cached): {out}")
    else:
        # In a child process: a child's ru_maxrss starts from its parent's high-water mark (Linux
        # carries it across fork and exec), so this process must stay small for the two peak RSS
        # figures below to be the trainers' own.
        print(f"== generating the data set into {out}", flush=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, __file__, "generate", "--out", out, "--scale", str(args.scale), "--seed", str(args.seed)],
                       check=True)
        with open(os.path.join(out, "meta.json")) as f:
            meta = json.load(f)
        print(f"   {time.perf_counter() - start:.1f} s")
    print(f"   {meta['users']} users x {meta['items']} items, {meta['pairs']} pairs: {meta['train']} train, "
          f"{meta['test']} test ({meta['test_dropped']} test pairs of items unseen in training dropped)")
    common = ["--factors", str(args.factors), "--iterations", str(args.iterations),
              "--regularization", str(args.regularization), "--alpha", str(args.alpha),
              "--epsilon", str(args.epsilon), "--seed", str(args.seed)]
    print("== argus-hub recommend eval", flush=True)
    ours = subprocess.run([args.hub, "recommend", "eval", "--interactions", os.path.join(out, "train.tsv"),
                           "--test", os.path.join(out, "test.tsv"), "--format", "tsv", "--json", "--threads", "2"]
                          + common, check=True, capture_output=True, text=True)
    ours = json.loads(ours.stdout)
    print("== implicit", flush=True)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    theirs = subprocess.run([sys.executable, __file__, "implicit", "--data", out] + common, check=True,
                            capture_output=True, text=True, env=env)
    theirs = json.loads(theirs.stdout.strip().splitlines()[-1])
    print()
    print(f"orchestrator peak RSS (a floor under both figures below): "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print(f"{'':24}{'fit s':>9}{'P@10':>9}{'MAP@10':>9}{'NDCG@10':>9}{'peak RSS MiB':>14}")
    for name, r in (("argus ALS", ours), ("implicit 0.7 ALS", theirs)):
        a = r["als"]
        print(f"{name:24}{r['fit_seconds']:9.2f}{a['precision_at_10']:9.4f}{a['map_at_10']:9.4f}"
              f"{a['ndcg_at_10']:9.4f}{r['peak_rss_mib']:14.0f}")
    p = ours["popularity"]
    print(f"{'popularity (ours)':24}{'':9}{p['precision_at_10']:9.4f}{p['map_at_10']:9.4f}{p['ndcg_at_10']:9.4f}")
    ratio = ours["fit_seconds"] / theirs["fit_seconds"]
    worst = max(abs(ours["als"][k] - theirs["als"][k]) for k in ("precision_at_10", "map_at_10", "ndcg_at_10"))
    print()
    print(f"fit time ratio ours/implicit: {ratio:.3f} (goal <= 0.8: {'met' if ratio <= 0.8 else 'NOT met'})")
    print(f"largest metric difference: {worst:.4f} (goal <= 0.005: {'met' if worst <= 0.005 else 'NOT met'})")
    print(f"ALS P@10 / popularity P@10: {ours['als']['precision_at_10'] / max(p['precision_at_10'], 1e-12):.2f}")
    print(f"ours: {ours['test_pairs']} test pairs of {ours['als']['users']} users, {ours['test_dropped']} dropped; "
          f"load {ours['load_seconds']:.1f} s, total {ours['total_seconds']:.1f} s")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--out", required=True)
    g.add_argument("--scale", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=1)
    for name in ("run", "implicit"):
        p = sub.add_parser(name)
        p.add_argument("--factors", type=int, default=64)
        p.add_argument("--iterations", type=int, default=15)
        p.add_argument("--regularization", type=float, default=0.01)
        p.add_argument("--alpha", type=float, default=1.0)
        p.add_argument("--epsilon", type=float, default=1.0)
        p.add_argument("--seed", type=int, default=1)
        if name == "run":
            p.add_argument("--hub", required=True)
            p.add_argument("--scale", type=float, default=1.0)
            p.add_argument("--out")
        else:
            p.add_argument("--data", required=True)
    args = ap.parse_args()
    if args.cmd == "generate":
        generate(args.out, args.scale, args.seed)
    else:
        (run if args.cmd == "run" else run_implicit)(args)


if __name__ == "__main__":
    main()
