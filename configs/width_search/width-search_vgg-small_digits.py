# Width search of the binary VGG-small on the digits (sec. 3.1 of Shen et
# al., https://arxiv.org/abs/1909.07378), scaled down from
# width-search_vgg-small_cifar10.py to a few minutes on 2 CPU cores: every
# candidate inherits the leading channels of the trained uniform-4x network,
# trains 2 epochs on 512 training images (32 iterations) and is evaluated on
# the 50 held-out search images; eq. (4) with lambda = 4 ranks them. Without
# BN recalibration the running statistics after a few iterations are still
# mostly the 4x network's (every candidate stayed at chance, 10%).
#   python tools/train.py configs/width_search/vgg-small_4x_digits.py \
#       --work-dir work_dirs/vgg-small_4x_digits
#   python tools/search.py \
#       configs/width_search/width-search_vgg-small_digits.py \
#       work_dirs/vgg-small_4x_digits/epoch_15.pth \
#       --work-dir work_dirs/width-search_vgg-small_digits
_base_ = ['./vgg-small_4x_digits.py']

# The runner's model is the wide network the loop loads the checkpoint into.
train_dataloader = dict(batch_size=32)
train_cfg = dict(
    _delete_=True,
    type='nasbnn_mm.EvolutionSearchLoop',
    problem=dict(
        type='nasbnn_mm.WidthSearchProblem',
        eval_dataloader={{_base_.search_val_dataloader}},
        optim_wrapper=dict(
            type='OptimWrapper',
            optimizer=dict(type='Adam', lr=5e-4, weight_decay=0),
            paramwise_cfg=dict(
                custom_keys={'backbone.classifier': dict(lr_mult=0.1)})),
        train_epochs=2,
        # 2 x 16 iterations of 32 images per candidate
        train_subset=512,
        # re-estimate BN on 4 batches after training
        calibrate_batches=4,
        lr_schedule='cosine',
        input_shape=(1, 3, 32, 32),
        seed=0),
    # 8 + 4 x (4 + 4) = 40 candidates
    max_generations=4,
    population_size=8,
    num_mutation=4,
    num_crossover=4,
    mutate_prob=0.3,
    objective='fitness',
    trade_off=4.0,
    num_parents=4,
    seed=0,
    save_interval=0)

param_scheduler = None
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None
default_hooks = dict(checkpoint=None)
