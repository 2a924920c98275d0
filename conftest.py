"""Settings for every test collected from the workspace root (``./dev test``)."""

import pytest
from hypothesis import settings

# A hypothesis deadline is a timed assertion: on a shared 2-core machine it measures the
# scheduler, not the code (a YAML round trip of one example took 467 ms once, under the
# lowest-versions run, against a 200 ms deadline). Property tests check behaviour only.
settings.register_profile("aegis", deadline=None)
settings.load_profile("aegis")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``./dev test``'s workers (pytest-xdist ``--dist loadgroup``), a module runs whole.

    Its module-scoped servers, databases and apps then start once, in one worker. Tests of a
    topology keep the group aegis-testing's plugin gave them: one worker runs them all.
    """
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
