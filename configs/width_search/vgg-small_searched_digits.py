# Final training of the binary VGG-small found by
# width-search_vgg-small_digits.py (best.json[0], fitness 68.9: 10.19M FLOPs,
# 72% on the search split), initialised from the leading channels of the
# uniform-4x network (sec. 3.1) and trained with the uniform baselines'
# budget.
#   python tools/train.py configs/width_search/vgg-small_searched_digits.py
# Another network: --cfg-options "model.backbone.expand_ratios=[...]".
_base_ = ['./vgg-small_1x_digits.py']

model = dict(backbone=dict(expand_ratios=[0.25, 1, 2, 0.25, 1, 2]))

custom_hooks = [
    dict(type='nasbnn_mm.WeightsOnlyCheckpointHook'),
    dict(
        type='nasbnn_mm.InheritLeadingChannelsHook',
        checkpoint='work_dirs/vgg-small_4x_digits/iter_12.pth',
        # with the 4x network's BN statistics after 12 iterations: 10.0%
        reset_bn_stats=True),
]
