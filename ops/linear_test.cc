// ops::Linear and ops::Linears against at::linear: the same values and gradients, with fewer
// autograd nodes.
#include "ops/linear.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>

#include <vector>

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

// Weights of these output sizes over `in`: back to back in one flat buffer (as the engine keeps
// parameters) or each in its own.
std::vector<at::Tensor> Weights(const std::vector<std::int64_t>& outs, std::int64_t in, bool flat) {
  std::int64_t total = 0;
  for (std::int64_t o : outs) total += o * in;
  const at::Tensor buffer = at::randn({total});
  std::vector<at::Tensor> ws;
  std::int64_t offset = 0;
  for (std::int64_t o : outs) {
    const at::Tensor w = buffer.narrow(0, offset, o * in).view({o, in});
    ws.push_back((flat ? w.detach() : w.clone()).requires_grad_());
    offset += o * in;
  }
  return ws;
}

// Linears(x, ws) against one at::linear per weight: outputs and gradients, with the outputs'
// gradients either separate tensors (`joined` false) or column blocks of one (a cat's backward
// gives those, as the attention kernels do); `skip` leaves that output out of the loss.
void ExpectSameAsLinears(bool flat, bool joined, int skip) {
  at::manual_seed(3);
  const std::vector<std::int64_t> outs = {6, 4, 5};
  const std::vector<at::Tensor> ws = Weights(outs, 7, flat);
  const at::Tensor x0 = at::randn({2, 3, 7});
  const at::Tensor x = x0.clone().requires_grad_(), xr = x0.clone().requires_grad_();
  std::vector<at::Tensor> wr;
  for (const at::Tensor& w : ws) wr.push_back(w.detach().clone().requires_grad_());
  const std::vector<at::Tensor> ys = Linears(x, ws);
  ASSERT_EQ(ys.size(), 3u);
  std::vector<at::Tensor> want, used, used_r;
  for (int i = 0; i < 3; ++i) {
    want.push_back(at::linear(xr, wr[i]));
    ASSERT_EQ(ys[i].sizes(), want[i].sizes());
    EXPECT_TRUE(at::allclose(ys[i], want[i], 1e-5, 1e-5)) << "output " << i;
    if (i != skip) {
      used.push_back(ys[i]);
      used_r.push_back(want[i]);
    }
  }
  at::Tensor loss, loss_r;
  if (joined) {
    const at::Tensor r = at::randn_like(at::cat(used_r, -1));
    loss = (at::cat(used, -1) * r).sum();
    loss_r = (at::cat(used_r, -1) * r).sum();
  } else {
    loss = at::zeros({});
    loss_r = at::zeros({});
    for (std::size_t i = 0; i < used.size(); ++i) {
      const at::Tensor r = at::randn_like(used[i]);
      loss = loss + (used[i] * r).sum();
      loss_r = loss_r + (used_r[i] * r).sum();
    }
  }
  loss.backward();
  loss_r.backward();
  EXPECT_TRUE(at::allclose(x.grad(), xr.grad(), 1e-4, 1e-4));
  if (flat && joined && skip < 0) {  // one product gave every weight's gradient: rows of one matrix
    EXPECT_EQ(ws[1].grad().data_ptr<float>(), ws[0].grad().data_ptr<float>() + ws[0].numel());
  }
  for (int i = 0; i < 3; ++i) {
    if (i == skip) {
      EXPECT_FALSE(ws[i].grad().defined() && ws[i].grad().abs().sum().item<float>() != 0.f) << "weight " << i;
      continue;
    }
    ASSERT_TRUE(ws[i].grad().defined()) << "weight " << i;
    EXPECT_TRUE(at::allclose(ws[i].grad(), wr[i].grad(), 1e-4, 1e-4)) << "weight " << i;
  }
}

TEST(LinearsTest, MatchesOneLinearPerWeight) {
  for (bool flat : {true, false}) {
    for (bool joined : {true, false}) {
      for (int skip : {-1, 1}) {
        SCOPED_TRACE(testing::Message() << "flat " << flat << " joined " << joined << " skip " << skip);
        ExpectSameAsLinears(flat, joined, skip);
      }
    }
  }
}

TEST(LinearsTest, StackedWeightsGiveColumnBlocksOfOneProduct) {
  const std::vector<at::Tensor> ws = Weights({6, 4}, 7, /*flat=*/true);
  const at::Tensor x = at::randn({5, 7}).requires_grad_();
  const std::vector<at::Tensor> ys = Linears(x, ws);
  EXPECT_TRUE(ys[0].storage().is_alias_of(ys[1].storage())) << "one product for weights in one buffer";
  EXPECT_EQ(ys[1].data_ptr<float>(), ys[0].data_ptr<float>() + 6);
  EXPECT_EQ(Nodes(ys[0]), 1);
  EXPECT_EQ(ys[0].grad_fn(), ys[1].grad_fn());
  const std::vector<at::Tensor> apart = Linears(x, Weights({6, 4}, 7, /*flat=*/false));
  EXPECT_FALSE(apart[0].storage().is_alias_of(apart[1].storage()));
  EXPECT_EQ(apart[0].grad_fn(), apart[1].grad_fn()) << "still one node";
  const std::vector<at::Tensor> frozen = Linears(x.detach(), {ws[0].detach(), ws[1].detach()});
  EXPECT_FALSE(frozen[0].requires_grad());
  EXPECT_TRUE(at::allclose(frozen[1], at::linear(x.detach(), ws[1].detach()), 1e-5, 1e-5));
}

TEST(LinearsTest, RefusesMismatches) {
  EXPECT_THROW(Linears(at::randn({2, 7}), {}), c10::Error);
  EXPECT_THROW(Linears(at::randn({2, 7}), {at::randn({5, 7}), at::randn({5, 6})}), c10::Error);
  EXPECT_THROW(Linears(at::randn({2, 7}), {at::randn({5, 7}), at::randn({5, 7}, at::kDouble)}), c10::Error);
}

}  // namespace
}  // namespace zt::ops
