# ./faster-rcnn_nasbnn-digits-l_binary-fpn-head_6e_digits.py tested on the
# bit-packed 1-bit kernels: PackedInferenceHook packs the NASBNN backbone and
# the binary FPN, RPN and box-head blocks when the test starts (after the
# checkpoint is loaded; CPU only). Same checkpoint, same detections up to
# float rounding of the folded BN (docs/detection.md):
#   python tools/test.py THIS_CONFIG work_dirs/<binary detector>/epoch_6.pth
_base_ = ['./faster-rcnn_nasbnn-digits-l_binary-fpn-head_6e_digits.py']
custom_imports = dict(
    imports=[
        'nasbnn_mm', 'nasbnn_mm.datasets.checked_coco',
        'nasbnn_mm.engine.hooks.checkpoint_keys_hook',
        'nasbnn_mm.models.detection', 'nasbnn_mm.deploy.packed_detector'
    ],
    allow_failed_imports=False)
custom_hooks = [
    dict(type='nasbnn_mm.PrecisionMapHook'),
    dict(type='nasbnn_mm.CheckpointKeysHook'),
    dict(type='nasbnn_mm.WeightsOnlyCheckpointHook'),
    dict(type='nasbnn_mm.PackedInferenceHook'),
]
