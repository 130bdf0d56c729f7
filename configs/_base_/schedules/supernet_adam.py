# Supernet schedule of the paper (sec. 4.1.2): Adam, lr 5e-4, weight decay
# 5e-6 on conv/linear weights only, cosine decay; validation of fixed subnets
# after BN recalibration. Supernet configs add `RandomStateHook` to their
# custom_hooks to keep the random states (subnet sampler, augmentations) in
# checkpoints, so that a resumed run continues exactly.
# `fused=True` (our choice, not the paper's: the same Adam update in one
# multi-tensor kernel instead of a loop over the ~360 parameters; 3x faster
# on CPU, docs/benchmarks.md; CPU and CUDA).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='Adam',
        lr=5e-4,
        betas=(0.9, 0.999),
        weight_decay=5e-6,
        fused=True),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        # shifts/slopes of RSign and RPReLU, LSQ steps, Bi-/kernel
        # transformation matrices: no weight decay
        custom_keys={
            '.sign': dict(decay_mult=0.0),
            '.act': dict(decay_mult=0.0),
            'quantizer': dict(decay_mult=0.0),
            'transforms': dict(decay_mult=0.0),
        }))
val_cfg = dict(
    type='nasbnn_mm.SubnetValLoop',
    subnets=('smallest', 'middle', 'largest'),
    calibrate_batches=10)
test_cfg = dict(
    type='nasbnn_mm.SubnetTestLoop',
    subnets=('largest', ),
    calibrate_batches=10)
