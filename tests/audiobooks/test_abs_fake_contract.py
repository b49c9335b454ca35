"""Contract of the Audiobookshelf fake's folder parser (tests/fakes/audiobookshelf_fake.py, a port of ABS's
getBookDataFromDir), checked against the research's table (/work/shared/research/audiobooks.md §1.2), and the
round trip that matters: every folder Flotilla writes (audiobooks.library.book_parts) parses back to the
author(s), series, sequence, year, narrator(s) and title it meant — including titles ABS would otherwise
misread (a year or a number in front, braces)."""

from __future__ import annotations

import pytest

from audiobooks.library import Naming, book_parts
from tests.fakes.audiobookshelf_fake import parse_book_dir

# The research's table, row by row: folder path → what ABS parses (fields not named: empty).
RESEARCH_TABLE = [
    ("Terry Goodkind/Sword of Truth/Vol. 1 - 1994 - Wizards First Rule {Sam Tsoutsouvas}",
     {"title": "Wizards First Rule", "series": "Sword of Truth", "sequence": "1", "publishedYear": "1994",
      "narrators": ["Sam Tsoutsouvas"], "authors": ["Terry Goodkind"]}),
    ("Terry Goodkind/Sword of Truth/Book 3 - Blood of the Fold",
     {"title": "Blood of the Fold", "series": "Sword of Truth", "sequence": "3"}),
    ("Terry Goodkind/Sword of Truth/3.5 - Debt of Bones",
     {"title": "Debt of Bones", "series": "Sword of Truth", "sequence": "3.5"}),
    ("Terry Goodkind/Vol. 1 - Wizards First Rule",
     {"title": "Vol. 1", "subtitle": "Wizards First Rule", "series": None, "sequence": None}),
    ("Kishimi, Ichiro & Koga, Fumitake/The Courage to Be Disliked [B07CMLDN8V]",
     {"title": "The Courage to Be Disliked", "authors": ["Ichiro Kishimi", "Fumitake Koga"],
      "asin": "B07CMLDN8V"}),
    ("Author/Series/101 Dalmatians", {"title": "101 Dalmatians", "series": "Series", "sequence": None}),
    ("Author/Series/1984 - Nineteen Eighty-Four",
     {"title": "Nineteen Eighty-Four", "publishedYear": "1984", "sequence": None}),
]


@pytest.mark.parametrize(("path", "expected"), RESEARCH_TABLE, ids=[p for p, _ in RESEARCH_TABLE])
def test_the_fake_parses_the_research_table_as_audiobookshelf_does(path, expected):
    parsed = parse_book_dir(path)
    assert {k: parsed[k] for k in expected} == expected


# What a request says → what ABS must read back from the folder Flotilla writes for it.
ROUND_TRIP = [
    Naming("Wizards First Rule", ("Terry Goodkind",), ("Sam Tsoutsouvas",), "Sword of Truth", "1", 1994),
    Naming("Debt of Bones", ("Terry Goodkind",), (), "Sword of Truth", "3.5", None),
    Naming("Plain Title", ("Jane Doe",), (), "", "", None),
    Naming("With Year", ("Jane Doe",), ("Ned Reader",), "", "", 2001),
    Naming("Two Authors", ("Ann Author", "Bob Writer"), ("Ned Reader", "Nora Voice"), "Duo", "2", 2010),
    Naming("Sequence Without Year", ("Jane Doe",), ("Ned",), "Saga", "07", None),
    Naming("Series Without Sequence", ("Jane Doe",), (), "Saga", "", 1999),
    # Titles ABS would misread if written as they are.
    Naming("2001 - A Space Odyssey", ("Arthur C. Clarke",), (), "", "", None),
    Naming("1984 - Nineteen Eighty-Four", ("George Orwell",), (), "", "", 1949),
    Naming("12 - Monkeys", ("Jane Doe",), (), "Films", "", None),
    Naming("12. Monkeys", ("Jane Doe",), (), "Films", "", None),
    Naming("Book 3 of the Dead", ("Jane Doe",), (), "Dead", "", None),
    Naming("101 Dalmatians", ("Dodie Smith",), (), "Dogs", "1", 1956),
    Naming("Braces {in} the Title", ("Jane Doe",), (), "", "", None),
    Naming("Ends in Braces {x}", ("Jane Doe",), (), "", "", None),
    Naming("Has [B07CMLDN8V] Inside", ("Jane Doe",), (), "", "", None),
    Naming("Title - With Dash", ("Jane Doe",), ("Ned",), "Saga", "2", 2020),
]


def _shown(title: str) -> str:
    """The title as a person reads the folder (the no-break characters Flotilla may use look the same)."""
    return title.replace("\u00a0", " ").replace("\u2011", "-")


@pytest.mark.parametrize("naming", ROUND_TRIP, ids=[n.title for n in ROUND_TRIP])
def test_folders_flotilla_writes_parse_back_to_what_was_meant(naming):
    *folders, file_name = book_parts(naming)
    parsed = parse_book_dir("/".join(folders))
    assert parsed["authors"] == list(naming.authors)
    assert parsed["series"] == (naming.series or None)
    assert parsed["sequence"] == (str(int(float(naming.sequence))) if naming.sequence and "." not in naming.sequence
                                  else naming.sequence or None)
    assert parsed["publishedYear"] == (str(naming.year) if naming.year else None)
    assert parsed["narrators"] == list(naming.narrators)
    assert parsed["asin"] is None
    expected_title = naming.title.translate(str.maketrans("{}[]", "()()"))
    assert _shown(parsed["title"]) == expected_title
    assert parsed["subtitle"] is None
    assert file_name == f"{naming.title}.m4b"  # the file name is not parsed: the title exactly


def test_a_sequence_is_never_written_without_its_series_folder():
    """`Vol. N - Title` directly under the author would become the title "Vol. N" (research table)."""
    parts = book_parts(Naming("Lonely", ("Jane Doe",), (), "", "4", 2000))
    assert parts[:-1] == ["Jane Doe", "2000 - Lonely"]
    assert parse_book_dir("/".join(parts[:-1]))["title"] == "Lonely"
