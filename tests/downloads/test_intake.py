"""Intake validation, including hostile magnets and torrents."""

import base64
import hashlib

import bencodepy
import pytest

from downloads import intake
from downloads.intake import IntakeError

HEX = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
B32 = base64.b32encode(bytes.fromhex(HEX)).decode()
V2 = "1220" + "ab" * 32


class TestMagnet:
    def test_hex_hash_trackers_and_name_kept(self):
        parsed = intake.parse_magnet(
            f"magnet:?xt=urn:btih:{HEX.upper()}&dn=My%20File&tr=udp%3A%2F%2Ft.example%3A80&tr=https://t2.example/a&xl=42"
        )
        assert parsed.info_hash == HEX
        assert parsed.name == "My File"
        assert parsed.trackers == ("udp://t.example:80", "https://t2.example/a")
        assert parsed.size == 42

    def test_base32_hash_is_normalised_to_hex(self):
        assert intake.parse_magnet(f"magnet:?xt=urn:btih:{B32}").info_hash == HEX

    def test_v2_only_magnet(self):
        parsed = intake.parse_magnet(f"magnet:?xt=urn:btmh:{V2}&dn=v2")
        assert parsed.info_hash == "ab" * 32 and parsed.info_hash_v2 == "ab" * 32

    def test_hybrid_magnet_prefers_v1(self):
        parsed = intake.parse_magnet(f"magnet:?xt=urn:btih:{HEX}&xt=urn:btmh:{V2}")
        assert parsed.info_hash == HEX and parsed.info_hash_v2 == "ab" * 32

    @pytest.mark.parametrize(
        ("uri", "code"),
        [
            ("", "magnet_empty"),
            ("   ", "magnet_empty"),
            ("https://example.com/?xt=urn:btih:" + HEX, "magnet_invalid"),
            ("magnet:", "magnet_invalid"),
            ("magnet:?dn=nohash", "magnet_no_hash"),
            ("magnet:?xt=urn:btih:" + HEX[:-1], "magnet_bad_hash"),  # 39 chars
            ("magnet:?xt=urn:btih:" + HEX + "0", "magnet_bad_hash"),  # 41 chars
            ("magnet:?xt=urn:btih:" + "g" * 40, "magnet_bad_hash"),  # not hex
            ("magnet:?xt=urn:btih:" + B32[:-1] + "1", "magnet_bad_hash"),  # 1 is not base32
            ("magnet:?xt=urn:btmh:1114" + "ab" * 20, "magnet_bad_hash"),  # sha1 multihash isn't v2
            ("magnet:?xt=urn:btih:" + HEX + "&tr=file:///etc/passwd", "magnet_bad_tracker"),
            ("magnet:?xt=urn:btih:" + HEX + "&tr=javascript:alert(1)", "magnet_bad_tracker"),
            ("magnet:?xt=urn:ed2k:abcdef", "magnet_no_hash"),
        ],
    )
    def test_refused(self, uri, code):
        with pytest.raises(IntakeError) as exc:
            intake.parse_magnet(uri)
        assert exc.value.code == code
        assert exc.value.detail  # a sentence for the user

    def test_huge_magnet_refused_before_parsing(self, settings):
        uri = f"magnet:?xt=urn:btih:{HEX}" + "&tr=http://t.example/" * 10_000
        with pytest.raises(IntakeError) as exc:
            intake.parse_magnet(uri)
        assert exc.value.code == "magnet_too_long"

    def test_too_many_trackers(self, settings):
        settings.MAGNET_MAX_TRACKERS = 3
        uri = f"magnet:?xt=urn:btih:{HEX}" + "".join(f"&tr=http://t{i}.example/" for i in range(4))
        with pytest.raises(IntakeError) as exc:
            intake.parse_magnet(uri)
        assert exc.value.code == "magnet_too_many_trackers"

    def test_flood_of_parameters_refused(self, settings):
        settings.MAGNET_MAX_TRACKERS = 3
        uri = f"magnet:?xt=urn:btih:{HEX}" + "&x=1" * 100
        with pytest.raises(IntakeError) as exc:
            intake.parse_magnet(uri)
        assert exc.value.code == "magnet_too_many_trackers"

    def test_control_characters_stripped_from_name(self):
        parsed = intake.parse_magnet(f"magnet:?xt=urn:btih:{HEX}&dn=a%00b%1bc%0Ad")
        assert parsed.name == "abcd"


def torrent(info: dict, **top) -> bytes:
    return bencodepy.encode({b"announce": b"http://127.0.0.1:6970/announce", b"info": info, **top})


SINGLE = {b"name": b"file.bin", b"length": 1000, b"piece length": 16384, b"pieces": b"x" * 20}


class TestTorrent:
    def test_single_file(self):
        data = torrent(SINGLE)
        parsed = intake.parse_torrent(data)
        assert parsed.info_hash == hashlib.sha1(bencodepy.encode(SINGLE)).hexdigest()
        assert parsed.name == "file.bin" and parsed.size == 1000
        assert [(f.path, f.size) for f in parsed.files] == [("file.bin", 1000)]
        assert parsed.trackers == ("http://127.0.0.1:6970/announce",)

    def test_multi_file_and_private_flag(self):
        info = {b"name": b"album", b"piece length": 16384, b"pieces": b"x" * 20, b"private": 1,
                b"files": [{b"length": 10, b"path": [b"cd1", b"01.mp3"]}, {b"length": 20, b"path": [b"cover.jpg"]}]}
        parsed = intake.parse_torrent(torrent(info))
        assert [f.path for f in parsed.files] == ["album/cd1/01.mp3", "album/cover.jpg"]
        assert parsed.size == 30 and parsed.is_private

    def test_pure_v2_file_tree(self):
        info = {b"name": b"v2", b"meta version": 2, b"piece length": 16384,
                b"file tree": {b"a.txt": {b"": {b"length": 5}}, b"dir": {b"b.txt": {b"": {b"length": 7}}}}}
        parsed = intake.parse_torrent(torrent(info))
        assert sorted(f.path for f in parsed.files) == ["v2/a.txt", "v2/dir/b.txt"]
        assert parsed.info_hash == hashlib.sha256(bencodepy.encode(info)).hexdigest()

    @pytest.mark.parametrize(
        "path",
        [[b".."], [b"..", b"etc", b"passwd"], [b"a", b".."], [b"a/../../b"], [b"a\\..\\b"], [b""], [b"nul\x00"],
         [b"C:evil"], [b"x" * 300]],
    )
    def test_escaping_names_refused(self, path):
        info = {b"name": b"ok", b"piece length": 16384, b"pieces": b"x" * 20,
                b"files": [{b"length": 1, b"path": path}]}
        with pytest.raises(IntakeError) as exc:
            intake.parse_torrent(torrent(info))
        assert exc.value.code in ("torrent_unsafe_path", "torrent_invalid")

    @pytest.mark.parametrize("name", [b"..", b"../x", b"/abs", b"."])
    def test_escaping_torrent_name_refused(self, name):
        with pytest.raises(IntakeError) as exc:
            intake.parse_torrent(torrent({**SINGLE, b"name": name}))
        assert exc.value.code == "torrent_unsafe_path"

    def test_v2_tree_escape_refused(self):
        info = {b"name": b"v2", b"meta version": 2, b"file tree": {b"..": {b"x": {b"": {b"length": 1}}}}}
        with pytest.raises(IntakeError):
            intake.parse_torrent(torrent(info))

    @pytest.mark.parametrize(
        ("data", "code"),
        [
            (b"", "torrent_empty"),
            (b"not a torrent", "torrent_invalid"),
            (b"d4:infoi1ee", "torrent_invalid"),  # info is not a dict
            (b"d8:announce3:abce", "torrent_invalid"),  # no info
            (b"d4:infod4:name1:ae", "torrent_invalid"),  # truncated
            (b"d4:infod6:lengthi-5e4:name1:a6:pieces20:" + b"x" * 20 + b"ee", "torrent_invalid"),  # negative length
            (b"d4:infod6:lengthi1e4:name1:aee", "torrent_invalid"),  # no pieces, not v2
            (b"d4:infod6:lengthi1e4:namei5e6:pieces20:" + b"x" * 20 + b"ee", "torrent_invalid"),  # name not text
        ],
    )
    def test_malformed_refused(self, data, code):
        with pytest.raises(IntakeError) as exc:
            intake.parse_torrent(data)
        assert exc.value.code == code

    def test_too_large_refused_before_decoding(self, settings):
        settings.TORRENT_MAX_BYTES = 1024
        with pytest.raises(IntakeError) as exc:
            intake.parse_torrent(b"d" + b"0" * 2000)
        assert exc.value.code == "torrent_too_large"

    def test_deep_nesting_bomb_refused(self):
        bomb = b"d4:info" + b"l" * 200_000 + b"e" * 200_000 + b"e"
        with pytest.raises(IntakeError) as exc:
            intake.parse_torrent(bomb)
        assert exc.value.code == "torrent_invalid"

    def test_huge_length_claim_bomb_refused(self):
        # A string whose declared length is far past the end of the data.
        with pytest.raises(IntakeError):
            intake.parse_torrent(b"d4:info999999999999:xe")

    def test_too_many_files_refused(self, settings):
        settings.TORRENT_MAX_FILES = 5
        info = {b"name": b"many", b"piece length": 16384, b"pieces": b"x" * 20,
                b"files": [{b"length": 1, b"path": [f"{i}".encode()]} for i in range(6)]}
        with pytest.raises(IntakeError) as exc:
            intake.parse_torrent(torrent(info))
        assert exc.value.code == "torrent_too_many_files"


class TestBatchSplit:
    def test_blank_and_comment_lines_skipped_with_line_numbers(self):
        assert intake.split_batch("a\n\n# note\n  b  \n") == [(1, "a"), (4, "b")]

    def test_empty(self):
        with pytest.raises(IntakeError) as exc:
            intake.split_batch("\n \n")
        assert exc.value.code == "batch_empty"
