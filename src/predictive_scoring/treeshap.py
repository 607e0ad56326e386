"""Exact TreeSHAP for a LightGBM booster, with per-leaf tables computed once at load.

LightGBM's ``pred_contrib`` runs the path-dependent TreeSHAP recursion (Lundberg et al. 2018),
O(trees x leaves x depth^2) per row. For a leaf whose path splits on the unique features U
(|U| = d), a row's SHAP contribution depends only on which of those features send the row the
leaf's way (the "hot" set): a d-bit mask. So the contribution of every leaf to every feature can be
tabulated for all 2^d masks once (the idea of Fast TreeSHAP v2, Yang 2021), and a row then costs
one mask and d table reads per leaf, O(trees x leaves x depth).

The tables follow LightGBM exactly: the same cover (training counts), the same split decisions
(missing values, zero-as-missing, categorical bitsets) and the same treatment of a feature split
twice on one path (its zero and one fractions multiply). Every leaf is padded to the deepest path
with null features (zero and one fractions both 1), which leaves the Shapley values of the real
features unchanged. The tests hold the output to ``pred_contrib`` within 1e-9.

The same pass yields the booster's prediction (:meth:`TreeShap.explain`): the reached leaf of each
tree is the one no split sends the row away from, and adding those leaves in tree order, then the
binary sigmoid, is what ``Booster.predict`` computes; the tests hold it equal bit for bit.

:meth:`TreeShap.from_booster` returns None for what it does not cover (linear trees, multiclass,
random-forest averaging, or tables over ``max_table_bytes``); callers then use ``pred_contrib``.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np

from predictive_scoring.jit import compiled

__all__ = ["MAX_TABLE_BYTES", "TreeShap"]

logger = logging.getLogger(__name__)

# The tables are built as leaves x 2^depth x depth doubles (1.5 MB for the default model: 148
# trees, 8 leaves, depth 5) and kept compact (2^d x d per leaf with d unique features); past this
# many bytes built, or 8 unique features on one path, pred_contrib is the better trade.
MAX_TABLE_BYTES = 256 * 1024 * 1024
_MAX_DEPTH = 8
# Rows per thread from which splitting a matrix across cores pays for starting the threads.
_ROWS_PER_THREAD = 256
# Read once: os.cpu_count() reads sysfs, which costs more than a one-row explanation.
_CORES = os.cpu_count() or 1
# LightGBM's kZeroThreshold (a float literal 1e-35f), as a double.
_ZERO = float(np.float32(1e-35))


@dataclass(frozen=True)
class _Tree:
    """One tree's arrays as LightGBM's model text holds them."""

    split_feature: np.ndarray
    threshold: np.ndarray
    decision_type: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf_value: np.ndarray
    leaf_count: np.ndarray
    internal_count: np.ndarray
    cat_boundaries: np.ndarray
    cat_threshold: np.ndarray


def _array(fields: dict[str, str], key: str, dtype: type) -> np.ndarray:
    text = fields.get(key, "").strip()
    return np.array(text.split(" ") if text else [], dtype=dtype)


def _parse_trees(text: str) -> tuple[dict[str, str], list[_Tree]] | None:
    """The header fields and the trees of a LightGBM model text, or None if unsupported."""
    header: dict[str, str] = {}
    blocks: list[dict[str, str]] = []
    current = header
    for line in text.splitlines():
        if line.startswith("Tree="):
            current = {}
            blocks.append(current)
        elif line.startswith("end of trees"):
            break
        elif line == "average_output":  # random forest: a flag line without a value
            current[line] = "1"
        elif "=" in line:
            key, value = line.split("=", 1)
            current[key] = value
    trees = []
    for fields in blocks:
        if fields.get("is_linear", "0") != "0":
            return None
        trees.append(
            _Tree(
                split_feature=_array(fields, "split_feature", np.int64),
                threshold=_array(fields, "threshold", np.float64),
                decision_type=_array(fields, "decision_type", np.int64),
                left=_array(fields, "left_child", np.int64),
                right=_array(fields, "right_child", np.int64),
                leaf_value=_array(fields, "leaf_value", np.float64),
                leaf_count=_array(fields, "leaf_count", np.float64),
                internal_count=_array(fields, "internal_count", np.float64),
                cat_boundaries=_array(fields, "cat_boundaries", np.int64),
                cat_threshold=_array(fields, "cat_threshold", np.uint32),
            )
        )
    return header, trees


def _walk(tree: _Tree) -> tuple[list[int], dict[int, tuple[list[int], list[float]]]]:
    """Each internal node's bit (its feature's position among the unique features on the path
    from the root) and each leaf's unique features and zero fractions, in that order."""
    bits = [0] * tree.split_feature.size
    leaves: dict[int, tuple[list[int], list[float]]] = {}
    if tree.left.size == 0:
        return bits, leaves

    def count(node: int) -> float:
        return float(tree.internal_count[node] if node >= 0 else tree.leaf_count[~node])

    stack: list[tuple[int, list[int], list[float]]] = [(0, [], [])]
    while stack:
        node, order, zero = stack.pop()
        if node < 0:
            leaves[~node] = (order, zero)
            continue
        f = int(tree.split_feature[node])
        if f not in order:
            order, zero = [*order, f], [*zero, 1.0]
        k = order.index(f)
        bits[node] = 1 << k
        for child in (int(tree.left[node]), int(tree.right[node])):
            child_zero = list(zero)
            child_zero[k] *= count(child) / count(node)
            stack.append((child, order, child_zero))
    return bits, leaves


def _weights(depth: int) -> np.ndarray:
    """W[J, m * depth + k]: the Shapley weight with which the zero-fraction product over the
    feature set J enters feature k's value under hot mask m (0 where J cannot occur).

    For hot mask m and feature k, each subset S of the hot features other than k contributes
    |S|! (depth - |S| - 1)! / depth! times the product of the zero fractions of the rest,
    J = all features but S and k.
    """
    size = 1 << depth
    full = size - 1
    mask = np.arange(size)[:, None, None]
    bit = (1 << np.arange(depth))[None, :, None]
    subset = np.arange(size)[None, None, :]
    valid = ((subset & bit) == 0) & ((subset & ~mask) == 0)
    popcount = np.array([bin(v).count("1") for v in range(size)])
    shapley = np.array(
        [math.factorial(s) * math.factorial(depth - s - 1) for s in range(depth)], dtype=np.float64
    ) / math.factorial(depth)
    m_idx, k_idx, s_idx = np.nonzero(np.broadcast_to(valid, (size, depth, size)))
    rest = full & ~s_idx & ~(1 << k_idx)
    w = np.zeros((size, size * depth))
    w[rest, m_idx * depth + k_idx] = shapley[popcount[s_idx]]
    return w


@compiled
def _goes_left(
    x: float,
    threshold: float,
    decision: int,
    cat_words: np.ndarray,
    cat_start: int,
    cat_len: int,
) -> bool:
    """LightGBM's Tree::Decision on raw feature values (numerical or categorical)."""
    if decision & 1:
        if math.isnan(x) or x <= -1.0 or x >= 2147483648.0:
            return False
        value = int(x)
        word = value >> 5
        if word >= cat_len:
            return False
        return bool((cat_words[cat_start + word] >> np.uint32(value & 31)) & np.uint32(1))
    if -_ZERO <= x <= _ZERO:  # LightGBM's dense rows store these as exactly zero
        x = 0.0
    missing = (decision >> 2) & 3
    if math.isnan(x) and missing != 2:
        x = 0.0
    if (missing == 1 and -_ZERO <= x <= _ZERO) or (missing == 2 and math.isnan(x)):
        return bool(decision & 2)
    return x <= threshold


@compiled
def _contributions(
    X: np.ndarray,
    out: np.ndarray,
    node_start: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    decision: np.ndarray,
    cat_start: np.ndarray,
    cat_len: np.ndarray,
    cat_words: np.ndarray,
    left_child: np.ndarray,
    right_child: np.ndarray,
    node_bit: np.ndarray,
    leaf_start: np.ndarray,
    unique_start: np.ndarray,
    unique_feature: np.ndarray,
    table_start: np.ndarray,
    table: np.ndarray,
    full: int,
    leaf_value: np.ndarray,
    stump_value: np.ndarray,
    sigmoid: float,
    pred: np.ndarray,
) -> None:
    n_trees = node_start.size - 1
    width = max(1, int(np.max(np.diff(leaf_start))))
    # Bits of the unique features that send the row away from each node / leaf, top-down:
    # a node's bit is its feature's position along the path from the root, the same for every
    # leaf below it, so a leaf's hot mask is full minus what its ancestors cleared.
    cleared_node = np.zeros(width, dtype=np.int64)
    cleared_leaf = np.zeros(width, dtype=np.int64)
    for i in range(X.shape[0]):
        row = X[i]
        phi = out[i]
        # The booster's raw score on the way: the reached leaf (the one no node sends the row
        # away from) of every tree, added in tree order from 0.0 as LightGBM's PredictRaw does.
        raw = 0.0
        for t in range(n_trees):
            first = node_start[t]
            if node_start[t + 1] == first:
                raw += stump_value[t]
                continue
            cleared_node[0] = 0
            for j in range(first, node_start[t + 1]):
                here = cleared_node[j - first]
                away = here | node_bit[j]
                if _goes_left(
                    row[feature[j]], threshold[j], decision[j], cat_words, cat_start[j], cat_len[j]
                ):
                    to_left, to_right = here, away
                else:
                    to_left, to_right = away, here
                child = left_child[j]
                if child >= 0:
                    cleared_node[child] = to_left
                else:
                    cleared_leaf[~child] = to_left
                child = right_child[j]
                if child >= 0:
                    cleared_node[child] = to_right
                else:
                    cleared_leaf[~child] = to_right
            base_leaf = leaf_start[t]
            for leaf in range(leaf_start[t + 1] - base_leaf):
                g = base_leaf + leaf
                base = unique_start[g]
                d = unique_start[g + 1] - base
                if cleared_leaf[leaf] == 0:
                    raw += leaf_value[g]
                at = table_start[g] + ((full & ~cleared_leaf[leaf]) & ((1 << d) - 1)) * d
                for k in range(d):
                    phi[unique_feature[base + k]] += table[at + k]
        # LightGBM's binary ConvertOutput, with the same libm exp.
        pred[i] = 1.0 / (1.0 + math.exp(-sigmoid * raw)) if sigmoid > 0 else raw


class TreeShap:
    """Exact SHAP values of a LightGBM binary booster from precomputed per-leaf tables."""

    def __init__(
        self, arrays: dict[str, np.ndarray], *, n_features: int, depth: int, sigmoid: float = 0.0
    ) -> None:
        self._arrays = arrays
        self.n_features = n_features
        self.depth = depth
        # The binary objective's sigmoid parameter: :meth:`explain`'s prediction is then the
        # probability ``Booster.predict`` gives; 0 for any other objective (the raw score).
        self.sigmoid = sigmoid

    @classmethod
    def from_booster(
        cls, booster: lgb.Booster, *, max_table_bytes: int = MAX_TABLE_BYTES
    ) -> TreeShap | None:
        """Tables for ``booster`` (its best iteration, as ``predict`` uses), or None when the
        model is outside what the tables cover or they would exceed ``max_table_bytes``."""
        try:
            parsed = _parse_trees(booster.model_to_string())
            if parsed is None:
                return None
            header, trees = parsed
            if header.get("num_tree_per_iteration", "1") != "1" or "average_output" in header:
                return None
            walked = [_walk(tree) for tree in trees]
            depth = max((len(o) for _, leaves in walked for o, _ in leaves.values()), default=0)
            n_leaves = sum(len(leaves) for _, leaves in walked)
            if depth > _MAX_DEPTH or n_leaves * (1 << depth) * depth * 8 > max_table_bytes:
                return None
            arrays = _build(trees, walked, depth)
            sigmoid = _binary_sigmoid(header.get("objective", ""))
        except (ValueError, IndexError, KeyError, ZeroDivisionError) as exc:
            # A model text this parser does not follow: LightGBM's own pred_contrib still works.
            logger.warning("exact SHAP tables not built (%s); using LightGBM pred_contrib", exc)
            return None
        return cls(arrays, n_features=booster.num_feature(), depth=depth, sigmoid=sigmoid)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """SHAP values per feature (rows x features), without the bias column."""
        return self.explain(X)[0]

    def explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """SHAP values per feature (rows x features, without the bias column) and each row's
        prediction, from one pass over the trees.

        The prediction is ``Booster.predict``'s, bit for bit: the same leaves added in the same
        order, then for a binary objective the same sigmoid (the probability); the raw score
        for any other objective.
        """
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected a matrix with {self.n_features} columns, got {X.shape}")
        out = np.zeros((X.shape[0], self.n_features))
        pred = np.empty(X.shape[0])
        threads = min(X.shape[0] // _ROWS_PER_THREAD, _CORES)
        if threads <= 1:
            if X.shape[0]:
                self._run(X, out, pred)
            return out, pred
        # The kernel releases the GIL, so blocks of rows run on separate cores.
        bounds = np.linspace(0, X.shape[0], threads + 1).astype(np.int64).tolist()
        blocks = list(itertools.pairwise(bounds))
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(
                pool.map(
                    lambda b: self._run(X[b[0] : b[1]], out[b[0] : b[1]], pred[b[0] : b[1]]),
                    blocks,
                )
            )
        return out, pred

    def _run(self, X: np.ndarray, out: np.ndarray, pred: np.ndarray) -> None:
        a = self._arrays
        _contributions(
            X,
            out,
            a["node_start"],
            a["feature"],
            a["threshold"],
            a["decision"],
            a["cat_start"],
            a["cat_len"],
            a["cat_words"],
            a["left_child"],
            a["right_child"],
            a["node_bit"],
            a["leaf_start"],
            a["unique_start"],
            a["unique_feature"],
            a["table_start"],
            a["table"],
            (1 << self.depth) - 1,
            a["leaf_value"],
            a["stump_value"],
            self.sigmoid,
            pred,
        )


def _binary_sigmoid(objective: str) -> float:
    """The sigmoid parameter of LightGBM's ``binary`` objective line ("binary sigmoid:1"), or 0
    for any other objective (whose prediction is then left as the raw score)."""
    name, *options = objective.split(" ")
    if name != "binary":
        return 0.0
    for option in options:
        key, _, value = option.partition(":")
        if key == "sigmoid":
            return float(value)
    return 1.0


def _build(
    trees: list[_Tree],
    walked: list[tuple[list[int], dict[int, tuple[list[int], list[float]]]]],
    depth: int,
) -> dict[str, np.ndarray]:
    """Flatten the trees into the kernel's arrays and compute the per-leaf tables."""
    node_start, feature, threshold, decision, node_bit = [0], [], [], [], []
    left_child, right_child = [], []
    cat_start, cat_len = [], []
    cat_words: list[int] = []
    leaf_start, unique_start, unique_feature, zero_rows, values = [0], [0], [], [], []
    stump_value: list[float] = []  # a tree without splits: its one leaf's value, else 0
    for tree, (bits, leaves) in zip(trees, walked, strict=True):
        no_split = tree.split_feature.size == 0 and tree.leaf_value.size > 0
        stump_value.append(float(tree.leaf_value[0]) if no_split else 0.0)
        word_offset = len(cat_words)
        cat_words.extend(tree.cat_threshold.tolist())
        n_nodes = tree.split_feature.size
        for node in range(n_nodes):
            feature.append(int(tree.split_feature[node]))
            threshold.append(float(tree.threshold[node]))
            decision.append(int(tree.decision_type[node]))
            node_bit.append(bits[node])
            left_child.append(int(tree.left[node]))
            right_child.append(int(tree.right[node]))
            if int(tree.decision_type[node]) & 1:
                idx = int(tree.threshold[node])
                lo, hi = int(tree.cat_boundaries[idx]), int(tree.cat_boundaries[idx + 1])
                cat_start.append(word_offset + lo)
                cat_len.append(hi - lo)
            else:
                cat_start.append(0)
                cat_len.append(0)
        node_start.append(node_start[-1] + n_nodes)
        for leaf in range(len(leaves)):
            order, zero = leaves[leaf]
            unique_feature.extend(order)
            unique_start.append(len(unique_feature))
            zero_rows.append(zero + [1.0] * (depth - len(zero)))
            values.append(float(tree.leaf_value[leaf]))
        leaf_start.append(len(values))
    size = 1 << depth
    if values and depth:
        z = np.array(zero_rows, dtype=np.float64)
        products = np.ones((len(values), size))
        for mask in range(1, size):
            low = mask & -mask
            products[:, mask] = products[:, mask ^ low] * z[:, low.bit_length() - 1]
        table = (products @ _weights(depth)).reshape(len(values), size, depth)
        hot = (np.arange(size)[:, None] >> np.arange(depth)[None, :]) & 1
        table *= np.array(values)[:, None, None] * (hot[None, :, :] - z[:, None, :])
    else:
        table = np.zeros((len(values), size, max(depth, 1)))
    as_int = {
        "node_start": node_start,
        "feature": feature,
        "decision": decision,
        "cat_start": cat_start,
        "cat_len": cat_len,
        "left_child": left_child,
        "right_child": right_child,
        "node_bit": node_bit,
        "leaf_start": leaf_start,
        "unique_start": unique_start,
        "unique_feature": unique_feature,
    }
    arrays = {name: np.array(v, dtype=np.int64) for name, v in as_int.items()}
    arrays["threshold"] = np.array(threshold, dtype=np.float64)
    arrays["leaf_value"] = np.array(values, dtype=np.float64)
    arrays["stump_value"] = np.array(stump_value, dtype=np.float64)
    arrays["cat_words"] = np.array(cat_words, dtype=np.uint32)
    # Compact: a leaf with d unique features only ever reads the rows whose other bits are all
    # hot, and only their first d values, so it keeps 2^d x d numbers (the same ones) instead of
    # 2^depth x depth; the tables then fit a core's L2 cache.
    widths = np.diff(arrays["unique_start"]) if values else np.zeros(0, dtype=np.int64)
    blocks = []
    for g, d in enumerate(widths.tolist()):
        rows = np.arange(1 << d) | (size - 1) & ~((1 << d) - 1)
        blocks.append(table[g, rows, :d].ravel())
    sizes = [b.size for b in blocks]
    arrays["table_start"] = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    arrays["table"] = (
        np.ascontiguousarray(np.concatenate(blocks)) if blocks else np.zeros(0, dtype=np.float64)
    )
    return arrays
