/* pcap-blast: send a pcap's Ethernet frames out of an interface at a fixed
 * rate (or as fast as it can), for scripts/live-rate.py (outside CI).
 *
 *   pcap-blast IFACE FILE.pcap COUNT PPS [BATCH]
 *
 * Frames go in file order, the file looped until COUNT frames are sent;
 * their timestamps are ignored. PPS 0 sends as fast as it can. One
 * AF_PACKET socket with PACKET_QDISC_BYPASS, BATCH (default 64) frames a
 * sendmmsg(2) call, paced against the monotonic clock (a batch waits until
 * its first frame is due). On exit it prints one line:
 *   sent=N seconds=S pps=R enobufs=E
 * Build: gcc -O2 -o pcap-blast pcap-blast.c  (root or CAP_NET_RAW to run)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef PACKET_QDISC_BYPASS
#define PACKET_QDISC_BYPASS 20
#endif

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s IFACE FILE.pcap COUNT PPS [BATCH]\n", argv[0]);
        return 2;
    }
    const char *ifname = argv[1];
    uint64_t count = strtoull(argv[3], NULL, 10);
    double pps = atof(argv[4]);
    int batch = argc > 5 ? atoi(argv[5]) : 64;
    if (batch < 1 || batch > 1024) batch = 64;

    int fd = open(argv[2], O_RDONLY);
    if (fd < 0) die(argv[2]);
    struct stat st;
    if (fstat(fd, &st) < 0) die("fstat");
    const uint8_t *m = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (m == MAP_FAILED) die("mmap");
    if (st.st_size < 24) { fprintf(stderr, "not a pcap\n"); return 1; }
    uint32_t magic;
    memcpy(&magic, m, 4);
    int swap;
    if (magic == 0xa1b2c3d4 || magic == 0xa1b23c4d) swap = 0;
    else if (magic == 0xd4c3b2a1 || magic == 0x4d3cb2a1) swap = 1;
    else { fprintf(stderr, "%s: not a classic pcap file\n", argv[2]); return 1; }
#define U32(p) (swap ? __builtin_bswap32(*(const uint32_t *)(p)) : *(const uint32_t *)(p))
    if (U32(m + 20) != 1) { fprintf(stderr, "%s: not Ethernet\n", argv[2]); return 1; }

    /* Index the frames. */
    size_t cap = 1 << 16, n = 0;
    struct iovec *fr = malloc(cap * sizeof *fr);
    for (size_t off = 24; off + 16 <= (size_t)st.st_size;) {
        uint32_t incl = U32(m + off + 8);
        if (off + 16 + incl > (size_t)st.st_size) break;
        if (n == cap) fr = realloc(fr, (cap *= 2) * sizeof *fr);
        fr[n].iov_base = (void *)(m + off + 16);
        fr[n].iov_len = incl;
        n++;
        off += 16 + incl;
    }
    if (!n) { fprintf(stderr, "%s: no frames\n", argv[2]); return 1; }

    int s = socket(AF_PACKET, SOCK_RAW, 0);
    if (s < 0) die("socket");
    int one = 1;
    setsockopt(s, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
    int sndbuf = 16 << 20;
    setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf);
    struct sockaddr_ll ll = {0};
    ll.sll_family = AF_PACKET;
    ll.sll_protocol = 0;
    ll.sll_ifindex = if_nametoindex(ifname);
    if (!ll.sll_ifindex) die(ifname);
    if (bind(s, (struct sockaddr *)&ll, sizeof ll) < 0) die("bind");

    struct mmsghdr *msgs = calloc(batch, sizeof *msgs);
    uint64_t sent = 0, enobufs = 0;
    size_t next = 0;
    double t0 = now();
    while (sent < count) {
        if (pps > 0) {
            double due = t0 + sent / pps;
            double t;
            while ((t = now()) < due)
                if (due - t > 200e-6) {
                    struct timespec ts = {0, (long)((due - t - 100e-6) * 1e9)};
                    nanosleep(&ts, NULL);
                }
        }
        int k = 0;
        uint64_t want = count - sent < (uint64_t)batch ? count - sent : (uint64_t)batch;
        for (; k < (int)want; k++) {
            msgs[k].msg_hdr.msg_iov = &fr[next];
            msgs[k].msg_hdr.msg_iovlen = 1;
            if (++next == n) next = 0;
        }
        int done = 0;
        while (done < k) {
            int r = sendmmsg(s, msgs + done, k - done, 0);
            if (r < 0) {
                if (errno == ENOBUFS || errno == EAGAIN) { enobufs++; continue; }
                if (errno == EINTR) continue;
                die("sendmmsg");
            }
            done += r;
        }
        sent += k;
    }
    double secs = now() - t0;
    printf("sent=%llu seconds=%.6f pps=%.0f enobufs=%llu\n", (unsigned long long)sent, secs, sent / secs,
           (unsigned long long)enobufs);
    return 0;
}
