# Evolutionary search of the digits supernet's OPs/accuracy front (sec.
# 4.1.2), scaled down from nasbnn_search_8xb256_in1k.py to finish in a few
# minutes on 2 CPU cores:
#   python tools/search.py configs/nasbnn/nasbnn_search_digits.py \
#       work_dirs/supernet_digits/epoch_40.pth \
#       --work-dir work_dirs/search_digits
_base_ = ['./nasbnn_supernet_digits.py']

# BN calibration batches (the search trains nothing): 2 x 32 images.
train_dataloader = dict(batch_size=32)
train_cfg = dict(
    _delete_=True,
    type='nasbnn_mm.EvolutionSearchLoop',
    problem=dict(
        type='nasbnn_mm.SupernetSearchProblem',
        # top-1 on the 50 held-out training images (5 per class)
        eval_dataloader={{_base_.search_val_dataloader}},
        # the same 2 training batches recalibrate every candidate's BN
        calibrate_batches=2,
        seed=0),
    # 30 + 4 x (10 + 10) = 110 distinct candidates
    max_generations=4,
    population_size=30,
    num_mutation=10,
    num_crossover=10,
    mutate_prob=0.2,
    # the space spans 0.0131-0.2716M OPs
    cost_range=(0.01, 0.28),
    bucket_step=0.03,
    objective='pareto',
    seed=0,
    save_interval=0)

# No LR schedule, no validation loop, no checkpoints: the loop writes
# search_state.json, pareto.json and pareto.png itself. Under a launcher
# the model only needs its weights broadcast, not DDP (which wants a GPU).
model_wrapper_cfg = dict(type='nasbnn_mm.SandwichDataParallel')
param_scheduler = None
val_dataloader = None
val_cfg = None
val_evaluator = None
default_hooks = dict(checkpoint=None)
