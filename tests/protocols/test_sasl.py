"""SASL decoders (RFC 4616, 2195, XOAUTH2): what the client sent, whatever its shape."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailsniff.protocols.sasl import decode_cram_md5, decode_plain, decode_xoauth2


def test_decode_plain_well_formed() -> None:
    creds = decode_plain(b"admin\0alice\0s3cret")
    assert (creds.authzid, creds.authcid, creds.password) == ("admin", "alice", "s3cret")
    assert creds.secret == b"s3cret" and not creds.malformed


def test_decode_plain_malformed_never_puts_the_password_in_the_username() -> None:
    one = decode_plain(b"alice\0s3cret")  # authzid's NUL forgotten
    assert (one.authcid, one.password, one.malformed) == ("alice", "s3cret", True)
    trailing = decode_plain(b"\0alice\0s3cret\0")  # extra NUL stays with the password as sent
    assert (trailing.authcid, trailing.secret) == ("alice", b"s3cret\0")
    bare = decode_plain(b"s3cret")  # no NUL: cannot be told from a password, so it is one
    assert (bare.authcid, bare.password, bare.malformed) == (None, "s3cret", True)


@given(st.binary(max_size=60), st.binary(max_size=60).filter(lambda b: b"\0" not in b))
def test_decode_plain_password_bytes_are_exactly_what_follows_the_identity(
    password: bytes, user: bytes
) -> None:
    creds = decode_plain(b"\0" + user + b"\0" + password)
    assert creds.secret == password
    assert creds.authcid is not None and "\0" not in creds.authcid


def test_decode_cram_md5_and_xoauth2_keep_the_secret_bytes() -> None:
    cram = decode_cram_md5(b"tim b913a602c7eda7a495b4e6e7334d3890")
    assert cram is not None and (cram.username, cram.secret) == (
        "tim",
        b"b913a602c7eda7a495b4e6e7334d3890",
    )
    bearer = decode_xoauth2(b"user=a@b.c\x01auth=Bearer \xfftok\x01\x01")
    assert (bearer.user, bearer.secret) == ("a@b.c", b"\xfftok")
