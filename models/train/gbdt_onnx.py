"""A LightGBM binary classifier as an ONNX graph of standard tensor ops.

Stock tract evaluates ONNX `TreeEnsembleClassifier` in time quadratic in the
number of trees and wrongly for `BRANCH_GTE` nodes, so the ensemble is lowered
to a tree traversal that every runtime runs the same way: all trees advance one
level per step, in lock-step, for as many steps as the deepest tree is deep.

    node  <- roots                                   [N, T] (int64)
    repeat depth times:
        f    <- feature[node]; t <- threshold[node]  (Gather)
        x    <- features[:, f]                       (GatherElements)
        node <- x <= t ? left[node] : right[node]    (LessOrEqual, Where)
    score <- sigmoid(init + sum over trees of value[node])

A leaf is a node whose children are itself, so trees of different depths stay
put once they reach a leaf. Nodes of all trees share one table.

Exactness: LightGBM compares the float32 feature, widened to double, with a
double threshold (`x <= t`). The graph compares in float32 against the largest
float32 not above `t`, which gives the same branch for every float32 `x`. Leaf
values are summed in float32 (a relative error around 1e-7 on the logit).
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


def graph(tables: Tables, mask: np.ndarray):
    """Nodes and initializers: `features` [N, n] -> `score` [N, 1].

    `mask` (float32, 0 or 1 per column) is applied first, as in training: the
    masked columns are zero for the trees, so they can never be split on."""
    from onnx import helper, numpy_helper

    inits = [
        numpy_helper.from_array(mask.reshape(1, -1).astype(np.float32), "mask"),
        numpy_helper.from_array(tables.feature, "t_feature"),
        numpy_helper.from_array(tables.threshold, "t_threshold"),
        numpy_helper.from_array(tables.left, "t_left"),
        numpy_helper.from_array(tables.right, "t_right"),
        numpy_helper.from_array(tables.value, "t_value"),
        numpy_helper.from_array(tables.roots.reshape(1, -1), "t_roots"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "i0"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "i1"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
    ]
    nodes = [
        helper.make_node("Mul", ["features", "mask"], ["x"]),
        # A zero column [N, 1] in int64, so the roots broadcast to [N, T].
        helper.make_node("Slice", ["x", "i0", "i1", "axis1"], ["col0"]),
        helper.make_node("Mul", ["col0", "zero_f"], ["zcol"]),
        helper.make_node("Cast", ["zcol"], ["zcol_i"], to=7),
        helper.make_node("Add", ["zcol_i", "t_roots"], ["node0"]),
    ]
    inits.append(numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero_f"))
    cur = "node0"
    for d in range(tables.depth):
        p = f"d{d}_"
        nodes += [
            helper.make_node("Gather", ["t_feature", cur], [p + "f"]),
            helper.make_node("Gather", ["t_threshold", cur], [p + "t"]),
            helper.make_node("GatherElements", ["x", p + "f"], [p + "x"], axis=1),
            helper.make_node("LessOrEqual", [p + "x", p + "t"], [p + "le"]),
            helper.make_node("Gather", ["t_left", cur], [p + "l"]),
            helper.make_node("Gather", ["t_right", cur], [p + "r"]),
            helper.make_node("Where", [p + "le", p + "l", p + "r"], [p + "node"]),
        ]
        cur = p + "node"
    nodes += [
        helper.make_node("Gather", ["t_value", cur], ["leaf"]),
        helper.make_node("ReduceSum", ["leaf", "axis1"], ["logit"], keepdims=1),
        helper.make_node("Sigmoid", ["logit"], ["score"]),
    ]
    return nodes, inits
