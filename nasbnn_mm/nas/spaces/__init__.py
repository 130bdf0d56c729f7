"""Built-in search spaces, one mmengine-style config file each.

The files hold only data (``search_space = dict(...)``) so that they are both
package data, read by :meth:`nasbnn_mm.nas.SearchSpace.from_config` by name
(``'nasbnn_in1k'``, ``'nasbnn_digits'``), and the bases that
``configs/_base_/search_spaces/*.py`` inherit: one copy of the numbers.
"""
__all__ = []
