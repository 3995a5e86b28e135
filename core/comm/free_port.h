// A TCP port that was free on the loopback a moment ago, for tests that start a rendezvous.
#ifndef ZEROTRAIN_CORE_COMM_FREE_PORT_H_
#define ZEROTRAIN_CORE_COMM_FREE_PORT_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace zt::testing {

inline int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace zt::testing

#endif  // ZEROTRAIN_CORE_COMM_FREE_PORT_H_
