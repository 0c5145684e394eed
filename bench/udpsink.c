/*
 * udpsink: a stand-in X-Ray daemon for the benchmark.  It drains datagrams
 * on 127.0.0.1:port with recvmmsg() and only counts them: datagrams, bytes,
 * and the datagrams the kernel dropped because the socket's receive buffer
 * was full (SO_RXQ_OVFL), so a loss can be told apart from a datagram that
 * was never sent.
 *
 *     udpsink port [max_seconds]
 *
 * Prints "datagrams=N bytes=B overflow=O rcvbuf=R" on stdout when it gets
 * SIGUSR1, and once more when it exits: on SIGTERM or SIGINT, or after
 * max_seconds (default 600) so that it can never outlive a benchmark by
 * much.
 */

#define _GNU_SOURCE

#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>


#define SINK_VLEN     64
#define SINK_DGRAM    65536
#define SINK_RCVBUF   (8 * 1024 * 1024)

#ifndef SO_RXQ_OVFL
#define SO_RXQ_OVFL   40
#endif


static volatile sig_atomic_t  report_wanted;
static volatile sig_atomic_t  quit_wanted;


static void
on_signal(int signo)
{
    if (signo == SIGUSR1) {
        report_wanted = 1;

    } else {
        quit_wanted = 1;
    }
}


int
main(int argc, char **argv)
{
    int                  fd, one, rcvbuf, n, i;
    long                 max_seconds;
    time_t               deadline;
    socklen_t            len;
    uint32_t             ovfl, drops;
    uint64_t             datagrams, bytes;
    struct pollfd        pfd;
    struct cmsghdr      *cm;
    struct sigaction     sa;
    struct sockaddr_in   sin;
    static char          bufs[SINK_VLEN][SINK_DGRAM];
    static char          ctl[SINK_VLEN][CMSG_SPACE(sizeof(uint32_t))];
    struct iovec         iov[SINK_VLEN];
    struct mmsghdr       msgs[SINK_VLEN];

    if (argc < 2) {
        fprintf(stderr, "usage: udpsink port [max_seconds]\n");
        return 2;
    }

    max_seconds = argc > 2 ? atol(argv[2]) : 600;
    deadline = time(NULL) + max_seconds;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd == -1) {
        perror("socket");
        return 1;
    }

    /* root may go beyond net.core.rmem_max; anyone else gets what it allows */
    rcvbuf = SINK_RCVBUF;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf))
        == -1)
    {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    }

    len = sizeof(rcvbuf);
    getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &len);

    one = 1;
    setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t) atoi(argv[1]));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    if (bind(fd, (struct sockaddr *) &sin, sizeof(sin)) == -1) {
        perror("bind");
        return 1;
    }

    setvbuf(stdout, NULL, _IOLBF, 0);

    datagrams = 0;
    bytes = 0;
    drops = 0;

    pfd.fd = fd;
    pfd.events = POLLIN;

    for ( ;; ) {

        if (report_wanted || quit_wanted || time(NULL) >= deadline) {
            report_wanted = 0;
            printf("datagrams=%llu bytes=%llu overflow=%u rcvbuf=%d\n",
                   (unsigned long long) datagrams,
                   (unsigned long long) bytes, drops, rcvbuf);

            if (quit_wanted || time(NULL) >= deadline) {
                return 0;
            }
        }

        if (poll(&pfd, 1, 100) <= 0) {
            continue;
        }

        for ( ;; ) {
            for (i = 0; i < SINK_VLEN; i++) {
                iov[i].iov_base = bufs[i];
                iov[i].iov_len = SINK_DGRAM;
                memset(&msgs[i], 0, sizeof(struct mmsghdr));
                msgs[i].msg_hdr.msg_iov = &iov[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
                msgs[i].msg_hdr.msg_control = ctl[i];
                msgs[i].msg_hdr.msg_controllen = sizeof(ctl[i]);
            }

            n = recvmmsg(fd, msgs, SINK_VLEN, MSG_DONTWAIT, NULL);
            if (n <= 0) {
                break;
            }

            for (i = 0; i < n; i++) {
                datagrams++;
                bytes += msgs[i].msg_len;

                for (cm = CMSG_FIRSTHDR(&msgs[i].msg_hdr); cm != NULL;
                     cm = CMSG_NXTHDR(&msgs[i].msg_hdr, cm))
                {
                    if (cm->cmsg_level == SOL_SOCKET
                        && cm->cmsg_type == SO_RXQ_OVFL)
                    {
                        memcpy(&ovfl, CMSG_DATA(cm), sizeof(ovfl));
                        if (ovfl > drops) {
                            drops = ovfl;
                        }
                    }
                }
            }

            if (n < SINK_VLEN) {
                break;
            }
        }
    }
}
