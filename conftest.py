"""Settings for every test collected from the workspace root (``./dev test``)."""

from hypothesis import settings

# A hypothesis deadline is a timed assertion: on a shared 2-core machine it measures the
# scheduler, not the code (a YAML round trip of one example took 467 ms once, under the
# lowest-versions run, against a 200 ms deadline). Property tests check behaviour only.
settings.register_profile("aegis", deadline=None)
settings.load_profile("aegis")
