"""One module per `xlir` verb; each adds its parser with `register(verbs)`."""

from . import demo, es, eval, index, model, opensearch, search, serve

REGISTRY = [
    es.register,
    opensearch.register,
    index.register,
    search.register,
    eval.register,
    demo.register,
    model.register,
    serve.register,
]
