"""File names from outside cannot escape the inbox or the quarantine.

Names come from inbox entries (whatever a producer managed to create) and from the MQTT
user property ``filename``. Hypothesis tries names with ``../``, absolute paths, NUL,
backslashes, control characters, any unicode, and lengths up to 10,000 characters.
Property: every file nrt creates or moves lies directly in the quarantine (or the MQTT
store) directory, nothing else under the test's root changes, and the ``.reason`` beside
it is valid JSON holding the name as printable text.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nrt.telemetry.inbox import InboxSource
from nrt.telemetry.ingest import IngestLog, Problem, Quarantine, is_safe_name, sanitize_name
from tests.fuzz.seeds import chunks

HOSTILE = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.sampled_from("./\\\0~-_ aé\u202e\n"), max_size=40),
    st.sampled_from(
        [
            "..",
            ".",
            "../../etc/passwd",
            "/etc/passwd",
            "a/../../b",
            "a\0b",
            "~",
            "-rf",
            ".reason",
            "x.reason",
            "\udcff\udcfe",
            "C:\\x",
        ]
    ),
    st.integers(201, 10_000).map(lambda n: "a" * n),
    st.tuples(st.sampled_from(["../", "/", "./", "..\\"]), st.text(max_size=30)).map("".join),
)
#: What a file system allows as one entry name (no "/" or NUL, at most 255 bytes).
ENTRY = st.text(
    alphabet=st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=60,
).filter(lambda n: n not in (".", "..") and len(n.encode()) <= 240)
SETTINGS = settings(
    max_examples=80, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


def _snapshot(root: Path, skip: tuple[Path, ...]) -> dict[str, int]:
    """Every entry under root (not following links) outside `skip`, with its size."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if any(Path(dirpath).is_relative_to(s) for s in skip):
            continue
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if not any(path.is_relative_to(s) for s in skip):
                out[str(path)] = os.lstat(path).st_size
    return out


def _only_in(directory: Path, created: set[Path]) -> None:
    for path in created:
        assert path.parent == directory, f"{path} is outside {directory}"
        assert not path.is_symlink()
    reasons = [p for p in created if p.name.endswith(".reason")]
    for reason in reasons:
        record = json.loads(reason.read_text())
        record["name"].encode("utf-8")  # printable: storable and showable as UTF-8
        assert record["problem"] and record["fix"]


@SETTINGS
@given(name=HOSTILE)
def test_safe_names_stay_one_component_and_sanitized_names_are_safe(name: str) -> None:
    inbox = Path("/srv/nrt/inbox")
    if is_safe_name(name):
        assert "/" not in name and "\0" not in name and name not in (".", "..")
        assert len(name) <= 200 and os.path.normpath(inbox / name).startswith(f"{inbox}/")
    clean = sanitize_name(name)
    assert is_safe_name(clean), clean
    assert os.path.normpath(inbox / clean) == str(inbox / clean)


@SETTINGS
@given(name=HOSTILE, data=st.binary(max_size=64))
def test_quarantined_bytes_land_in_the_quarantine_whatever_the_name(
    tmp_path_factory, name: str, data: bytes
) -> None:
    root = tmp_path_factory.mktemp("q")
    (root / "outside").mkdir()
    (root / "outside" / "keep").write_text("x")
    quarantine_dir = root / "quarantine"
    quarantine = Quarantine(quarantine_dir, IngestLog(root / "state" / "ingest.sqlite"))
    before = _snapshot(root, (quarantine_dir, root / "state"))
    for _ in range(2):  # the second time the name is taken: a ~2 suffix
        target = quarantine.store(data, name, "mqtt", Problem("bad", "send it again"), "0" * 64)
        assert target.parent == quarantine_dir and target.read_bytes() == data
    _only_in(quarantine_dir, set(quarantine_dir.iterdir()))
    assert len(list(quarantine_dir.iterdir())) == 4
    assert _snapshot(root, (quarantine_dir, root / "state")) == before


@SETTINGS
@given(name=ENTRY)
def test_inbox_entries_with_any_name_are_moved_into_the_quarantine_only(
    tmp_path_factory, name: str
) -> None:
    root = tmp_path_factory.mktemp("i")
    inbox, quarantine_dir = root / "inbox", root / "quarantine"
    inbox.mkdir()
    entry = inbox / name
    entry.write_bytes(b"not FITS")
    log = IngestLog(root / "state" / "ingest.sqlite")
    source = InboxSource(inbox, asyncio.Queue(), log, Quarantine(quarantine_dir, log))
    asyncio.run(source.handle(entry))
    if name.startswith(".") or name.endswith((".tmp", ".part", "~")):
        assert entry.exists()  # a producer's temporary name: never touched
        return
    assert not os.path.lexists(entry), "a refused entry stayed in the inbox"
    created = set(quarantine_dir.iterdir())
    assert len(created) == 2
    _only_in(quarantine_dir, created)
    assert os.listdir(inbox) == []


def test_paths_outside_the_inbox_and_links_are_never_followed(tmp_path: Path) -> None:
    inbox, quarantine_dir = tmp_path / "inbox", tmp_path / "quarantine"
    inbox.mkdir()
    secret = tmp_path / "secret.fits"
    secret.write_bytes(chunks()["acs"])
    (inbox / "acs_025600010010_000001.fits").symlink_to(secret)
    log = IngestLog(tmp_path / "state" / "ingest.sqlite")
    queue: asyncio.Queue = asyncio.Queue()
    source = InboxSource(inbox, queue, log, Quarantine(quarantine_dir, log))

    async def handle_all() -> None:
        await source.handle(inbox / ".." / "secret.fits")  # a path that leaves the inbox
        await source.handle(inbox / "acs_025600010010_000001.fits")  # a link out of it

    asyncio.run(handle_all())
    assert secret.read_bytes() == chunks()["acs"] and queue.empty()
    moved = quarantine_dir / "acs_025600010010_000001.fits"
    assert moved.is_symlink(), "the link itself is quarantined, not its target"
    assert "symbolic link" in json.loads(Path(f"{moved}.reason").read_text())["problem"]


def test_mqtt_filename_property_cannot_escape() -> None:
    from tests.fuzz.targets import MqttTarget

    target = MqttTarget()  # one ingest record and quarantine for every name tried
    allowed = (target.quarantine, target.dir / "store")
    payload = chunks()["acs"]

    @settings(max_examples=80, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(name=HOSTILE)
    def check(name: str) -> None:
        meta = json.dumps({"kind": "acs", "filename": name}).encode()
        outcome = target.run(meta + b"\n" + payload)  # checks the quarantine's new files
        assert not outcome.failed, outcome
        for path in target.dir.rglob("*"):
            if path.is_file() and not path.name.startswith("ingest.sqlite"):
                assert any(path.is_relative_to(a) for a in allowed), path
        if not is_safe_name(name):
            assert outcome.status == "rejected", (name, outcome)

    check()
