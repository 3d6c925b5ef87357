"""The cache keys of every shipped profile are those of the snapshot (scripts/cache_keys.py):
a change of the settings' or the runner's code that moved one would leave the committed
records and products stale."""
import json
import sys

from .conftest import REPO_ROOT


def test_every_profiles_cache_keys_match_the_snapshot():
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    from cache_keys import SNAPSHOT, all_keys

    expected = json.loads(SNAPSHOT.read_text())
    actual = all_keys()
    assert set(actual) == set(expected)
    for profile, cells in expected.items():
        assert actual[profile].keys() == cells.keys(), profile
        changed = [label for label in cells if actual[profile][label] != cells[label]]
        assert not changed, f"{profile}: keys moved for {changed[:3]}"
