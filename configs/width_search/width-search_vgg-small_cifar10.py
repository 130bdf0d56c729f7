# Width search of the binary VGG-small on CIFAR-10 (Shen et al.,
# https://arxiv.org/abs/1909.07378, sec. 4): as the paper, 50 generations of
# 32 individuals, each trained 10 epochs on the training set and evaluated
# on the validation (test) set; fitness eq. (4) with lambda = 4 and
# FLOPs_ref the uniform-1x network's. Our choices (docs/deviations.md):
# each candidate starts from the leading channels of a trained uniform-4x
# network, which the paper describes only for its ImageNet search, because
# 10 epochs from scratch rank candidates poorly on our small data too; the
# candidates' optimizer is not given in the paper: SGD at the final
# schedule's last-stage-but-one lr with cosine decay over the 10 epochs.
#   bash tools/dist_train.sh \
#       configs/width_search/vgg-small_4x_8xb32-200e_cifar10.py 8
#   torchrun --nproc-per-node 8 tools/search.py \
#       configs/width_search/width-search_vgg-small_cifar10.py \
#       work_dirs/vgg-small_4x_8xb32-200e_cifar10/epoch_200.pth \
#       --launcher pytorch
_base_ = ['./vgg-small_4x_8xb32-200e_cifar10.py']

train_cfg = dict(
    _delete_=True,
    type='nasbnn_mm.EvolutionSearchLoop',
    problem=dict(
        type='nasbnn_mm.WidthSearchProblem',
        eval_dataloader={{_base_.val_dataloader}},
        optim_wrapper=dict(
            type='OptimWrapper',
            optimizer=dict(
                type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4)),
        train_epochs=10,
        train_subset=None,
        lr_schedule='cosine',
        input_shape=(1, 3, 32, 32),
        seed=0),
    # generation 0 (32 individuals) + 49 generations of 32 new ones
    max_generations=49,
    population_size=32,
    num_mutation=16,
    num_crossover=16,
    mutate_prob=0.2,
    objective='fitness',
    trade_off=4.0,
    num_parents=16,
    seed=0,
    save_interval=1)

param_scheduler = None
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None
default_hooks = dict(checkpoint=None)
