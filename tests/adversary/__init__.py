"""Generators of hostile input for the adversarial run (tests/integration/test_adversarial.py).

`frames` builds malformed frames and messages by class, `queries` hostile Query calls, `local`
bytes and records for an agent's Local service; each case carries the answers docs/bad-input.md
allows for it, and `verdicts.Tally` counts what came back and lists any answer outside them.
Every generator takes a seeded `random.Random`, so a failing run is repeated by its seed.
"""
