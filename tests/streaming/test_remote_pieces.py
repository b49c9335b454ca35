"""The piece arithmetic of streaming from a server's mapped disk (streaming/remote.py): which bytes of a file
lie in verified pieces, pieces that must read back from the disk with their SHA-1 (a server's write cache),
and Transmission's base64 piece bitfield."""

from __future__ import annotations

import hashlib
import os

import pytest

from downloads.backends import PieceSource
from servers.clients import ClientError
from servers.clients.transmission import pieces_of
from streaming.remote import verified_bytes

PIECE = 1024


def test_transmission_bitfield_has_the_first_piece_in_the_high_bit():
    assert pieces_of("gA==", 8) == [True] + [False] * 7  # 0x80
    assert pieces_of("/4A=", 9) == [True] * 9  # 0xff 0x80
    assert pieces_of("AQ==", 8) == [False] * 7 + [True]
    assert pieces_of("", 3) == [False] * 3  # nothing yet
    with pytest.raises(ClientError):
        pieces_of("not base64!", 8)


def test_bytes_of_a_file_starting_mid_piece_follow_the_verified_run():
    # The file starts 300 bytes into piece 0 and is 3000 bytes long: pieces 0..3 hold it.
    source = PieceSource(path=None, size=3000, offset=300, piece_length=PIECE, pieces=lambda: [])
    assert verified_bytes(source, [True, True, False, True], 0) == 2 * PIECE - 300
    assert verified_bytes(source, [True, True, False, True], 2 * PIECE - 300) == 0  # piece 2 missing
    assert verified_bytes(source, [True, True, True, True], 100) == 3000 - 100  # never past the file's end
    assert verified_bytes(source, [False, True, True, True], 0) == 0


def test_with_hashes_a_piece_counts_only_once_it_reads_back_from_the_disk(tmp_path):
    intro, movie = os.urandom(300), os.urandom(3000)
    stream = intro + movie
    hashes = [hashlib.sha1(stream[i:i + PIECE]).digest() for i in range(0, len(stream), PIECE)]
    (tmp_path / "intro.bin").write_bytes(intro)
    # The server says pieces 0-2 are verified, but piece 1's bytes are still in its write cache: zeros on disk.
    on_disk = bytearray(movie)
    on_disk[PIECE - 300:2 * PIECE - 300] = bytes(PIECE)
    (tmp_path / "movie.mp4.part").write_bytes(bytes(on_disk))  # Transmission's name for an unfinished file
    files = [(tmp_path / "intro.bin", 300), (tmp_path / "movie.mp4", 3000)]
    source = PieceSource(path=tmp_path / "movie.mp4", size=3000, offset=300, piece_length=PIECE,
                         pieces=lambda: [], hashes=hashes, files=files)
    confirmed: set[int] = set()
    assert verified_bytes(source, [True, True, True, False], 0, confirmed) == PIECE - 300
    assert confirmed == {0}  # piece 0 spans both files and reads back right
    (tmp_path / "movie.mp4.part").write_bytes(movie)  # the cache was flushed
    assert verified_bytes(source, [True, True, True, False], 0, confirmed) == 3 * PIECE - 300
    assert confirmed == {0, 1, 2}
    (tmp_path / "intro.bin").unlink()
    assert verified_bytes(source, [True, True, True, False], 0, confirmed) == 3 * PIECE - 300  # remembered
