"""`xlir serve`: an OpenAI-compatible embeddings API and a search API over the serving encoder.

Starlette on uvicorn (Starlette answered a JSON echo in 235 us p50 against FastAPI's 284 us
on this machine, and brings no pydantic into the serving install). `app.build_app` wires the
pieces: `schemas` (request parsing and limits), `batcher` (concurrent requests encoded
together), `auth` (bearer keys), `metrics` (Prometheus), `cluster` (the engine for
`/v1/search`).
"""
