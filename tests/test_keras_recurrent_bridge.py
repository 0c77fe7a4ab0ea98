"""fusedrnn.keras._tf_bridge: where the forward caches go. A forward with a tape watching keeps its
cache until its backward consumes it; inference keeps none; a backward whose cache is missing
(traced without a tape, or evicted) recomputes the forward and still gives the right gradient."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "tensorflow":
    pytest.skip("these tests run on Keras's TensorFlow backend", allow_module_level=True)

import fusedrnn.keras as fk  # noqa: E402
from fusedrnn.keras import _tf_bridge as bridge  # noqa: E402

from _keras_recurrent_helpers import assert_all_close, twin_layers  # noqa: E402


def _delta(before, after, *keys):
    return tuple(after[k] - before[k] for k in keys)


def _loss_and_grads(fn, x, variables):
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(tf.sin(fn(x)))
    return [np.asarray(g) for g in tape.gradient(loss, [x, *variables])]


def test_cache_lifecycle_and_recompute(seed, rng):
    B, T, I, H = 3, 5, 4, 6
    fused, stock = twin_layers("lstm", H, (B, T, I), rng, return_sequences=True)
    x = tf.constant(rng.standard_normal((B, T, I)).astype(np.float32))
    want = _loss_and_grads(stock, x, stock.trainable_weights)

    s0 = bridge.cache_stats()
    fused(x)                                     # eager, no tape: inference
    s1 = bridge.cache_stats()
    assert _delta(s0, s1, "inference", "stored") == (1, 0)

    got = _loss_and_grads(fused, x, fused.trainable_weights)   # eager with a tape
    s2 = bridge.cache_stats()
    assert _delta(s1, s2, "stored", "consumed", "recomputed") == (1, 1, 0) and s2["live_entries"] == s1["live_entries"]
    assert_all_close(got, want, "eager gradients", seed)

    traced = tf.function(lambda v: fused(v))     # traced with no tape inside: keeps no cache
    traced(x)
    got = _loss_and_grads(traced, x, fused.trainable_weights)  # differentiated from outside
    s3 = bridge.cache_stats()
    assert _delta(s2, s3, "stored", "recomputed") == (0, 1)
    assert_all_close(got, want, "gradients through a recomputed forward", seed)


def test_eviction_keeps_gradients_right(seed, rng):
    B, T, I, H = 2, 4, 3, 5
    fused, stock = twin_layers("gru", H, (B, T, I), rng, return_sequences=True)
    x = tf.constant(rng.standard_normal((B, T, I)).astype(np.float32))
    want = _loss_and_grads(lambda v: stock(stock(v)[..., :I] * 0.5 + v), x, stock.trainable_weights)
    bridge.set_cache_limits(max_entries=1)
    try:
        before = bridge.cache_stats()
        got = _loss_and_grads(lambda v: fused(fused(v)[..., :I] * 0.5 + v), x, fused.trainable_weights)
        after = bridge.cache_stats()
    finally:
        bridge.set_cache_limits(max_entries=bridge.MAX_ENTRIES)
    assert _delta(before, after, "stored", "evicted", "recomputed") == (2, 1, 1)
    assert_all_close(got, want, "gradients after an eviction", seed)


def test_unconsumed_caches_are_bounded(rng):
    layer = fk.SimpleRNN(4)
    x = tf.constant(rng.standard_normal((2, 3, 2)).astype(np.float32))
    bridge.set_cache_limits(max_entries=2)
    try:
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            for _ in range(4):           # forwards whose gradient is never asked for
                layer(x)
        assert bridge.cache_stats()["live_entries"] <= 2
    finally:
        bridge.set_cache_limits(max_entries=bridge.MAX_ENTRIES)
        del tape
        bridge.clear_caches()
    assert bridge.cache_stats()["live_entries"] == 0 and bridge.cache_stats()["live_bytes"] == 0


def test_cache_limits_are_checked():
    with pytest.raises(ValueError, match="max_entries"):
        bridge.set_cache_limits(max_entries=0)
    with pytest.raises(ValueError, match="max_bytes"):
        bridge.set_cache_limits(max_bytes=-1)
