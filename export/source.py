"""Find and check the model to export: a `transformers` encoder directory (or hub id)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from export.errors import ExportInputError
from xlir_plugin.manifest import ENCODER_SETTINGS_FILE, EncoderSettings


@dataclass
class Source:
    """A resolved model: where its files are, the name to record, and its settings."""

    name: str  # what goes into the manifest's `source_model`
    path: str  # a local directory, or a hub id
    settings: EncoderSettings
    config: object  # transformers.PretrainedConfig


def resolve_name(model: str) -> str:
    """`default` -> the bundled model's directory; a directory -> itself; else a hub id."""
    if Path(model).expanduser().is_dir():
        return str(Path(model).expanduser().resolve())
    try:
        from xlir_plugin.default_model import resolve_hf_model
    except ImportError as e:
        if model == "default":
            raise ExportInputError(f"cannot resolve the default model: {e}") from e
        return model
    return resolve_hf_model(model)


def load_source(model: str) -> Source:
    """Resolve `model` and check that it is an encoder we can export; raise ExportInputError."""
    path = resolve_name(model)
    looks_local = model.startswith((".", "/", "~")) or Path(model).suffix or model.count("/") > 1
    if not Path(path).is_dir() and looks_local:
        raise ExportInputError(f"model directory not found: {model}")
    if Path(path).is_dir() and not (Path(path) / "config.json").is_file():
        raise ExportInputError(f"not a transformers model directory (no config.json): {path}")

    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path)
    except Exception as e:  # noqa: BLE001 - transformers raises many kinds for a bad config
        if not Path(path).is_dir():
            raise ExportInputError(
                f"model not found: {model} is not a local directory, and not a hub model "
                "reachable from here"
            ) from e
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportInputError(f"cannot read the model config of {model}: {first}") from e
    _check_encoder(config, model)

    if Path(path).is_dir():
        has_tokenizer = any(
            (Path(path) / f).is_file()
            for f in ("tokenizer.json", "sentencepiece.bpe.model", "vocab.txt", "spiece.model")
        )
        if not has_tokenizer:
            raise ExportInputError(f"no tokenizer files in {path}")
        settings = EncoderSettings.load(path)
    else:
        settings = _hub_settings(path)
    name = path if Path(path).is_dir() and model != "default" else model
    return Source(name=name, path=path, settings=settings, config=config)


def _check_encoder(config, model: str) -> None:
    if getattr(config, "is_encoder_decoder", False) or getattr(config, "is_decoder", False):
        raise ExportInputError(
            f"{model} is not an encoder ({config.model_type} is a decoder model)"
        )
    archs = getattr(config, "architectures", None) or []
    if any(a.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")) for a in archs):
        raise ExportInputError(f"{model} is not an encoder (architecture {archs[0]})")
    import optimum.exporters.onnx.model_configs  # noqa: F401 - fills the TasksManager registry
    from optimum.exporters.tasks import TasksManager

    try:
        tasks = TasksManager.get_supported_tasks_for_model_type(
            config.model_type, exporter="onnx", library_name="transformers"
        )
    except Exception:  # noqa: BLE001 - unknown model types raise KeyError/ValueError
        tasks = {}
    if "feature-extraction" not in tasks:
        raise ExportInputError(
            f"{model} is not an encoder optimum can export (model type {config.model_type!r})"
        )


def _hub_settings(model_id: str) -> EncoderSettings:
    """Encoder settings of a hub model: its xlir_encoder.json when present, else E5 defaults."""
    try:
        from huggingface_hub import hf_hub_download

        return EncoderSettings.load(Path(hf_hub_download(model_id, ENCODER_SETTINGS_FILE)).parent)
    except Exception:  # noqa: BLE001 - absent file or offline: E5 defaults
        return EncoderSettings()
