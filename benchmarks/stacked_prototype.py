"""Is a vectorised sweep worth building on this CPU? M reference VAEs stacked (one batched
matrix product per layer, one AdamW over the stacked tensors, batch 32 each) against one
model at a time, in model-steps per second, on the same machine in the same process.

    python benchmarks/stacked_prototype.py THREADS M      e.g. 2 16

Training only (no recording, no evaluation): an upper bound on what stacking could gain.
"""

import sys
import time

import torch

from nnlab.config import config
from nnlab.training import models

threads, M = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
cfg = config.build("vae")
model = models.build_model(cfg)
opt = models.make_optimizer(cfg, model.parameters())
x = torch.rand(32, 784)
y = torch.zeros(32, dtype=torch.long)
g = torch.Generator().manual_seed(0)


def step():
    loss = models.loss_terms(model, cfg, x, y, g)["loss"]
    opt.zero_grad()
    loss.backward()
    opt.step()


def rate(fn, secs=5, per=1):
    for _ in range(20):
        fn()
    t = time.perf_counter()
    n = 0
    while time.perf_counter() - t < secs:
        fn()
        n += 1
    return n * per / (time.perf_counter() - t)


single = rate(step)


def P(*s):
    w = torch.empty(*s)
    torch.nn.init.uniform_(w, -0.05, 0.05)
    return w.requires_grad_()


enc = [(P(M, a, b), P(M, 1, b)) for a, b in ((784, 256), (256, 128))]
head = (P(M, 128, 4), P(M, 1, 4))
dec = [(P(M, a, b), P(M, 1, b)) for a, b in ((2, 128), (128, 256), (256, 784))]
params = [p for pair in enc + [head] + dec for p in pair]
opt2 = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-2, fused=True)
X = torch.rand(M, 32, 784)
beta = torch.ones(M, 1)
F = torch.nn.functional


def step2():
    h = X
    for W, b in enc:
        h = F.silu(torch.baddbmm(b, h, W))
    o = torch.baddbmm(head[1], h, head[0])
    mu, sd = o[..., :2], F.softplus(o[..., 2:])
    h = mu + sd * torch.randn_like(sd)
    for i, (W, b) in enumerate(dec):
        h = torch.baddbmm(b, h, W)
        if i < 2:
            h = F.silu(h)
    rec = F.binary_cross_entropy_with_logits(h, X, reduction="none").sum(-1)
    kl = 0.5 * (mu**2 + sd**2 - 1 - 2 * torch.log(sd)).sum(-1)
    loss = (rec + beta * kl).mean(-1).sum()
    opt2.zero_grad()
    loss.backward()
    opt2.step()


stacked = rate(step2, per=M)
print(
    f"threads={threads} M={M}: one model {single:.0f} steps/s; "
    f"stacked {stacked:.0f} model-steps/s ({stacked / single:.2f}x)"
)
