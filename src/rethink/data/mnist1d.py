"""MNIST-1D (Greydanus 2020), generated procedurally.

Ten 12-point templates (one per digit) are turned into 40-point signals: pad with 36..60
zeros, stretch to 72 points, scale by 1 + 0.4 (u - 0.5), roll by 0..47 places, fill the
padding with correlated noise (Gaussian, scale 0.25, smoothed with a sigma 2 filter), add iid
noise (scale 0.02), shear by 0.75 (u - 0.5) times a ramp over [-0.5, 0.5], resample to 40
points. 500 per class, shuffled, standardized with the set's own mean and standard deviation,
first 4,000 train, last 1,000 test. The published defaults, seed 42, with the draws taken in
the published order from numpy's legacy RandomState.

rethink keeps every dataset as uint8 images, so the standardized signal is quantized:
u8 = round((x - lo) / (hi - lo) * 255) with lo, hi the set's minimum and maximum (recorded in
the provenance). One step is about 0.04 standard deviations, well under the iid noise.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

PARAMS = {
    "num_samples": 5000,
    "train_split": 0.8,
    "template_len": 12,
    "padding": (36, 60),
    "scale_coeff": 0.4,
    "max_translation": 48,
    "corr_noise_scale": 0.25,
    "iid_noise_scale": 2e-2,
    "shear_scale": 0.75,
    "final_seq_length": 40,
    "seed": 42,
}

_TEMPLATES = [
    [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
    [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
    [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
    [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
    [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
    [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
    [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
    [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
    [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
    [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
]


def templates() -> np.ndarray:
    """(10, 12) templates: each standardized, shifted to start at 0, divided by 6."""
    t = np.asarray(_TEMPLATES, dtype=np.float64)
    t = (t - t.mean(1, keepdims=True)) / t.std(1, keepdims=True)
    return (t - t[:, :1]) / 6.0


def _resample(x: np.ndarray, n: int) -> np.ndarray:
    """Linear interpolation of x onto n evenly spaced points over the same span."""
    return np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(x)), x)


def _one(x: np.ndarray, rs: np.random.RandomState, p: dict) -> np.ndarray:
    lo, hi = p["padding"]
    x = np.concatenate([x + 1e-8, np.zeros(lo + int(rs.rand() * (hi - lo + 1)))])
    x = _resample(x, p["template_len"] + hi)  # (72,)
    x = x * (1 + p["scale_coeff"] * (rs.rand() - 0.5))
    k = rs.randint(p["max_translation"])
    x = np.roll(x, k)
    corr = gaussian_filter1d(p["corr_noise_scale"] * rs.randn(len(x)), 2)
    x = np.where(x != 0, x, corr)
    x = x + p["iid_noise_scale"] * rs.randn(len(x))
    x = x - p["shear_scale"] * (rs.rand() - 0.5) * np.linspace(-0.5, 0.5, len(x))
    return _resample(x, p["final_seq_length"])


def generate(params: dict | None = None) -> dict:
    """The float64 signals: {x (N, 40) standardized, y (N,)}, shuffled, before the split."""
    p = dict(PARAMS, **(params or {}))
    rs = np.random.RandomState(p["seed"])
    tpl = templates()
    per_class = p["num_samples"] // len(tpl)
    xs = [_one(tpl[c], rs, p) for c in range(len(tpl)) for _ in range(per_class)]
    ys = np.repeat(np.arange(len(tpl)), per_class)
    order = rs.permutation(len(ys))
    x, y = np.stack(xs)[order], ys[order]
    return {"x": (x - x.mean()) / x.std(), "y": y}


def load_mnist1d() -> dict:
    """MNIST-1D as uint8 (N, 1, 1, 40) tensors, 4,000 train / 1,000 test."""
    g = generate()
    x, y = g["x"], g["y"]
    lo, hi = float(x.min()), float(x.max())
    u8 = np.rint((x - lo) / (hi - lo) * 255).astype(np.uint8)[:, None, None, :]
    split = int(len(y) * PARAMS["train_split"])
    return {
        "x_train": torch.from_numpy(u8[:split].copy()),
        "y_train": torch.from_numpy(y[:split].astype(np.int64)),
        "x_test": torch.from_numpy(u8[split:].copy()),
        "y_test": torch.from_numpy(y[split:].astype(np.int64)),
        "files": ["generated: rethink.data.mnist1d"],
        "notes": {
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in PARAMS.items()},
            "quantization": {"lo": lo, "hi": hi},
        },
    }
