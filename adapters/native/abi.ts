/**
 * The Linux ABI this module speaks to libc with: constants and struct layouts
 * of the 64-bit little-endian targets whose values were checked (x86_64 and
 * aarch64 share them). Elsewhere detect() says so instead of guessing.
 */
export const SUPPORTED_ARCHES = ["x64", "arm64"];

export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_DGRAM = 2;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_REUSEPORT = 15;
export const SOL_UDP = 17;
export const UDP_SEGMENT = 103;
export const MSG_DONTWAIT = 0x40;
export const POLLIN = 1;
export const POLLOUT = 4;

/** Most messages one sendmmsg/recvmmsg call takes (UIO_MAXIOV). */
export const MAX_MMSG = 1024;
/** Largest UDP payload over IPv4 (65,535 - 20 - 8); GSO sends are capped by it too. */
export const MAX_UDP_PAYLOAD = 65507;

export const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM", 4: "EINTR", 5: "EIO", 9: "EBADF", 11: "EAGAIN", 13: "EACCES", 14: "EFAULT", 22: "EINVAL", 24: "EMFILE",
  38: "ENOSYS", 88: "ENOTSOCK", 90: "EMSGSIZE", 92: "ENOPROTOOPT", 95: "EOPNOTSUPP", 97: "EAFNOSUPPORT",
  98: "EADDRINUSE", 99: "EADDRNOTAVAIL", 101: "ENETUNREACH", 105: "ENOBUFS", 111: "ECONNREFUSED", 113: "EHOSTUNREACH",
};
export const EAGAIN = 11;
export const EINTR = 4;
export const EINVAL = 22;
export const EMSGSIZE = 90;
export const ENOSYS = 38;
export const EOPNOTSUPP = 95;
/** preadv2's flag: fail with EAGAIN rather than wait for the disk (Linux 4.14 for buffered reads). */
export const RWF_NOWAIT = 8;
/** Most iovecs one call takes (UIO_MAXIOV). */
export const IOV_MAX = 1024;

export const errnoName = (errno: number): string => ERRNO_NAMES[errno] ?? `errno ${errno}`;

/** sockaddr_in6 is the larger of the two; both fit a slot this long. */
export const SOCKADDR_SLOT = 28;
export const SOCKADDR_IN_LEN = 16;
export const SOCKADDR_IN6_LEN = 28;

/** struct iovec { void *iov_base; size_t iov_len; } */
export const IOVEC_SIZE = 16;

/** struct msghdr, and struct mmsghdr { struct msghdr msg_hdr; unsigned int msg_len; } padded to 8. */
export const MSG_NAME = 0;
export const MSG_NAMELEN = 8;
export const MSG_IOV = 16;
export const MSG_IOVLEN = 24;
export const MSG_CONTROL = 32;
export const MSG_CONTROLLEN = 40;
export const MSG_FLAGS = 48;
export const MSGHDR_SIZE = 56;
export const MMSG_LEN = 56;
export const MMSGHDR_SIZE = 64;
/** msg_flags bit set by recvmmsg when a datagram was longer than its buffer. */
export const MSG_TRUNC = 0x20;

/** struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; } then data, padded to 8. */
export const CMSG_HEADER = 16;
/** CMSG_SPACE(sizeof(uint16_t)) and CMSG_LEN(sizeof(uint16_t)): the UDP_SEGMENT control message. */
export const CMSG_SEGMENT_SPACE = 24;
export const CMSG_SEGMENT_LEN = 18;

/** struct pollfd { int fd; short events; short revents; } */
export const POLLFD_SIZE = 8;
