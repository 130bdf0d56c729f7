"""Fixtures shared by every test."""
import copy

import pytest
from mmengine.registry import DefaultScope

_NO_TEST_SCOPES = copy.copy(DefaultScope._instance_dict)


@pytest.fixture(autouse=True)
def restore_default_scope():
    """Keep a default scope set by a test (a Runner, a tool) to that test.

    Otherwise ``MODELS.build(dict(type='WidthVGGSmall'))`` in a later test
    would look the type up in the leaked scope (e.g. mmpretrain's) and fail
    depending on the test order. Scopes set by module fixtures are dropped
    too: the state before any test is restored.
    """
    yield
    DefaultScope._instance_dict = copy.copy(_NO_TEST_SCOPES)
