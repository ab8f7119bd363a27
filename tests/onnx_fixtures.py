"""A synthetic exported model (ONNX graph + tokenizer.json + xlir.json) built without torch.

The graph is an embedding lookup followed by masked mean pooling and L2 normalisation, so its
vectors are deterministic and easy to recompute in numpy. Also: real multilingual sentences
from `../shared/data/xquad-r` for round-trip tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from xlir_plugin.manifest import EncoderSettings, Manifest, sha256_file

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
XQUAD_LANGS = ("ar", "de", "el", "en", "es", "hi", "ru", "th")


def words_of(texts) -> list[str]:
    """The distinct lower-cased whitespace/punctuation tokens of `texts`, sorted."""
    from tokenizers import pre_tokenizers

    split = pre_tokenizers.Whitespace()
    vocab = set()
    for text in texts:
        vocab.update(w for w, _ in split.pre_tokenize_str(text.lower()))
    return sorted(vocab)


def build_tokenizer(words):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    tokens = list(dict.fromkeys([*SPECIALS, *words]))  # unique, in order: ids are dense
    vocab = {tok: i for i, tok in enumerate(tokens)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return tok


def build_onnx_model(
    path: str | Path,
    words,
    dim: int = 32,
    seed: int = 0,
    pooling_in_graph: bool = True,
    max_length: int = 64,
    normalize: bool = True,
    query_prefix: str = "query: ",
    passage_prefix: str = "passage: ",
    source_model: str = "synthetic/bag-of-words",
    tokenizer=None,
) -> np.ndarray:
    """Write model.onnx, tokenizer.json, xlir.json into `path`; return the embedding matrix.

    With pooling_in_graph the output is `sentence_embedding` (batch, dim), mean pooled and,
    when `normalize`, L2 normalised; otherwise it is `last_hidden_state` (batch, seq, dim)
    and the graph also takes `token_type_ids` (whose embedding row 0 is zero).
    tokenizer: a `tokenizers.Tokenizer` to use instead of the word-level one built from `words`.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = tokenizer or build_tokenizer(words)
    tok.save(str(path / "tokenizer.json"))
    vocab_size = tok.get_vocab_size()
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((vocab_size, dim)).astype(np.float32)
    emb[SPECIALS.index("<pad>")] = 0.0

    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
    ]
    inits = [
        numpy_helper.from_array(emb, "emb"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
        numpy_helper.from_array(np.array(1e-9, dtype=np.float32), "eps"),
    ]
    nodes = [helper.make_node("Gather", ["emb", "input_ids"], ["tok"])]
    if pooling_in_graph:
        nodes += [
            helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["maskf", "axis2"], ["mask3"]),
            helper.make_node("Mul", ["tok", "mask3"], ["masked"]),
            helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
            helper.make_node("ReduceSum", ["mask3", "axis1"], ["count"], keepdims=0),
            helper.make_node("Max", ["count", "eps"], ["count1"]),
            helper.make_node("Div", ["summed", "count1"], ["mean"]),
        ]
        if normalize:
            nodes += [
                helper.make_node("ReduceL2", ["mean"], ["norm"], axes=[1], keepdims=1),
                helper.make_node("Max", ["norm", "eps"], ["norm1"]),
                helper.make_node("Div", ["mean", "norm1"], ["sentence_embedding"]),
            ]
        else:
            nodes.append(helper.make_node("Identity", ["mean"], ["sentence_embedding"]))
        output = "sentence_embedding"
        outputs = [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", dim])]
    else:
        types = np.zeros((2, dim), dtype=np.float32)
        types[1] = 1.0
        inits.append(numpy_helper.from_array(types, "type_emb"))
        inputs.append(
            helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, ["batch", "seq"])
        )
        nodes += [
            helper.make_node("Gather", ["type_emb", "token_type_ids"], ["types"]),
            helper.make_node("Add", ["tok", "types"], ["last_hidden_state"]),
        ]
        output = "last_hidden_state"
        outputs = [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", "seq", dim])]

    graph = helper.make_graph(nodes, "xlir_synthetic", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path / "model.onnx"))
    (path / "config.json").write_text(json.dumps({"model_type": "synthetic", "hidden_size": dim}))
    Manifest(
        source_model=source_model,
        dim=dim,
        sha256=sha256_file(path / "model.onnx"),
        encoder=EncoderSettings(
            pooling="mean",
            normalize=normalize,
            query_prefix=query_prefix,
            passage_prefix=passage_prefix,
            max_length=max_length,
        ),
        output=output,
        pooling_in_graph=pooling_in_graph,
    ).save(path)
    return emb


def reference_vectors(tok, emb: np.ndarray, texts, max_length: int, normalize=True):
    """What the synthetic model computes, in numpy: mean of token embeddings (truncated)."""
    out = []
    for text in texts:
        ids = tok.encode(text).ids
        if len(ids) > max_length:  # keep the framing tokens like the tokenizer's truncation
            ids = ids[: max_length - 1] + [ids[-1]]
        v = emb[ids].mean(axis=0)
        out.append(v / np.linalg.norm(v) if normalize else v)
    return np.asarray(out, dtype=np.float32)


def xquad_sentences(data_dir: Path, langs=XQUAD_LANGS, per_lang: int = 60) -> list[dict]:
    """Documents {id, lang, text, title} from the first paragraphs of XQuAD-R, per language.

    The same (article, paragraph, sentence) position gives the same `parallel` key in
    every language, so translations can be matched.
    """
    docs = []
    for lang in langs:
        data = json.loads((data_dir / "xquad-r" / f"{lang}.json").read_text())
        n = 0
        for a, article in enumerate(data["data"]):
            for p, para in enumerate(article["paragraphs"]):
                for s, sentence in enumerate(para["sentences"]):
                    if n >= per_lang:
                        break
                    if sentence.strip():
                        docs.append(
                            {
                                "id": f"{lang}-{a}-{p}-{s}",
                                "lang": lang,
                                "text": sentence.strip(),
                                "parallel": f"{a}-{p}-{s}",
                            }
                        )
                        n += 1
        if n < per_lang:
            raise RuntimeError(f"only {n} sentences for {lang}")
    return docs
