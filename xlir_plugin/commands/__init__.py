"""One module per `xlir` verb; each adds its parser with `register(verbs)`."""

from . import es, eval, index, search

REGISTRY = [es.register, index.register, search.register, eval.register]
