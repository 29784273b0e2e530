from __future__ import annotations

from adapters.watching.expectations import Expectations


def test_match_on_path_and_content_once() -> None:
    e = Expectations()
    e.add({"a.py": "sha1", "gone.py": None}, "patch:1", expires=10.0)
    assert e.claim("a.py", "other", 1.0) is None  # same path, other content: not the patch
    assert e.claim("a.py", "sha1", 1.0) == "patch:1"
    assert e.claim("a.py", "sha1", 1.0) is None  # consumed
    assert e.claim("gone.py", None, 1.0) == "patch:1"
    assert len(e) == 0


def test_expired_expectations_do_not_match_and_are_purged() -> None:
    e = Expectations()
    e.add({"a.py": "sha1"}, "patch:1", expires=5.0)
    e.add({"b.py": "sha2"}, "patch:2", expires=50.0)
    assert e.claim("a.py", "sha1", 6.0) is None
    e.purge(6.0)
    assert len(e) == 1


def test_two_patches_on_one_path() -> None:
    e = Expectations()
    e.add({"a.py": "v1"}, "patch:1", expires=10.0)
    e.add({"a.py": "v2"}, "patch:2", expires=10.0)
    assert e.claim("a.py", "v2", 1.0) == "patch:2"
    assert e.claim("a.py", "v1", 1.0) == "patch:1"
