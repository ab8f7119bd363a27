"""One module per `xlir` verb; each adds its parser with `register(verbs)`."""

from . import es, index, search

REGISTRY = [es.register, index.register, search.register]
