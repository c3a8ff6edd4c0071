"""Every claim in threat_model/ and SECURITY.md names a test: each cited test must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CITE = re.compile(r"tests/(test_\w+\.py)::(\w+)")


def _docs() -> list[Path]:
    return [*sorted((ROOT / "threat_model").glob("*.md")), ROOT / "SECURITY.md"]


def test_every_cited_test_exists() -> None:
    cited = [(doc.name, m.group(1), m.group(2)) for doc in _docs() for m in CITE.finditer(doc.read_text())]
    assert len(cited) > 40
    missing = []
    for doc, file, name in cited:
        path = ROOT / "tests" / file
        if not path.is_file() or not re.search(rf"^def {name}\(", path.read_text(), re.M):
            missing.append(f"{doc}: tests/{file}::{name}")
    assert not missing, "cited tests that do not exist:\n" + "\n".join(missing)


def test_threat_model_covers_the_required_topics() -> None:
    text = " ".join(p.read_text().lower() for p in (ROOT / "threat_model").glob("*.md"))
    for topic in ("honest-but-curious", "malicious server", "colluding", "one key holder", "residual",
                  "assets", "membership", "mitigation"):
        assert topic in text, topic
