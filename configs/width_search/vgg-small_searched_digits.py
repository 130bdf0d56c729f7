# Final training of the binary VGG-small found by
# width-search_vgg-small_digits.py (best.json[0]: 0.4803M FLOPs, 96% on the
# search split, fitness 92.80), initialised from the leading channels of the
# uniform-4x network (sec. 3.1) and trained with the uniform baselines'
# schedule.
#   python tools/train.py configs/width_search/vgg-small_searched_digits.py
# Another network: --cfg-options "model.backbone.expand_ratios=[...]".
_base_ = ['./vgg-small_1x_digits.py']

model = dict(backbone=dict(expand_ratios=[0.25, 4, 0.25, 3, 3, 1]))

custom_hooks = [
    dict(type='nasbnn_mm.WeightsOnlyCheckpointHook'),
    dict(
        type='nasbnn_mm.InheritLeadingChannelsHook',
        checkpoint='work_dirs/vgg-small_4x_digits/epoch_15.pth',
        # the 4x network's running statistics do not fit the narrower layers
        reset_bn_stats=True),
]
