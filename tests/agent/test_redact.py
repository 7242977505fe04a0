"""ferry.agent.redact: the [[redact]] keys, each action, the built-in patterns, custom regexes,
the defaults, the counts per rule, metric labels through the batcher, and bad configurations."""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import re
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from ferry.agent.batcher import Batcher
from ferry.agent.intake import Intake
from ferry.agent.redact import RedactConfig, Redactor
from ferry.agent.redact.rules import BUILTINS, MASK, card_spans, luhn_ok
from ferry.runtime.config import ConfigError, ConfigSource
from ferry.series import COUNTER, GAUGE, SeriesDef
from ferry.v1 import payload_pb2

KEY = b"0123456789abcdef-test-key"


def config(tmp_path, text: str) -> RedactConfig:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return ConfigSource(RedactConfig, str(path), {}).load()


def redactor(tmp_path, text: str) -> Redactor:
    (tmp_path / "hash.key").write_bytes(KEY + b"\n")
    return Redactor(config(tmp_path, f'redact_hash_key_file = "{tmp_path / "hash.key"}"\n{text}'))


def hashed(value: str) -> str:
    return hmac.new(KEY, value.encode(), hashlib.sha256).hexdigest()[:32]


def count(rule: str) -> float:
    return REGISTRY.get_sample_value("ferry_agent_redactions_total", {"rule": rule}) or 0.0


def log(message: str = "", **attributes: str) -> payload_pb2.LogRecord:
    return payload_pb2.LogRecord(level="info", message=message, attributes=attributes)


def event(**properties: str) -> payload_pb2.Event:
    return payload_pb2.Event(type="signup", properties=properties)


def redacted(r: Redactor, *records) -> list:
    intake = Intake()
    for record in records:
        (intake.logs if isinstance(record, payload_pb2.LogRecord) else intake.events).append(record)
    r.records(intake)
    return list(records)


def test_key_rules_drop_mask_and_hash_attributes_and_properties(tmp_path):
    r = redactor(
        tmp_path,
        """
[[redact]]
keys = ["secret_*"]
action = "drop"
name = "t1-drop"
[[redact]]
keys = "email"
action = "mask"
name = "t1-mask"
[[redact]]
keys = ["user_id", "account.id"]
action = "hash"
name = "t1-hash"
""",
    )
    before = {n: count(n) for n in ("t1-drop", "t1-mask", "t1-hash")}
    got_log, got_event = redacted(
        r,
        log("hi", Secret_Token="s1", EMAIL="a@b", user_id="u1", keep="k"),
        event(secret_x="s2", user_id="u1", **{"account.id": "7"}),
    )
    assert dict(got_log.attributes) == {"EMAIL": MASK, "user_id": hashed("u1"), "keep": "k"}
    assert dict(got_event.properties) == {"user_id": hashed("u1"), "account.id": hashed("7")}
    assert got_log.message == "hi"
    assert {n: count(n) - before[n] for n in before} == {"t1-drop": 2, "t1-mask": 1, "t1-hash": 3}


def test_hashes_are_stable_hex_and_depend_on_the_key(tmp_path):
    text = '[[redact]]\nkeys = ["user_id"]\naction = "hash"\n'
    r = redactor(tmp_path, text)
    a, b = redacted(r, event(user_id="alice"), event(user_id="alice"))
    assert a.properties["user_id"] == b.properties["user_id"] == hashed("alice")
    assert len(a.properties["user_id"]) == 32 and int(a.properties["user_id"], 16) >= 0
    (tmp_path / "other.key").write_bytes(b"another key of 16+ bytes")
    other = Redactor(config(tmp_path, f'redact_hash_key_file = "{tmp_path / "other.key"}"\n{text}'))
    (c,) = redacted(other, event(user_id="alice"))
    assert c.properties["user_id"] not in ("alice", hashed("alice"))


def test_key_rules_cover_a_records_own_fields_but_not_its_required_one(tmp_path):
    r = redactor(
        tmp_path,
        '[[redact]]\nkeys = ["user_id", "session_id"]\naction = "hash"\n'
        '[[redact]]\nkeys = ["type", "level", "trace_id"]\naction = "drop"\n',
    )
    e = payload_pb2.Event(type="buy", user_id="u9", session_id="s9")
    entry = payload_pb2.LogRecord(level="warn", message="m", trace_id="ab" * 16)
    redacted(r, e, entry)
    assert (e.type, e.user_id, e.session_id) == ("buy", hashed("u9"), hashed("s9"))
    assert (entry.level, entry.trace_id) == ("warn", "")


def test_defaults_drop_credentials_unless_turned_off(tmp_path):
    before = count("drop:authorization"), count("drop:password"), count("drop:cookie")
    r = Redactor(config(tmp_path, ""))
    (e,) = redacted(r, event(Authorization="Bearer x", password="p", cookie="c", path="/"))
    assert dict(e.properties) == {"path": "/"}
    after = count("drop:authorization"), count("drop:password"), count("drop:cookie")
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]
    off = Redactor(config(tmp_path, "redact_defaults = false\n"))
    (e,) = redacted(off, event(authorization="x", password="p"))
    assert dict(e.properties) == {"authorization": "x", "password": "p"}
    # a rule of the file for a default key wins over the default
    mine = redactor(tmp_path, '[[redact]]\nkeys = ["password"]\naction = "hash"\n')
    (e,) = redacted(mine, event(password="p"))
    assert dict(e.properties) == {"password": hashed("p")}


@pytest.mark.parametrize(
    "pattern,text,expected",
    [
        ("email", "mail bob.smith+x@mail.example.co.uk now", f"mail {MASK} now"),
        ("email", "no at sign here, user at example dot com", None),
        ("credit_card", "card 4111 1111 1111 1111 ok", f"card {MASK} ok"),
        ("credit_card", "card 4111-1111-1111-1111", f"card {MASK}"),
        ("credit_card", "amex 378282246310005.", f"amex {MASK}."),
        ("credit_card", "order 4111111111111112 (fails Luhn)", None),
        ("credit_card", "id 1234567812345678", None),
        ("credit_card", "short 411111111111", None),
        # a card next to other digits: the card is masked, its neighbours kept
        ("credit_card", "card 4111 1111 1111 1111 12/27", f"card {MASK} 12/27"),
        ("credit_card", "order 12 4111 1111 1111 1111", f"order 12 {MASK}"),
        ("credit_card", "4111-1111-1111-1111 99 times", f"{MASK} 99 times"),
        ("credit_card", "x 4111111111111111 12", f"x {MASK} 12"),
        ("credit_card", "n 2 4111111111111111", f"n 2 {MASK}"),
        # mixed separators; 13 (Visa), 15 (Amex), 16 and 19 (Visa) digits, grouped or not, alone or
        # with neighbours
        ("credit_card", "mixed 4111-1111 1111-1111 ok", f"mixed {MASK} ok"),
        ("credit_card", "mixed 5555 5555-5555 4444", f"mixed {MASK}"),
        ("credit_card", "amex 3782 822463 10005 ok", f"amex {MASK} ok"),
        ("credit_card", "amex 3782-822463-10005 12 27", f"amex {MASK} 12 27"),
        ("credit_card", "visa 4222222222222 x", f"visa {MASK} x"),
        ("credit_card", "visa 4222 2222 22222 7", f"visa {MASK} 7"),
        ("credit_card", "visa 4012-8888-8888-1881.", f"visa {MASK}."),
        ("credit_card", "visa 4000 0000 0000 0000 006 end", f"visa {MASK} end"),
        ("credit_card", "ref 55 4000 0000 0000 0000 006", f"ref 55 {MASK}"),
        ("credit_card", "two 4111 1111 1111 1111, 5555-5555-5555-4444", f"two {MASK}, {MASK}"),
        # Luhn-failing numbers are kept, grouped or not, with neighbours or not
        ("credit_card", "id 1234 5678 9012 3456", None),
        ("credit_card", "order 4111 1111 1111 1112", None),
        ("credit_card", "digits 4111 1111 1111 1112 5555", None),
        # a group is never split: no card inside a longer run of digits
        ("credit_card", "run 124111111111111111", None),
        ("credit_card", "run 41111111111111111111", None),
        ("ipv4", "from 10.0.12.255, to 192.168.1.1.", f"from {MASK}, to {MASK}."),
        ("ipv4", "version 1.2.3.4.5 and 256.1.1.1 and 10.0.0", None),
        (
            "bearer_token",
            "Authorization: Bearer eyJhbGc.eyJzdWI-x_y== end",
            f"Authorization: Bearer {MASK} end",
        ),
        ("bearer_token", "BEARER abc123xyz", f"BEARER {MASK}"),
        ("bearer_token", "the bearer of bad news", None),
    ],
)
def test_built_in_patterns(tmp_path, pattern, text, expected):
    name = f"p-{pattern}"
    r = Redactor(
        config(tmp_path, f'redact_defaults = false\n[[redact]]\npattern = "{pattern}"\nname = "{name}"\n')
    )
    before = count(name)
    (entry,) = redacted(r, log(text))
    assert entry.message == (expected if expected is not None else text)
    assert count(name) - before == (entry.message.count(MASK) if expected is not None else 0)


def test_luhn():
    assert luhn_ok("4111111111111111") and luhn_ok("79927398713") and luhn_ok("5555555555554444")
    assert not luhn_ok("4111111111111112") and not luhn_ok("79927398710")


def windows_by_brute_force(run: str) -> list[tuple[int, int]]:
    """card_spans the slow way: the whole run if it is a card, else every window of whole digit
    groups with 13 to 19 digits that passes Luhn, overlapping ones merged."""
    digits = re.sub(r"\D", "", run)
    if 13 <= len(digits) <= 19 and luhn_ok(digits):
        return [(0, len(run))]
    groups = [g.span() for g in re.finditer(r"\d+", run)]
    found = []
    for i, (start, _) in enumerate(groups):
        for _, end in groups[i:]:
            window = re.sub(r"\D", "", run[start:end])
            if 13 <= len(window) <= 19 and luhn_ok(window):
                found.append((start, end))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(found):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def test_card_spans_are_the_luhn_windows_on_group_boundaries():
    rnd = random.Random(7)
    for _ in range(3000):
        groups = [str(rnd.randrange(10**8)).zfill(8)[: rnd.randint(1, 8)] for _ in range(rnd.randint(1, 9))]
        run = "".join(g + rnd.choice(" -") for g in groups)[:-1]
        assert card_spans(run) == windows_by_brute_force(run), run
    assert card_spans("4111 1111 1111 1111 12") == [(0, 19)]
    assert card_spans("12 4111 1111 1111 1111") == [(3, 22)]
    assert card_spans("4111111111111112") == [] and card_spans("124111111111111111") == []


def test_random_luhn_failing_numbers_are_kept(tmp_path):
    r = Redactor(config(tmp_path, 'redact_defaults = false\n[[redact]]\npattern = "credit_card"\n'))
    rnd = random.Random(11)
    kept = 0
    for _ in range(500):
        digits = "".join(rnd.choice("0123456789") for _ in range(16))
        if luhn_ok(digits):
            continue
        grouped = " ".join(digits[i : i + 4] for i in range(0, 16, 4))
        dashed = "-".join(digits[i : i + 4] for i in range(0, 16, 4))
        texts = [
            f"order {digits} failed",
            f"ref {grouped}.",
            f"id {dashed} ok",
            f"n {digits}{rnd.randrange(10**4):04d}",
        ]
        for entry, text in zip(redacted(r, *(log(t) for t in texts)), texts, strict=True):
            assert entry.message == text
        kept += 1
    assert kept > 400


def test_a_card_among_digits_can_be_hashed_and_is_counted_once(tmp_path):
    r = redactor(tmp_path, '[[redact]]\npattern = "credit_card"\naction = "hash"\nname = "cc-hash"\n')
    before = count("cc-hash")
    (entry,) = redacted(r, log("card 4111 1111 1111 1111 12/27"))
    assert entry.message == f"card {hashed('4111 1111 1111 1111')} 12/27"
    assert count("cc-hash") - before == 1


def test_a_long_run_of_short_groups_is_searched_in_one_pass(tmp_path):
    r = Redactor(config(tmp_path, 'redact_defaults = false\n[[redact]]\npattern = "credit_card"\n'))
    cards = " ".join(["4111 1111 1111 1111", "5555 5555 5555 4444"] * 100)  # one run of 3200 digits
    (entry,) = redacted(r, log("m", cards=cards))
    assert not re.search(r"\d", entry.attributes["cards"])  # every card found (some masked as one)


def test_patterns_apply_to_values_and_free_text_and_can_hash(tmp_path):
    r = redactor(
        tmp_path,
        '[[redact]]\npattern = "email"\naction = "hash"\n'
        '[[redact]]\nregex = "ssn-\\\\d{3}-\\\\d{2}-\\\\d{4}"\nname = "ssn"\n'
        '[[redact]]\nregex = "pin=(\\\\d+)"\nname = "pin"\n',
    )
    before = count("pattern:email"), count("ssn"), count("pin")
    entry = log("from a@b.io, ssn-123-45-6789, pin=4321;", note="write to a@b.io", n="ssn-000-00-0000")
    e = payload_pb2.Event(type="t", label="a@b.io", action="pin=1", category="a@b.io", properties={"p": "x"})
    redacted(r, entry, e)
    assert entry.message == f"from {hashed('a@b.io')}, {MASK}, pin={MASK};"
    assert dict(entry.attributes) == {"note": f"write to {hashed('a@b.io')}", "n": MASK}
    # label and action are an event's free text; category is not searched
    assert (e.label, e.action, e.category) == (hashed("a@b.io"), f"pin={MASK}", "a@b.io")
    after = count("pattern:email"), count("ssn"), count("pin")
    assert [a - b for a, b in zip(after, before, strict=True)] == [3, 2, 2]


def test_a_value_grown_past_its_limit_is_masked_whole(tmp_path):
    r = Redactor(config(tmp_path, '[[redact]]\npattern = "ipv4"\nname = "grow"\n'))
    value = ("1.2.3.4 " * 600)[:4096]  # 4096 bytes: the attribute limit, a mask each 8 bytes
    (entry,) = redacted(r, log("m", ips=value))
    assert entry.attributes["ips"] == MASK


def test_series_labels_by_key_and_the_frame_the_batcher_cuts(tmp_path):
    r = redactor(
        tmp_path,
        '[[redact]]\nkeys = ["user"]\naction = "hash"\nname = "s-hash"\n'
        '[[redact]]\nkeys = ["Token*"]\naction = "drop"\nname = "s-drop"\n'
        '[[redact]]\nkeys = ["email"]\naction = "mask"\nname = "s-mask"\n',
    )
    plain = SeriesDef("cpu", GAUGE, "", (("host", "a"),))
    secret = SeriesDef("req", GAUGE, "", (("email", "a@b.c"), ("token_id", "t"), ("user", "u1")))
    assert r.series(plain) is plain
    out = r.series(secret)
    assert out == SeriesDef("req", GAUGE, "", (("email", MASK), ("user", hashed("u1"))))
    assert r.series(secret) is out  # one object frame after frame

    frames = []
    before = {n: count(n) for n in ("s-hash", "s-drop", "s-mask")}
    batcher = Batcher(payload_pb2.Resource(host="h"), lambda b, n: frames.append(b), relabel=r.series)
    batcher.take(Intake(points=[(secret, 1000, 1.0), (secret, 2000, 2.0), (plain, 1000, 3.0)]))
    batcher.cut()
    payload = payload_pb2.Payload.FromString(frames[0])
    tables = [dict(zip(s.label_keys, s.label_values, strict=True)) for s in payload.metrics.series]
    assert tables == [{"email": MASK, "user": hashed("u1")}, {"host": "a"}]
    assert {n: count(n) - before[n] for n in before} == {"s-hash": 1, "s-drop": 1, "s-mask": 1}  # per frame


def test_host_collectors_points_are_relabelled_too(tmp_path):
    r = Redactor(config(tmp_path, '[[redact]]\nkeys = ["cmd*"]\naction = "mask"\nname = "host-mask"\n'))
    frames = []
    batcher = Batcher(payload_pb2.Resource(host="h"), lambda b, n: frames.append(b), relabel=r.series)
    emit = batcher.emitter(1000)  # the host collectors' path: a point per call, no Intake
    series = SeriesDef("proc.cpu", GAUGE, "", (("cmdline", "run --password=x"), ("group", "web")))
    emit(series, 1.0)
    batcher.settle()
    batcher.cut()
    (s,) = payload_pb2.Payload.FromString(frames[0]).metrics.series
    assert dict(zip(s.label_keys, s.label_values, strict=True)) == {"cmdline": MASK, "group": "web"}


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_drop_and_mask_key_rules_warn_at_load_and_reload_that_they_merge_series(tmp_path, caplog):
    caplog.set_level(logging.WARNING, "ferry.agent.redact")
    Redactor(config(tmp_path, ""))  # the defaults drop credentials: no warning
    redactor(tmp_path, '[[redact]]\nkeys = ["user"]\naction = "hash"\n[[redact]]\npattern = "email"\n')
    assert warnings(caplog) == []
    r = Redactor(
        config(
            tmp_path,
            '[[redact]]\nkeys = ["user", "team"]\naction = "mask"\n'
            '[[redact]]\nkeys = "pass*"\naction = "drop"\nname = "no-pass"\n',
        )
    )
    first, second = warnings(caplog)
    assert first.startswith(
        "[[redact]] rule 'mask:user,team' (mask user, team) also applies to metric label keys: "
        "series that differ only in such a label become one series"
    )
    assert 'use action = "hash" for metric labels, distinct values stay distinct' in first
    assert second.startswith("[[redact]] rule 'no-pass' (drop pass*) also applies to metric label keys")
    caplog.clear()
    r.apply(config(tmp_path, '[[redact]]\nkeys = ["email"]\naction = "drop"\n'))
    (reload,) = warnings(caplog)
    assert reload.startswith("reload: [[redact]] rule 'drop:email' (drop email) also applies to metric label")


def test_a_drop_or_mask_that_makes_two_series_one_is_warned_once_without_values(tmp_path, caplog):
    caplog.set_level(logging.WARNING, "ferry.agent.redact")
    r = Redactor(config(tmp_path, '[[redact]]\nkeys = ["user"]\naction = "mask"\nname = "m-user"\n'))
    caplog.clear()  # the warning at load
    alice = SeriesDef("logins", COUNTER, "", (("host", "h1"), ("user", "alice")))
    bob = SeriesDef("logins", COUNTER, "", (("host", "h1"), ("user", "bob")))
    assert r.series(alice) == SeriesDef("logins", COUNTER, "", (("host", "h1"), ("user", MASK)))
    r.series(SeriesDef("logins", COUNTER, "", (("host", "h1"), ("user", "alice"))))  # equal: no merge
    r.series(SeriesDef("logins", COUNTER, "", (("host", "h2"), ("user", "alice"))))  # another series
    assert warnings(caplog) == []
    assert r.series(bob) == r.series(alice)  # what the doc warns about: one series now
    r.series(SeriesDef("logins", COUNTER, "", (("host", "h1"), ("user", "carol"))))
    (warning,) = warnings(caplog)  # once per rule
    assert warning.startswith(
        "[[redact]] rule 'm-user': series logins with distinct values of label user now send the same "
        "labels, and the collector takes them as one series"
    )
    assert not [v for v in ("alice", "bob", "carol", "h1") if v in warning]

    # the defaults too: password dropped from {password=x,path=/a} and {password=y,path=/a}
    caplog.clear()
    d = Redactor(config(tmp_path, ""))
    x = SeriesDef("req", GAUGE, "", (("password", "x"), ("path", "/a")))
    y = SeriesDef("req", GAUGE, "", (("password", "y"), ("path", "/a")))
    assert d.series(x) == d.series(y) == SeriesDef("req", GAUGE, "", (("path", "/a"),))
    (warning,) = warnings(caplog)
    assert warning.startswith(
        "[[redact]] rule 'drop:password': series req with distinct values of label password"
    )


def test_hash_keeps_distinct_label_values_distinct_in_the_frame(tmp_path, caplog):
    r = redactor(tmp_path, '[[redact]]\nkeys = ["user"]\naction = "hash"\n')
    caplog.set_level(logging.WARNING, "ferry.agent.redact")
    frames = []
    batcher = Batcher(payload_pb2.Resource(host="h"), lambda b, n: frames.append(b), relabel=r.series)
    alice = SeriesDef("logins", COUNTER, "", (("user", "alice"),))
    bob = SeriesDef("logins", COUNTER, "", (("user", "bob"),))
    batcher.take(Intake(points=[(alice, 1000, 1.0), (bob, 1000, 5.0), (alice, 2000, 2.0), (bob, 2000, 6.0)]))
    batcher.cut()
    payload = payload_pb2.Payload.FromString(frames[0])
    tables = [dict(zip(s.label_keys, s.label_values, strict=True)) for s in payload.metrics.series]
    assert tables == [{"user": hashed("alice")}, {"user": hashed("bob")}]
    assert warnings(caplog) == []


def test_no_rules_leave_everything_alone(tmp_path):
    r = Redactor(config(tmp_path, "redact_defaults = false\n"))
    s = SeriesDef("m", GAUGE, "", (("password", "p"),))
    (entry,) = redacted(r, log("a@b.io 4111111111111111", password="p"))
    assert r.series(s) is s and entry.message == "a@b.io 4111111111111111"


def test_reload_swaps_the_rules(tmp_path):
    r = Redactor(config(tmp_path, "redact_defaults = false\n"))
    r.apply(config(tmp_path, '[[redact]]\nkeys = ["x"]\naction = "mask"\n'))
    (e,) = redacted(r, event(x="1"))
    assert e.properties["x"] == MASK
    assert BUILTINS.keys() == {"email", "credit_card", "ipv4", "bearer_token"}


def test_redact_keys_reload_live(tmp_path):
    from ferry.agent.config import AgentConfig
    from ferry.agent.reload import redo, split

    old, new = AgentConfig(), AgentConfig()
    new.redact_defaults = False
    live, restart = split(old, new)
    assert (live, restart, redo(live)) == (["redact_defaults"], [], {"redact"})


@pytest.mark.parametrize(
    "text,message",
    [
        (
            '[[redact]]\nkeys = ["a"]\naction = "scramble"\n',
            r"\[\[redact\]\] #1: key 'action': 'scramble' is not one of drop, mask, hash",
        ),
        ('[[redact]]\nkeys = ["a"]\n', r"#1: key 'action' is required for a keys rule"),
        (
            '[[redact]]\npattern = "email"\naction = "drop"\n',
            r"#1: key 'action' 'drop': a pattern rule can mask or hash",
        ),
        (
            '[[redact]]\nregex = "(unclosed"\n',
            r"#1: key 'regex' '\(unclosed' is not a regular expression: missing \)",
        ),
        ('[[redact]]\nregex = "a*"\n', r"#1: key 'regex' 'a\*' matches the empty string"),
        (
            '[[redact]]\npattern = "phone"\n',
            r"#1: key 'pattern' 'phone' is not a built-in pattern \(email, credit_card, ipv4, bearer_token\)",
        ),
        (
            '[[redact]]\npattern = "email"\nkeys = ["a"]\naction = "mask"\n',
            r"#1: set exactly one of keys, pattern, regex \(got keys, pattern\)",
        ),
        ('[[redact]]\nname = "x"\n', r"#1: set exactly one of keys, pattern, regex \(got none\)"),
        (
            '[[redact]]\nkeys = []\naction = "drop"\n',
            r"#1: key 'keys' \[\] must be a glob or a non-empty list",
        ),
        ('[[redact]]\nkeys = ["a"]\naction = "drop"\ncolour = 1\n', r"#1: unknown key\(s\) colour"),
        (
            '[[redact]]\npattern = "ipv4"\n[[redact]]\nregex = "x"\nname = "pattern:ipv4"\n',
            r"#2: rule name 'pattern:ipv4' is used by an earlier rule",
        ),
        (
            '[[redact]]\nkeys = ["user_id"]\naction = "hash"\n',
            r"rule 'hash:user_id' hashes: set redact_hash_key_file",
        ),
        (
            'redact_hash_key_file = "/nonexistent/ferry.key"\n',
            r"redact_hash_key_file '/nonexistent/ferry.key': cannot read it: No such file",
        ),
        ("redact_defaults = 3\n", r"agent.toml:1: key 'redact_defaults': 3 is not true or false"),
    ],
)
def test_bad_config_names_the_file_key_and_value(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as err:
        config(tmp_path, text)
    if "[[redact]]" in text and "#" in message:
        assert f"{tmp_path / 'agent.toml'}:1: key 'redact' [[redact]] #" in str(err.value)


def test_a_short_key_file_is_refused(tmp_path):
    (tmp_path / "k").write_bytes(b"short\n")
    with pytest.raises(ConfigError, match=r"redact_hash_key_file '.*k': key is 5 bytes < 16 required"):
        config(tmp_path, f'redact_hash_key_file = "{tmp_path / "k"}"\n')


def test_the_doc_quotes_each_built_in_pattern_and_its_hints():
    doc = (Path(__file__).parents[2] / "docs" / "redaction.md").read_text()
    for name, (regex, hints) in BUILTINS.items():
        assert f"\n{regex}\n" in doc, f"docs/redaction.md does not quote the {name} pattern as it is"
        assert all(f"`{h}`" in doc for h in hints), name
