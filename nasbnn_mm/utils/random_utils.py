"""One plain format for Python random states (JSON- and
``weights_only``-safe): ``{'version', 'internal', 'gauss_next'}``."""
import random

__all__ = ['python_rng_state', 'set_python_rng_state']


def python_rng_state(rng: random.Random) -> dict:
    """The state of ``rng`` as a dict of ints and a list."""
    version, internal, gauss = rng.getstate()
    return dict(version=version, internal=list(internal), gauss_next=gauss)


def set_python_rng_state(rng: random.Random, state: dict) -> None:
    """Restore a state returned by :func:`python_rng_state`."""
    rng.setstate(
        (state['version'], tuple(state['internal']), state['gauss_next']))
