# The numbers live in the package (one copy), see nasbnn_mm/nas/spaces/.
_base_ = ['../../../nasbnn_mm/nas/spaces/nasbnn_in1k.py']
