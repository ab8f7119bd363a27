"""XLIR serving: ONNX encoder, Elasticsearch indexing and kNN search. Never imports torch."""

__version__ = "0.1.0"
