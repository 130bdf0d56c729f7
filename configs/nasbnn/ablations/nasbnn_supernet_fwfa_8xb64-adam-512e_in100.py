# Ablation: Full-precision teacher (Fig. 3c).
_base_ = ['./nasbnn_supernet_8xb64-adam-512e_in100.py']
model = dict(teacher='FWFA')
