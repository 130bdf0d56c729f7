# Runtime shared by the detection (MMDetection) configs.
default_scope = 'mmdet'
# nasbnn_mm imports torch and mmengine only: modules that need mmdet are
# imported by name.
custom_imports = dict(
    imports=['nasbnn_mm', 'nasbnn_mm.datasets.checked_coco'],
    allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'))
# Checkpoints hold only tensors and primitives: torch.load(weights_only=True);
# a checkpoint loaded (load_from, resume) must fit the model key by key.
custom_hooks = [
    dict(type='nasbnn_mm.CheckpointKeysHook'),
    dict(type='nasbnn_mm.ConventionsHook'),
    dict(type='nasbnn_mm.WeightsOnlyCheckpointHook'),
]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
