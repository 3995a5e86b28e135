// ops::Linear against at::linear: the same values and gradients, with fewer autograd nodes.
#include "ops/linear.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>

#include "gtest/gtest.h"

namespace zt::ops {
namespace {

// The nodes backward runs for y's graph, the leaves' accumulators aside.
int Nodes(const at::Tensor& y) {
  int n = 0;
  std::vector<torch::autograd::Node*> stack = {y.grad_fn().get()};
  while (!stack.empty()) {
    torch::autograd::Node* f = stack.back();
    stack.pop_back();
    if (f == nullptr || f->name() == "torch::autograd::AccumulateGrad") continue;
    ++n;
    for (const auto& e : f->next_edges()) stack.push_back(e.function.get());
  }
  return n;
}

void ExpectSameAsAtLinear(const at::Tensor& x0, const at::Tensor& w0, bool x_grad, bool w_grad) {
  const at::Tensor x = x0.detach().requires_grad_(x_grad), w = w0.detach().requires_grad_(w_grad);
  const at::Tensor xr = x0.detach().requires_grad_(x_grad), wr = w0.detach().requires_grad_(w_grad);
  const at::Tensor y = Linear(x, w), want = at::linear(xr, wr);
  ASSERT_EQ(y.sizes(), want.sizes());
  EXPECT_TRUE(at::allclose(y, want, 1e-6, 1e-6));
  const at::Tensor dy = at::randn_like(y);
  y.backward(dy);
  want.backward(dy);
  if (x_grad) {
    EXPECT_TRUE(at::allclose(x.grad(), xr.grad(), 1e-5, 1e-5));
  } else {
    EXPECT_FALSE(x.grad().defined()) << "no gradient for an input that does not need one";
  }
  if (w_grad) {
    EXPECT_TRUE(at::allclose(w.grad(), wr.grad(), 1e-5, 1e-5));
  } else {
    EXPECT_FALSE(w.grad().defined());
  }
}

TEST(LinearTest, MatchesAtLinear) {
  at::manual_seed(0);
  const at::Tensor w = at::randn({5, 7});
  ExpectSameAsAtLinear(at::randn({2, 3, 7}), w, true, true);
  ExpectSameAsAtLinear(at::randn({4, 7}), w, true, true);
  ExpectSameAsAtLinear(at::randn({7}), w, true, true);
  ExpectSameAsAtLinear(at::randn({3, 7, 2}).transpose(1, 2), w, true, true);  // strided input
  ExpectSameAsAtLinear(at::randn({2, 3, 7}), w, false, true);
  ExpectSameAsAtLinear(at::randn({2, 3, 7}), w, true, false);
}

TEST(LinearTest, OneNodeWhereAtLinearMakesSeveral) {
  const at::Tensor x = at::randn({2, 3, 7}).requires_grad_(), w = at::randn({5, 7}).requires_grad_();
  EXPECT_EQ(Nodes(Linear(x, w)), 1);
  EXPECT_GT(Nodes(at::linear(x, w)), 1);
  EXPECT_FALSE(Linear(x.detach(), w.detach()).requires_grad());
}

TEST(LinearTest, RefusesMismatches) {
  EXPECT_THROW(Linear(at::randn({2, 6}), at::randn({5, 7})), c10::Error);
  EXPECT_THROW(Linear(at::randn({2, 7}), at::randn({5, 7}, at::kDouble)), c10::Error);
}

}  // namespace
}  // namespace zt::ops
