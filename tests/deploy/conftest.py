"""Deployment tests: the install layout, the systemd unit, the Debian
package, the container image and its sidecar examples.  See README.md.

They need root and the packages of `scripts/setup-deps --deploy`; what a
machine cannot do (no podman, not root) is skipped with the reason, and
`scripts/test deploy` sets STP_DEPLOY_STRICT=1 so that a skip there is a
failure instead.
"""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, HERE)

from podman_env import CHROOT_SKIP  # noqa: E402


def _integration_fixtures():
    """The integration suite's fixtures (exim, sink, certs, time limit)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "stp_integration_conftest",
        os.path.join(REPO, "tests", "integration", "conftest.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return {k: v for k, v in vars(mod).items() if not k.startswith("__")}


globals().update(_integration_fixtures())

TEST_TIMEOUT = int(os.environ.get("STP_DEPLOY_TEST_TIMEOUT", "900"))


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT))


def pytest_runtest_logreport(report):
    if (report.skipped and os.environ.get("STP_DEPLOY_STRICT") == "1"
            and report.when in ("setup", "call")
            and CHROOT_SKIP not in str(report.longrepr)):
        report.outcome = "failed"
        report.longrepr = "skipped under STP_DEPLOY_STRICT=1: %s" % (
            report.longrepr,)


@pytest.fixture(scope="session")
def build_dir():
    """A build tree configured with CMAKE_INSTALL_PREFIX=/usr
    ($STP_DEPLOY_BUILD, else build-deploy/ in the repository), built
    here when needed."""
    d = os.environ.get("STP_DEPLOY_BUILD") or os.path.join(REPO,
                                                           "build-deploy")
    subprocess.run(["cmake", "-S", REPO, "-B", d, "-DCMAKE_INSTALL_PREFIX=/usr",
                    "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
                    "-DSTP_INTEGRATION=OFF"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", d, "-j2", "--target",
                    "starttls-proxy"], check=True, stdout=subprocess.DEVNULL)
    return d
