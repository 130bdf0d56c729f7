# Uniform-4x binary VGG-small on the digits: the network every candidate of
# the width search inherits its leading channels from (sec. 3.1,
# "Initialization"). The same schedule as the 1x.
#   python tools/train.py configs/width_search/vgg-small_4x_digits.py \
#       --work-dir work_dirs/vgg-small_4x_digits
_base_ = ['./vgg-small_1x_digits.py']

model = dict(backbone=dict(expand_ratios=4))
