// TensorWatch of nasbnn_mm._ext: see ops.h.
#include "ops.h"

namespace nasbnn {

TensorWatch::TensorWatch(std::vector<Tensor> tensors)
    : tensors_(std::move(tensors)) {
  for (const Tensor& t : tensors_) {
    TORCH_CHECK(t.defined(), "TensorWatch: undefined tensor");
    data_.push_back(t.const_data_ptr());
    versions_.push_back(t._version());
  }
}

bool TensorWatch::changed() const {
  for (size_t i = 0; i < tensors_.size(); ++i)
    if (tensors_[i].const_data_ptr() != data_[i] ||
        tensors_[i]._version() != versions_[i])
      return true;
  return false;
}

}  // namespace nasbnn
