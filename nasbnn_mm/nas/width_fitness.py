"""Fitness of a width-search candidate, eq. (4).

"Searching for Accurate Binary Neural Architectures" (Shen et al., 2019,
https://arxiv.org/abs/1909.07378)::

    f(a_k) = max(Acc - lambda * FLOPs / FLOPs_ref, 0)

Acc is the top-1 validation accuracy in percent and FLOPs are divided by
those of the original (1x) binary network "to get the same order of
magnitude of accuracy" (sec. 2); the paper uses ``lambda = 4`` (sec. 3.1).
"""
__all__ = ['width_fitness']


def width_fitness(accuracy: float,
                  flops: float,
                  flops_ref: float,
                  trade_off: float = 4.0) -> float:
    """Fitness ``max(accuracy - trade_off * flops / flops_ref, 0)``.

    Args:
        accuracy (float): Top-1 validation accuracy in percent, in
            ``[0, 100]``.
        flops (float): FLOPs of the candidate, binary MACs already divided
            by 64 (:func:`~nasbnn_mm.nas.width_counter.count_width_cost`).
        flops_ref (float): FLOPs of the original (1x) binary network, same
            convention.
        trade_off (float): lambda of eq. (4). Defaults to 4.0.

    Returns:
        float: The fitness, ``>= 0``.

    Raises:
        ValueError: If ``accuracy`` is outside ``[0, 100]``, ``flops`` or
            ``trade_off`` is negative, or ``flops_ref`` is not positive.

    Example:
        >>> width_fitness(92.0, 26.4e6, 13.2e6)
        84.0
    """
    if not 0 <= accuracy <= 100:
        raise ValueError(f'accuracy: {accuracy} not in [0, 100] (percent)')
    if flops < 0:
        raise ValueError(f'flops: {flops} must be >= 0')
    if flops_ref <= 0:
        raise ValueError(f'flops_ref: {flops_ref} must be > 0')
    if trade_off < 0:
        raise ValueError(f'trade_off: {trade_off} must be >= 0')
    return max(accuracy - trade_off * flops / flops_ref, 0.0)
