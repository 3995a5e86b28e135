#include <fcntl.h>
#include <liburing.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace {

TEST(LibUring, WritesAndReadsAFile) {
  io_uring ring;
  int rc = io_uring_queue_init(4, &ring, 0);
  if (rc == -ENOSYS || rc == -EPERM) GTEST_SKIP() << "io_uring unavailable here: " << std::strerror(-rc);
  ASSERT_EQ(rc, 0) << std::strerror(-rc);
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/uring.bin";
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  std::vector<char> out(8192, 'z'), in(8192, 0);
  for (int op = 0; op < 2; ++op) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    if (op == 0) {
      io_uring_prep_write(sqe, fd, out.data(), out.size(), 0);
    } else {
      io_uring_prep_read(sqe, fd, in.data(), in.size(), 0);
    }
    ASSERT_EQ(io_uring_submit(&ring), 1);
    io_uring_cqe* cqe = nullptr;
    ASSERT_EQ(io_uring_wait_cqe(&ring, &cqe), 0);
    EXPECT_EQ(cqe->res, 8192) << (cqe->res < 0 ? std::strerror(-cqe->res) : "short transfer");
    io_uring_cqe_seen(&ring, cqe);
  }
  EXPECT_EQ(in, out);
  close(fd);
  io_uring_queue_exit(&ring);
}

}  // namespace
