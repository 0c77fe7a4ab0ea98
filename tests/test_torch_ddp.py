"""Data-parallel training of a fusedrnn.torch model under DistributedDataParallel.

Two CPU processes (gloo backend, rendezvous on 127.0.0.1 at a free port) train a small
Embedding -> fusedrnn.torch.LSTM -> Linear model for a few SGD steps, each on its half of every
global batch; DDP averages their gradients. The parameters both ranks end with must equal,
within float32 rounding, those of one process trained here on the whole global batches, and must
differ from those of one process trained on rank 0's halves alone (so the test would notice a DDP
that synchronised nothing).

This file is also the worker: the test runs ``python tests/test_torch_ddp.py --worker ...`` twice
with subprocess and kills both workers if they are not done within ``WORKER_TIMEOUT_S``.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

WORLD_SIZE = 2
STEPS = 4
GLOBAL_BATCH = 8
SEQ_LEN = 7
VOCAB = 40
EMBED = 6
HIDDEN = 10
LEARNING_RATE = 0.5
WORKER_TIMEOUT_S = 180.0


# --------------------------------------------------------------------------------------------
# what the workers and the single-process reference share
# --------------------------------------------------------------------------------------------

def build_model(seed: int):
    """Embedding(VOCAB, EMBED) -> fusedrnn.torch.LSTM(EMBED, HIDDEN, 2 layers, batch_first) ->
    Linear(HIDDEN, 1) on the last step, initialised from `seed` (float32)."""
    import torch

    from fusedrnn.torch import LSTM

    class Classifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(VOCAB, EMBED)
            self.lstm = LSTM(EMBED, HIDDEN, num_layers=2, batch_first=True)
            self.logit = torch.nn.Linear(HIDDEN, 1)

        def forward(self, ids):
            outputs, _ = self.lstm(self.embedding(ids))
            return self.logit(outputs[:, -1]).squeeze(-1)

    torch.manual_seed(seed)
    return Classifier()


def global_batches(seed: int):
    """STEPS global batches: int64 ids (GLOBAL_BATCH, SEQ_LEN) and float32 0/1 labels (GLOBAL_BATCH,)."""
    import torch

    g = torch.Generator().manual_seed(seed + 1)
    return [(torch.randint(0, VOCAB, (GLOBAL_BATCH, SEQ_LEN), generator=g),
             torch.randint(0, 2, (GLOBAL_BATCH,), generator=g).float()) for _ in range(STEPS)]


def shard(batch, rank: int, world_size: int):
    """Rank `rank`'s equal share of a global batch (rows rank, rank + world_size, ...)."""
    ids, labels = batch
    return ids[rank::world_size], labels[rank::world_size]


def train(model, batches) -> None:
    """SGD with momentum on the mean binary cross-entropy of each batch, one step per batch."""
    import torch

    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=0.9)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for ids, labels in batches:
        optimizer.zero_grad()
        loss_fn(model(ids), labels).backward()
        optimizer.step()


# --------------------------------------------------------------------------------------------
# the worker (one DDP rank)
# --------------------------------------------------------------------------------------------

def worker(rank: int, port: int, seed: int, out_dir: Path) -> None:
    from datetime import timedelta

    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    import fusedrnn

    torch.set_num_threads(1)  # two processes on a small CI machine
    fusedrnn.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE,
                            timeout=timedelta(seconds=WORKER_TIMEOUT_S))
    try:
        # Rank 1 starts from other weights on purpose: DDP must broadcast rank 0's.
        model = build_model(seed + rank)
        if not model.lstm.fused:
            raise AssertionError("fusedrnn.torch.LSTM did not select the fused kernels for this configuration")
        ddp = DistributedDataParallel(model)
        train(ddp, [shard(b, rank, WORLD_SIZE) for b in global_batches(seed)])
        torch.save(model.state_dict(), out_dir / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


# --------------------------------------------------------------------------------------------
# the test
# --------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_workers(seed: int, out_dir: Path) -> None:
    """Starts the WORLD_SIZE workers and waits for them; kills them all (and fails) when one fails
    or when they are not done within WORKER_TIMEOUT_S."""
    import fusedrnn
    import pytest

    env = dict(os.environ)
    package_root = str(Path(fusedrnn.__file__).resolve().parents[1])  # the workers import the same fusedrnn
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env["OMP_NUM_THREADS"] = "1"
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # the workers meet on the loopback, whatever the hostname resolves to
    port = _free_port()
    logs = [out_dir / f"rank{r}.log" for r in range(WORLD_SIZE)]
    procs: List[Tuple[subprocess.Popen, object]] = []
    for r in range(WORLD_SIZE):
        log = open(logs[r], "wb")
        cmd = [sys.executable, __file__, "--worker", "--rank", str(r), "--port", str(port), "--seed", str(seed),
               "--out", str(out_dir)]
        procs.append((subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    failure = ""
    try:
        while not failure and any(p.poll() is None for p, _ in procs):
            if time.monotonic() > deadline:
                failure = f"the workers did not finish within {WORKER_TIMEOUT_S:.0f} s"
            for r, (p, _) in enumerate(procs):
                if p.poll() not in (None, 0):
                    failure = f"worker {r} exited with status {p.returncode}"
            time.sleep(0.05)
        for r, (p, _) in enumerate(procs):
            if not failure and p.returncode != 0:
                failure = f"worker {r} exited with status {p.returncode}"
    finally:
        for p, log in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            log.close()
    if failure:
        text = "\n".join(f"--- rank {r} ---\n" + logs[r].read_text(errors="replace")[-4000:] for r in range(WORLD_SIZE))
        pytest.fail(f"{failure}\n{text}")


def _max_abs_diff(a: Dict[str, "object"], b: Dict[str, "object"]) -> Tuple[float, str]:
    worst = max(a, key=lambda k: float((a[k] - b[k]).abs().max()))
    return float((a[worst] - b[worst]).abs().max()), worst


def test_ddp_two_processes_match_one_process_on_the_global_batches(tmp_path, seed):
    import pytest

    torch = pytest.importorskip("torch")
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available in this torch build")
    seed = seed % (2**31)

    _run_workers(seed, tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD_SIZE)]

    reference = build_model(seed)
    initial = {k: v.detach().clone() for k, v in reference.state_dict().items()}
    train(reference, global_batches(seed))
    expected = reference.state_dict()
    alone = build_model(seed)
    train(alone, [shard(b, 0, WORLD_SIZE) for b in global_batches(seed)])

    assert set(ranks[0]) == set(expected), f"seed {seed}"
    moved, name = _max_abs_diff(expected, initial)
    assert moved > 1e-3, f"seed {seed}: training barely moved the parameters ({name} by {moved:.2e})"
    for r, got in enumerate(ranks):
        for key in expected:
            torch.testing.assert_close(got[key], expected[key], rtol=1e-4, atol=2e-5,
                                       msg=lambda m, k=key, r=r: f"seed {seed}: rank {r}, {k}: {m}")
    apart, name = _max_abs_diff(alone.state_dict(), expected)
    assert apart > 1e-3, f"seed {seed}: training on half the data gives the same {name} (off by {apart:.2e})"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="one DDP rank of test_torch_ddp (started by the test)")
    parser.add_argument("--worker", action="store_true", required=True)
    parser.add_argument("--rank", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    a = parser.parse_args()
    worker(a.rank, a.port, a.seed, a.out)
