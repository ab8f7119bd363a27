"""A BERT encoder written straight into ONNX from numpy weights: no torch, no tracing.

The graph is the one onnxruntime's transformer optimizer makes of optimum's torch export
(`export.quantize.optimize`), built node for node with the fused com.microsoft ops:

    input_ids ─ Gather(word) ┐
    token_type_ids ─ Gather(type) ┼ Add ─ LayerNormalization ─┐
    positions 0..seq-1 ─ Slice(pos) ┘                           │
    attention_mask ─ Cast ─ ReduceSum ─ mask_index              │
    per layer: Attention(qkv) ─ MatMul(out) ─ SkipLayerNormalization(+bias, residual)
               ─ MatMul(in) ─ BiasGelu ─ MatMul(out) ─ SkipLayerNormalization(+bias, residual)
    ─> last_hidden_state (batch, seq, hidden)

So the bundled model can be built, quantized and served on a machine without torch
(`export.offline`), and its fp32 output equals the torch export's (tests/test_bert_graph.py).
`mask_index` is the number of real tokens per row: it assumes right padding, which the
tokenizers of the serving path and the plugin use.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from export.graph import HIDDEN_OUTPUT

OPSET = 18
# What the optimizer's Attention fusion writes: masked scores become the lowest float32.
MASK_FILTER_VALUE = float(np.finfo(np.float32).min)


def bert_graph(state: dict[str, np.ndarray], config: dict) -> onnx.ModelProto:
    """The fused fp32 graph of a BertModel (no pooler) from its state dict, names as in
    `transformers` (`embeddings.word_embeddings.weight`, `encoder.layer.0...`)."""
    hidden = int(config["hidden_size"])
    eps = float(config["layer_norm_eps"])
    b = _Builder(state)
    x = b.embeddings(eps)
    b.node("Cast", ["attention_mask"], ["attention_mask_int32"], to=TensorProto.INT32)
    b.node(
        "ReduceSum",
        ["attention_mask_int32", b.const("axis_1", np.array([1], np.int64))],
        ["mask_index"],
        keepdims=0,
    )
    for i in range(int(config["num_hidden_layers"])):
        x = b.layer(i, x, int(config["num_attention_heads"]), eps)
    b.node("Identity", [x], [HIDDEN_OUTPUT])

    ids = ["batch_size", "sequence_length"]
    graph = helper.make_graph(
        b.nodes,
        "xlir_bert",
        [helper.make_tensor_value_info(n, TensorProto.INT64, ids) for n in _INPUTS],
        [helper.make_tensor_value_info(HIDDEN_OUTPUT, TensorProto.FLOAT, [*ids, hidden])],
        b.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)],
        producer_name="xlir.export.bert_graph",
    )
    model.ir_version = 8
    return model


_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class _Builder:
    """Collects nodes and initializers; weights are taken from `state` by their BERT names."""

    def __init__(self, state: dict[str, np.ndarray]):
        self.state = state
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def node(self, op: str, inputs: list[str], outputs: list[str], **attrs) -> str:
        domain = "com.microsoft" if op in _CONTRIB else ""
        name = f"{op}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, domain=domain, **attrs))
        return outputs[0]

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, name: str, transpose: bool = False) -> str:
        """An fp32 weight of `state` (a Linear's (out, in) matrix transposed for MatMul)."""
        value = np.asarray(self.state[name], np.float32)
        return self.const(name, value.T if transpose else value)

    def embeddings(self, eps: float) -> str:
        e = "embeddings"
        self.node("Shape", ["input_ids"], ["shape"])
        self.node("Gather", ["shape", self.const("one", np.array(1, np.int64))], ["seq"], axis=0)
        self.node("Unsqueeze", ["seq", self.const("axis_0", np.array([0], np.int64))], ["seq_1"])
        self.node(
            "Slice",
            [
                self.weight(f"{e}.position_embeddings.weight"),
                self.const("zero_1", np.array([0], np.int64)),
                "seq_1",
                "axis_0",
            ],
            ["positions"],
        )
        self.node("Gather", [self.weight(f"{e}.word_embeddings.weight"), "input_ids"], ["words"])
        types = self.weight(f"{e}.token_type_embeddings.weight")
        self.node("Gather", [types, "token_type_ids"], ["types"])
        self.node("Add", ["words", "types"], ["words_types"])
        self.node("Add", ["words_types", "positions"], ["embedded"])
        return self.node(
            "LayerNormalization",
            ["embedded", self.weight(f"{e}.LayerNorm.weight"), self.weight(f"{e}.LayerNorm.bias")],
            ["embeddings_out"],
            axis=-1,
            epsilon=eps,
        )

    def layer(self, i: int, x: str, heads: int, eps: float) -> str:
        p = f"encoder.layer.{i}"
        parts = ("query", "key", "value")
        qkv_w = np.concatenate([self.state[f"{p}.attention.self.{n}.weight"].T for n in parts], 1)
        qkv_b = np.concatenate([self.state[f"{p}.attention.self.{n}.bias"] for n in parts])
        attention = self.node(
            "Attention",
            [
                x,
                self.const(f"{p}.attention.qkv.weight", qkv_w.astype(np.float32)),
                self.const(f"{p}.attention.qkv.bias", qkv_b.astype(np.float32)),
                "mask_index",
            ],
            [f"{p}.attention"],
            num_heads=heads,
            mask_filter_value=MASK_FILTER_VALUE,
        )
        x = self._dense_skip_norm(attention, x, f"{p}.attention.output", eps)
        inner = self.node(
            "MatMul", [x, self.weight(f"{p}.intermediate.dense.weight", True)], [f"{p}.inner"]
        )
        gelu = self.node(
            "BiasGelu", [inner, self.weight(f"{p}.intermediate.dense.bias")], [f"{p}.gelu"]
        )
        return self._dense_skip_norm(gelu, x, f"{p}.output", eps)

    def _dense_skip_norm(self, x: str, residual: str, prefix: str, eps: float) -> str:
        """LayerNorm(x @ W + b + residual): the MatMul, then the fused SkipLayerNormalization."""
        out = self.node("MatMul", [x, self.weight(f"{prefix}.dense.weight", True)], [prefix])
        return self.node(
            "SkipLayerNormalization",
            [
                out,
                residual,
                self.weight(f"{prefix}.LayerNorm.weight"),
                self.weight(f"{prefix}.LayerNorm.bias"),
                self.weight(f"{prefix}.dense.bias"),
            ],
            [f"{prefix}.normed"],
            epsilon=eps,
        )


_CONTRIB = {"Attention", "SkipLayerNormalization", "BiasGelu"}
