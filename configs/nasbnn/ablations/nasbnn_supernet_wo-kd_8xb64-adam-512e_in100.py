# Ablation: Bi-Teacher without in-place distillation; the students learn
# from the labels (Fig. 3d).
_base_ = ['./nasbnn_supernet_8xb64-adam-512e_in100.py']
model = dict(distill=False)
