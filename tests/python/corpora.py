"""Real text corpora for the vector tests and benchmarks, read from what
scripts/fetch-data.sh unpacked under $LAKEHOUSE_DATA (default ~/.cache/lakehouse/data):
WordNet 3.0 glosses as documents, GCIDE (Webster 1913 and later) definitions as queries,
and GloVe 6B 50-d word vectors as precomputed embeddings."""

import gzip
import os
import random
import re
from pathlib import Path


def data_dir() -> Path:
    return Path(os.environ.get("LAKEHOUSE_DATA", Path.home() / ".cache/lakehouse/data"))


def _need(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run scripts/fetch-data.sh")
    return path


def wordnet_glosses(limit: int | None = None, seed: int = 11) -> list[str]:
    """'lemma, lemma: gloss' of WordNet synsets (117 659 in all), a seeded sample of `limit`
    in file order."""
    texts = []
    for pos in ["noun", "verb", "adj", "adv"]:
        path = _need(data_dir() / "wordnet" / f"data.{pos}")
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue  # the license header
            fields, gloss = line.split("|", 1)
            parts = fields.split()
            words = [parts[4 + 2 * i].replace("_", " ") for i in range(int(parts[3], 16))]
            texts.append(f"{', '.join(words)}: {gloss.strip()}")
    if limit is not None and limit < len(texts):
        keep = sorted(random.Random(seed).sample(range(len(texts)), limit))
        texts = [texts[i] for i in keep]
    return texts


def gcide_definitions(count: int, seed: int = 13) -> list[str]:
    """`count` numbered senses of GCIDE entries (first clause, 20-200 characters)."""
    text = gzip.open(_need(data_dir() / "gcide" / "gcide.dict.dz")).read().decode("utf-8", errors="replace")
    senses = []
    for sense in re.findall(r"^ {3}\d+\. (.+?)\n\s*\[", text, re.M | re.S):
        sense = re.sub(r"[{}\[\]\\\"]", "", " ".join(sense.split())).split(";")[0].strip()
        if 20 <= len(sense) <= 200:
            senses.append(sense)
    return random.Random(seed).sample(senses, count)


def glove_vectors(count: int):
    """The first `count` GloVe 6B 50-d word vectors (the most frequent words), float32."""
    import numpy as np

    path = _need(data_dir() / "glove" / "glove_6B_50d_emb.npy")
    return np.load(path, mmap_mode="r")[:count].astype(np.float32)
