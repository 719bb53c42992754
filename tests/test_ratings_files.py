"""The interaction and item files training and the importers read: CSVs with a header and the older MovieLens
releases' headerless files (ML-1M/ML-10M `::`, ML-100K tab and `|`), read to the same records."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from db.files.ratings_csv import ItemInfo, read_items, read_ratings

RATINGS = [("1", "1193", "5", "978300760"), ("1", "661", "3", "978302109"), ("2", "1357", "5", "978298709")]


def test_every_movielens_layout_reads_to_the_same_ratings(tmp_path: Path) -> None:
    csv = tmp_path / "ratings.csv"
    csv.write_text("userId,movieId,rating,timestamp\n" + "".join(",".join(r) + "\n" for r in RATINGS))
    dat = tmp_path / "ratings.dat"  # ML-1M, ML-10M
    dat.write_text("".join("::".join(r) + "\n" for r in RATINGS))
    tsv = tmp_path / "u.data"  # ML-100K
    tsv.write_text("".join("\t".join(r) + "\n" for r in RATINGS))
    expected = list(read_ratings(csv))
    assert expected[0].user_id == "1" and expected[0].item_id == "1193" and expected[0].rating == 5.0
    assert expected[0].timestamp == datetime(2000, 12, 31, 22, 12, 40, tzinfo=timezone.utc)
    assert list(read_ratings(dat)) == expected and list(read_ratings(tsv)) == expected


def test_a_short_headerless_line_is_named(tmp_path: Path) -> None:
    dat = tmp_path / "ratings.dat"
    dat.write_text("1::1193::5::978300760\n1::661\n")
    with pytest.raises(ValueError, match=r"ratings.dat:2: "):
        list(read_ratings(dat))


def test_movielens_item_files_give_titles_and_genres(tmp_path: Path) -> None:
    dat = tmp_path / "movies.dat"  # ML-1M: Latin-1
    dat.write_bytes("2::Misérables, Les (1995)::Drama|Musical\n".encode("latin-1"))
    assert read_items(dat) == {"2": ItemInfo(title="Misérables, Les (1995)", genres=["Drama", "Musical"])}
    item = tmp_path / "u.item"  # ML-100K: genres as 0/1 flags, so none are named
    item.write_text("1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|0|0|1\n")
    assert read_items(item) == {"1": ItemInfo(title="Toy Story (1995)")}
