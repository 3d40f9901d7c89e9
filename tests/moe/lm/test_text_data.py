"""Text datasets: labels, document split without overlap, checks of ids and labels; small text made here."""
from __future__ import annotations

import json

import pytest
import torch

from moe.config import TEXT_DATASETS
from moe.data import DATASETS
from moe.data.text import (GENRE_BOOKS, GENRES, KJV_BOOKS, SPLITS, TextDataError, check_text, is_text_dataset,
                           kjv_from_lines, python_from_files, python_labels)


def verse_lines(verses_per_book: int = 2) -> list[str]:
    return [json.dumps({"citation": f"{b} 1:{v}", "text": f"{b} verse {v} é", "book": b, "chapter": 1, "verse": v})
            for b in GENRES for v in range(1, verses_per_book + 1)]


def test_genre_table_covers_66_books_once():
    books = [b for bs in GENRE_BOOKS.values() for b in bs]
    assert len(books) == len(set(books)) == KJV_BOOKS == len(GENRES)


def test_text_datasets_registered_and_named_in_config():
    assert set(TEXT_DATASETS) == {n for n in DATASETS.names() if is_text_dataset(n)}


def test_kjv_split_by_book_no_overlap_and_labels():
    data = kjv_from_lines(verse_lines())
    docs = {s: set(data.split_documents(s)) for s in SPLITS}
    assert not docs["train"] & docs["validation"] and not docs["train"] & docs["test"] and not docs["validation"] & docs["test"]
    assert sum(len(d) for d in docs.values()) == KJV_BOOKS
    # one book of each genre with >= 3 books in validation and in test; Revelation (alone) trains
    val_genres = sorted(GENRES[b] for b in docs["validation"])
    assert val_genres == sorted(g for g, bs in GENRE_BOOKS.items() if len(bs) >= 3)
    assert "Revelation" in docs["train"]
    # every byte of a book carries its genre; bytes are the UTF-8 text (é is two bytes)
    for s in SPLITS:
        part = data.split(s)
        for doc in torch.unique(part.document).tolist():
            name = data.document_names[doc]
            mask = part.document == doc
            assert set(part.domain[mask].tolist()) == {list(GENRE_BOOKS).index(GENRES[name])}
            text = bytes(part.tokens[mask].to(torch.uint8).tolist()).decode("utf-8")
            assert text == f"{name} verse 1 é\n{name} verse 2 é\n"
    # testament: the first 39 books are the Old
    assert data.document_group[data.document_names.index("Malachi")] == 0
    assert data.document_group[data.document_names.index("Matthew")] == 1


def test_kjv_split_depends_on_seed_only():
    a, b, c = kjv_from_lines(verse_lines(), seed=0), kjv_from_lines(verse_lines(), seed=0), kjv_from_lines(verse_lines(), seed=1)
    assert a.split_documents("test") == b.split_documents("test") and a.fingerprint == b.fingerprint
    assert a.split_documents("test") != c.split_documents("test")


def test_kjv_bad_input_is_one_line_error():
    lines = verse_lines()
    with pytest.raises(TextDataError, match="unknown book 'Tobit'"):
        kjv_from_lines(lines + [json.dumps({"book": "Tobit", "text": "x"})])
    with pytest.raises(TextDataError, match="line 1: not a verse"):
        kjv_from_lines(["{not json"] + lines)
    with pytest.raises(TextDataError, match="65 books, expected 66"):
        kjv_from_lines([ln for ln in lines if '"Jude"' not in ln])
    with pytest.raises(TextDataError, match="appears again"):
        kjv_from_lines(lines + lines[:1])


def test_check_text_catches_overlap_and_bad_ids():
    data = kjv_from_lines(verse_lines())
    data.validation.document[0] = int(data.train.document[0])
    with pytest.raises(TextDataError, match="also in the train split"):
        check_text(data)
    data = kjv_from_lines(verse_lines())
    data.test.domain[0] = 99
    with pytest.raises(TextDataError, match=r"domain ids must lie in \[0, 7\)"):
        check_text(data)


SOURCE = '''"""Module doc."""
# a comment
x = "not a doc"  # trailing é


def f():
    """Function doc."""
    return 1
'''


def test_python_labels_code_docstring_comment():
    raw, labels = python_labels(SOURCE)
    assert raw == SOURCE.encode()
    text = lambda d: bytes(b for b, lab in zip(raw, labels.tolist()) if lab == d).decode()  # noqa: E731
    assert text(1) == '"""Module doc."""' + '"""Function doc."""'
    assert text(2) == "# a comment" + "# trailing é"
    assert '"not a doc"' in text(0) and "def f():" in text(0)


def test_python_split_by_file_no_overlap():
    files = {f"m{i}.py": SOURCE for i in range(20)}
    files["bad.py"] = "def (:\n"
    data = python_from_files(files, seed=3)
    docs = {s: set(data.split_documents(s)) for s in SPLITS}
    assert len(docs["validation"]) == len(docs["test"]) == 2 and len(docs["train"]) == 16
    assert not (docs["train"] & docs["validation"]) and not (docs["validation"] & docs["test"])
    assert data.source["skipped"] == 1 and "bad.py" not in data.document_names
