#!/usr/bin/env python3
"""IMDB sentiment with fusedrnn.torch.LSTM, trained data-parallel with PyTorch's DistributedDataParallel.

The model and data of ``fusedrnn train sentiment`` (see fusedrnn/tasks/sentiment.py), in PyTorch:
Embedding(20000, 128) -> input dropout 0.2 (one mask per review, shared by all its steps, as in
Keras's ``LSTM(dropout=0.2)``) -> fusedrnn.torch.LSTM(128, 128) -> Linear(128, 1) on the last
step's state, read as a logit; Keras's initialisers; Adam(1e-3); global batch 32; reviews cut to
their last 80 words; validated on the test reviews. One difference: torch.nn.LSTM's API, which
fusedrnn.torch.LSTM keeps, has no recurrent dropout, so Keras's ``recurrent_dropout=0.2`` is left out.

Each process trains on its share of every global batch (DistributedSampler); DDP averages the
gradients over all processes (gloo backend, on CPU). Rank 0 prints the progress and writes the
checkpoint (atomically, after every epoch).

    torchrun --nproc_per_node 2 examples/torch_ddp_sentiment.py --data ../shared/data
    torchrun --nproc_per_node 2 examples/torch_ddp_sentiment.py --limit 512 --epochs 1 --steps 5   # smoke run
    python examples/torch_ddp_sentiment.py --limit 512 --epochs 1                                   # one process

Several machines: the same command on each, with torchrun's rendezvous options (docs/torch_ddp.md):

    torchrun --nnodes 2 --nproc_per_node 2 --rdzv_backend c10d --rdzv_endpoint HOST:29400 \\
        examples/torch_ddp_sentiment.py --data /path/to/data

The data (aclImdb.tar.gz, or Keras's imdb.npz) is looked for at --data, then in $FUSEDRNN_DATA,
then in ~/.cache/fusedrnn/data.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict
from typing import Dict, List, Optional

try:
    import torch
    import torch.distributed as dist
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
except ImportError:  # pragma: no cover
    sys.exit('error: this example needs PyTorch: pip install "fusedrnn[torch]"')

import fusedrnn
import fusedrnn.torch
from fusedrnn.datasets import imdb
from fusedrnn.datasets.locate import DataNotFoundError
from fusedrnn.io_utils import atomic_write
from fusedrnn.tasks.sentiment import SentimentConfig, load_data

EVAL_BATCH = 512


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------

class SentimentLSTM(nn.Module):
    """ids (B, T) int64 -> logits (B,) float32; the model of the module docstring."""

    def __init__(self, num_words: int, embedding_dim: int, units: int, dropout: float) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_words, embedding_dim)
        self.dropout = dropout
        self.lstm = fusedrnn.torch.LSTM(embedding_dim, units, batch_first=True)
        self.logit = nn.Linear(units, 1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embedding(ids)                          # (B, T, E)
        if self.training and self.dropout > 0:           # one mask per review for all its steps
            keep = 1.0 - self.dropout
            x = x * (torch.rand(x.shape[0], 1, x.shape[2]) < keep).to(x.dtype).div_(keep)
        _, (h_n, _) = self.lstm(x)                       # h_n: (1, B, H), the state after the last step
        return self.logit(h_n[-1]).squeeze(-1)


@torch.no_grad()
def keras_init(model: SentimentLSTM) -> None:
    """Keras's default initialisers: embedding uniform(-0.05, 0.05); LSTM input weights Glorot
    uniform and recurrent weights orthogonal (per gate, as Keras draws the whole (I, 4H) and
    (H, 4H) matrices), biases zero but the forget gate's 1; the dense layer Glorot uniform, bias 0."""
    nn.init.uniform_(model.embedding.weight, -0.05, 0.05)
    H = model.lstm.hidden_size
    nn.init.xavier_uniform_(model.lstm.weight_ih_l0)  # (4H, I): fan in I, fan out 4H, as Keras's (I, 4H) kernel
    model.lstm.weight_hh_l0.copy_(nn.init.orthogonal_(torch.empty(H, 4 * H)).t())
    model.lstm.bias_ih_l0.zero_()
    model.lstm.bias_ih_l0[H:2 * H] = 1.0  # torch's gate order is i, f, g, o; its two biases add up
    model.lstm.bias_hh_l0.zero_()
    nn.init.xavier_uniform_(model.logit.weight)
    model.logit.bias.zero_()


# --------------------------------------------------------------------------------------------
# distributed plumbing
# --------------------------------------------------------------------------------------------

class Dist:
    """Rank, world size and collectives; a single process without torchrun is world size 1."""

    def __init__(self) -> None:
        self.enabled = "WORLD_SIZE" in os.environ
        self.rank = int(os.environ.get("RANK", 0))
        self.world_size = int(os.environ.get("WORLD_SIZE", 1))
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        self.local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", 1))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def init(self) -> None:
        if self.enabled:
            dist.init_process_group("gloo")  # the rendezvous torchrun set up (MASTER_ADDR/PORT)

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def sum(self, values: List[float]) -> List[float]:
        """Element-wise sum of `values` over all processes (float64)."""
        t = torch.tensor(values, dtype=torch.float64)
        if self.enabled:
            dist.all_reduce(t)
        return t.tolist()


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------

def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    d = SentimentConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="aclImdb.tar.gz, imdb.npz or a folder holding one (default: $FUSEDRNN_DATA, "
                                  "then ~/.cache/fusedrnn/data)")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs (default {d.epochs})")
    p.add_argument("--steps", type=int, help="optimizer steps per epoch at most (default: the whole training set)")
    p.add_argument("--limit", type=int, help="use only the first N reviews of each split (smoke runs)")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help=f"global batch, split evenly over the processes (default {d.batch_size})")
    p.add_argument("--learning-rate", type=float, default=d.learning_rate, help=f"Adam's (default {d.learning_rate})")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the weights, the shuffling and the dropout")
    p.add_argument("--threads", type=int, help="threads per process (default: the cores divided by the processes)")
    p.add_argument("--checkpoint", default="torch_ddp_sentiment.pt",
                   help="where rank 0 saves the model after every epoch (default %(default)s; '' for none)")
    p.add_argument("--log-every", type=int, default=50, help="steps between progress lines (default %(default)s)")
    args = p.parse_args(argv)
    for name in ("epochs", "batch_size", "log_every"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')}: expected a positive integer, got {getattr(args, name)}")
    for name in ("steps", "limit", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name}: expected a positive integer, got {getattr(args, name)}")
    return args


def config_of(args: argparse.Namespace) -> SentimentConfig:
    return SentimentConfig(batch_size=args.batch_size, epochs=args.epochs, learning_rate=args.learning_rate,
                           seed=args.seed, limit=args.limit, steps_per_epoch=args.steps)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, d: Dist) -> Dict[str, float]:
    """Loss and accuracy over all of (x, y): each process scores rows rank, rank + world, ...; the sums are added."""
    model.eval()
    loss_sum = correct = 0.0
    mine = torch.arange(d.rank, len(y), d.world_size)
    with torch.no_grad():
        for i in range(0, len(mine), EVAL_BATCH):
            rows = mine[i:i + EVAL_BATCH]
            logits = model(x[rows])
            loss_sum += float(nn.functional.binary_cross_entropy_with_logits(logits, y[rows], reduction="sum"))
            correct += float(((logits > 0).float() == y[rows]).sum())
    model.train()
    loss_sum, correct = d.sum([loss_sum, correct])
    return {"val_loss": loss_sum / len(y), "val_accuracy": correct / len(y)}


def save_checkpoint(path: str, model: SentimentLSTM, optimizer, cfg: SentimentConfig, epoch: int,
                    history: Dict[str, List[float]], word_index: Dict[str, int]) -> None:
    """Model and optimizer state, settings, history and the kept words' index, in one torch.save file
    written atomically (an interrupted save leaves the previous checkpoint whole)."""
    kept = {w: int(r) for w, r in word_index.items() if int(r) + 3 < cfg.num_words}
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
             "config": asdict(cfg), "history": history, "word_index": kept}
    with atomic_write(path, "wb") as f:
        torch.save(state, f)


def train(args: argparse.Namespace, d: Dist) -> Dict[str, List[float]]:
    cfg = config_of(args)
    say = print if d.is_main else (lambda *a, **k: None)

    # One process per machine parses the reviews and fills the cache; the others then read the cache.
    if d.local_rank != 0:
        d.barrier()
    say("reading the IMDB reviews (tokenized once, then cached)...", flush=True)
    (x_np, y_np), (xv_np, yv_np) = load_data(cfg, args.data)
    word_index = imdb.get_word_index(args.data, limit=cfg.limit) if d.is_main else {}
    if d.local_rank == 0:
        d.barrier()
    x, y = torch.from_numpy(x_np.astype("int64")), torch.from_numpy(y_np.astype("float32"))
    xv, yv = torch.from_numpy(xv_np.astype("int64")), torch.from_numpy(yv_np.astype("float32"))

    torch.manual_seed(cfg.seed)
    model = SentimentLSTM(cfg.num_words, cfg.embedding_dim, cfg.units, cfg.dropout)
    keras_init(model)
    if not model.lstm.fused:  # pragma: no cover
        raise RuntimeError("fusedrnn.torch.LSTM fell back to PyTorch's implementation for this configuration")
    net = DistributedDataParallel(model) if d.enabled else model
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    torch.manual_seed(cfg.seed + 1 + d.rank)  # each process draws its own dropout masks

    sampler = DistributedSampler(TensorDataset(x, y), num_replicas=d.world_size, rank=d.rank, shuffle=True,
                                 seed=cfg.seed)
    loader = DataLoader(TensorDataset(x, y), batch_size=cfg.batch_size // d.world_size, sampler=sampler)
    steps = len(loader) if cfg.steps_per_epoch is None else min(cfg.steps_per_epoch, len(loader))
    say(f"{len(y):,} training and {len(yv):,} test reviews, {cfg.num_words:,} words, maxlen {cfg.maxlen}; "
        f"{d.world_size} process(es) x {cfg.batch_size // d.world_size} reviews a step, {steps} steps an epoch, "
        f"{torch.get_num_threads()} thread(s) each", flush=True)

    history: Dict[str, List[float]] = {}
    for epoch in range(cfg.epochs):
        sampler.set_epoch(epoch)
        start = time.perf_counter()
        loss_sum = correct = seen = 0.0
        for step, (ids, labels) in enumerate(loader):
            if step >= steps:
                break
            logits = net(ids)
            loss = nn.functional.binary_cross_entropy_with_logits(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach()) * len(labels)
            correct += float(((logits.detach() > 0).float() == labels).sum())
            seen += len(labels)
            if (step + 1) % args.log_every == 0 or step + 1 == steps:
                rate = (step + 1) * cfg.batch_size / (time.perf_counter() - start)
                say(f"epoch {epoch + 1}/{cfg.epochs} step {step + 1}/{steps}: loss {loss_sum / seen:.4f} (rank 0), "
                    f"{rate:,.0f} reviews/s", flush=True)
        loss_sum, correct, seen = d.sum([loss_sum, correct, seen])
        logs = {"loss": loss_sum / seen, "accuracy": correct / seen, **evaluate(model, xv, yv, d),
                "seconds": time.perf_counter() - start}
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
        say(f"epoch {epoch + 1}: loss {logs['loss']:.4f}, accuracy {logs['accuracy']:.4f}; test loss "
            f"{logs['val_loss']:.4f}, test accuracy {logs['val_accuracy']:.4f} ({logs['seconds']:.1f} s)", flush=True)
        if d.is_main and args.checkpoint:
            save_checkpoint(args.checkpoint, model, optimizer, cfg, epoch + 1, history, word_index)
            say(f"saved {args.checkpoint}", flush=True)
    return history


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    d = Dist()
    # Checked before any process waits on another: every process fails alike, none hangs.
    if args.batch_size % d.world_size:
        if d.rank == 0:
            print(f"error: --batch-size: {args.batch_size} does not split evenly over {d.world_size} processes",
                  file=sys.stderr)
        return 2
    try:
        imdb.find_imdb_source(args.data)
    except DataNotFoundError as err:
        if d.local_rank == 0:  # once per machine
            print(f"error: {err}", file=sys.stderr)
        return 2
    threads = args.threads or max(1, (os.cpu_count() or 1) // d.local_world_size)
    torch.set_num_threads(threads)
    fusedrnn.set_num_threads(threads)
    d.init()
    try:
        train(args, d)
    finally:
        d.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
