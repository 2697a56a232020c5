"""A LightGBM binary classifier as an ONNX graph of standard tensor ops.

Stock tract evaluates ONNX `TreeEnsembleClassifier` in time quadratic in the
number of trees and wrongly for `BRANCH_GTE` nodes, so the ensemble is lowered
to the matrix form (`graph_gemm`): every split is compared at once, a batched
MatMul with a per-tree path matrix finds the one leaf each tree reaches, and
the reached leaves' values are summed. Twelve ops, whatever the ensemble size.

Exactness: LightGBM compares the float32 feature, widened to double, with a
double threshold (`x <= t`). The graph compares in float32 against the largest
float32 not above `t`, which gives the same branch for every float32 `x`. Leaf
values are summed in float32 (a relative error around 1e-7 on the logit).

Measured (`cargo bench -p vigil-models --bench extract -- --bundle DIR`,
release, 3,600 calls): 50 trees of 15 leaves (shipped) p50 26 us, p99 39-43
us; 60 trees p99 50 us; 100 trees of 15 leaves p99 67 us; the network p50 10
us. In the dev profile 200 trees of 31 leaves took p50 243 us and a lock-step
traversal (Gather/Where per level, depth 20) 341 us. tract runs the per-tree
batched products one by one, so the cost grows with the number of trees.
"""

from __future__ import annotations

import numpy as np


def float32_floor(t: float) -> np.float32:
    """The largest float32 <= t: for float32 x, x <= t iff x <= float32_floor(t)."""
    f = np.float32(t)
    if float(f) > t:
        f = np.nextafter(f, np.float32(-np.inf))
    return f


class Tables:
    """The flattened node tables of a LightGBM booster (binary objective)."""

    def __init__(self, booster):
        dump = booster.dump_model()
        if dump.get("objective", "").split()[0] != "binary":
            raise ValueError(f"gbdt_onnx: objective {dump.get('objective')!r} is not binary")
        feature: list[int] = []
        threshold: list[np.float32] = []
        left: list[int] = []
        right: list[int] = []
        value: list[float] = []
        roots: list[int] = []
        depth = 0

        def walk(node: dict, level: int) -> int:
            nonlocal depth
            me = len(feature)
            feature.append(0)
            threshold.append(np.float32(0))
            left.append(me)
            right.append(me)
            value.append(0.0)
            if "leaf_value" in node or "leaf_index" in node:
                value[me] = float(node.get("leaf_value", 0.0))
                depth = max(depth, level)
                return me
            if node.get("decision_type") != "<=":
                raise ValueError(f"gbdt_onnx: decision type {node.get('decision_type')!r} (only <= is lowered)")
            if node.get("missing_type") not in ("None", "NaN"):
                raise ValueError(f"gbdt_onnx: missing type {node.get('missing_type')!r} (zero-as-missing not lowered)")
            feature[me] = int(node["split_feature"])
            threshold[me] = float32_floor(float(node["threshold"]))
            left[me] = walk(node["left_child"], level + 1)
            right[me] = walk(node["right_child"], level + 1)
            return me

        for tree in dump["tree_info"]:
            roots.append(walk(tree["tree_structure"], 0))
        self.feature = np.array(feature, dtype=np.int64)
        self.threshold = np.array(threshold, dtype=np.float32)
        self.left = np.array(left, dtype=np.int64)
        self.right = np.array(right, dtype=np.int64)
        self.value = np.array(value, dtype=np.float32)
        self.roots = np.array(roots, dtype=np.int64)
        self.depth = depth
        self.trees = len(roots)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """What the graph computes, in numpy: the probability per row of x."""
        x = x.astype(np.float32)
        node = np.broadcast_to(self.roots, (x.shape[0], self.trees)).copy()
        rows = np.arange(x.shape[0])[:, None]
        for _ in range(self.depth):
            go_left = x[rows, self.feature[node]] <= self.threshold[node]
            node = np.where(go_left, self.left[node], self.right[node])
        logit = self.value[node].sum(axis=1, dtype=np.float32)
        return 1.0 / (1.0 + np.exp(-logit.astype(np.float64)))


def gemm_tables(tables: Tables):
    """Per-tree matrices for the matrix form (see `graph_gemm`): for tree t,
    internal node i and leaf l, path[t, i, l] is +1 when l lies under i's left
    child, -1 under its right child, 0 otherwise; lefts[t, l] counts the +1s on
    l's path; value[t, l] is the leaf's value. Trees are padded to the largest
    internal-node and leaf counts (padding nodes compare feature 0 and lead
    nowhere; padding leaves can never match, their target is -1)."""
    per_tree = []
    for root in tables.roots:
        internal: list[int] = []
        leaves: list[tuple[int, list[tuple[int, int]]]] = []

        def walk(node: int, path: list[tuple[int, int]]):
            if tables.left[node] == node:
                leaves.append((node, path))
                return
            internal.append(node)
            walk(int(tables.left[node]), path + [(node, 1)])
            walk(int(tables.right[node]), path + [(node, -1)])

        walk(int(root), [])
        per_tree.append((internal, leaves))
    n_i = max(1, max(len(i) for i, _ in per_tree))
    n_l = max(len(lv) for _, lv in per_tree)
    t = len(per_tree)
    feature = np.zeros((t, n_i), dtype=np.int64)
    threshold = np.zeros((t, n_i), dtype=np.float32)
    path = np.zeros((t, n_i, n_l), dtype=np.float32)
    lefts = np.full((t, n_l), -1.0, dtype=np.float32)
    value = np.zeros((t, n_l), dtype=np.float32)
    for k, (internal, leaves) in enumerate(per_tree):
        col = {node: j for j, node in enumerate(internal)}
        for j, node in enumerate(internal):
            feature[k, j] = tables.feature[node]
            threshold[k, j] = tables.threshold[node]
        for l, (leaf, steps) in enumerate(leaves):
            value[k, l] = tables.value[leaf]
            lefts[k, l] = sum(1 for _, d in steps if d == 1)
            for node, d in steps:
                path[k, col[node], l] = d
    return feature, threshold, path, lefts, value


def graph_gemm(tables: Tables, mask: np.ndarray):
    """The matrix form of the ensemble, in a constant number of ops:

        go_left[n, t, i] = x[n, feature[t, i]] <= threshold[t, i]     (0 or 1)
        reached[n, t, l] = (go_left[n, t, :] @ path[t, :, l]) == lefts[t, l]
        score[n]         = sigmoid(sum over t, l of reached * value)

    A leaf's path sum equals its count of left turns only if every left turn
    on its path was taken (+1 each) and no right turn was (-1 each would lower
    it), so exactly one leaf per tree is reached. Sums of at most a few dozen
    +-1 terms are exact in float32."""
    from onnx import helper, numpy_helper

    feature, threshold, path, lefts, value = gemm_tables(tables)
    t, n_i = feature.shape
    n_l = value.shape[1]
    inits = [
        numpy_helper.from_array(mask.reshape(1, -1).astype(np.float32), "mask"),
        numpy_helper.from_array(feature.reshape(-1), "g_feature"),
        numpy_helper.from_array(threshold.reshape(1, -1), "g_threshold"),
        numpy_helper.from_array(np.array([-1, t, 1, n_i], dtype=np.int64), "g_shape"),
        numpy_helper.from_array(path, "g_path"),
        numpy_helper.from_array(lefts.reshape(t, 1, n_l), "g_lefts"),
        numpy_helper.from_array(value.reshape(t, 1, n_l), "g_value"),
        numpy_helper.from_array(np.array([1, 2, 3], dtype=np.int64), "g_axes"),
        numpy_helper.from_array(np.array([-1, 1], dtype=np.int64), "g_out"),
    ]
    nodes = [
        helper.make_node("Mul", ["features", "mask"], ["x"]),
        helper.make_node("Gather", ["x", "g_feature"], ["xs"], axis=1),
        helper.make_node("LessOrEqual", ["xs", "g_threshold"], ["le"]),
        helper.make_node("Cast", ["le"], ["lef"], to=1),
        helper.make_node("Reshape", ["lef", "g_shape"], ["le4"]),
        helper.make_node("MatMul", ["le4", "g_path"], ["sums"]),
        helper.make_node("Equal", ["sums", "g_lefts"], ["hit"]),
        helper.make_node("Cast", ["hit"], ["hitf"], to=1),
        helper.make_node("Mul", ["hitf", "g_value"], ["contrib"]),
        helper.make_node("ReduceSum", ["contrib", "g_axes"], ["logit1"], keepdims=0),
        helper.make_node("Reshape", ["logit1", "g_out"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["score"]),
    ]
    return nodes, inits
