"""The `route` fixture: a test taking it runs once per evaluation route.

"auto" is the route of a CPU backend (screen and exact work on one CPU
device); "split" is the accelerator route forced on the CPU
(`kernels.force_split_route`): screen work on a second CPU device where the
process has one, every transfer through host memory. After the test the
fixture checks that the route was really taken: kernels ran, every
screening kernel saw and returned 32-bit arrays only on the screen device,
and every exact kernel ran and left its outputs on the CPU exact device.

Import it into a test module (`from tests.evaluation.routes import route`)
and add `route` to a test's arguments.
"""

import numpy as np
import pytest

from nhp_jax.evaluation import kernels

ROUTES = ("auto", "split")


def check_calls(calls: list, route_name: str) -> None:
  """Asserts what `kernels.record_calls` recorded follows the device policy."""
  assert calls, "no evaluation kernel ran"
  exact = kernels.exact_device()
  assert exact.platform == "cpu"
  with kernels.use_route(route_name):
    screen = kernels.screen_device()
  for call in calls:
    if call.role == "screen" or call.kernel == "to_screen":
      assert call.device == screen, call
      wide = [d for d in call.in_dtypes + call.out_dtypes if np.dtype(d).itemsize > 4]
      assert not wide, call
    else:
      assert call.device == exact, call
    assert call.out_devices == {call.device}, call


@pytest.fixture(params=ROUTES)
def route(request):
  """Runs the test under route "auto" and "split"; yields the recorded `KernelCall`s."""
  with kernels.use_route(request.param), kernels.record_calls() as calls:
    yield calls
  check_calls(calls, request.param)
