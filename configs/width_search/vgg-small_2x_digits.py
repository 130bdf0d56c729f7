# Uniform-2x binary VGG-small on the digits: the same schedule as the 1x.
#   python tools/train.py configs/width_search/vgg-small_2x_digits.py
_base_ = ['./vgg-small_1x_digits.py']

model = dict(backbone=dict(expand_ratios=2))
