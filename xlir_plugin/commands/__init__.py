"""One module per `xlir` verb; each adds its parser with `register(verbs)`."""

from . import es

REGISTRY = [es.register]
