/* Tests of server/notify: NOTIFY_SOCKET addresses (path and '@' abstract), WATCHDOG_USEC and
 * WATCHDOG_PID parsing, and datagrams arriving on a real socket. Compiles the module in. */
#include <check.h>
#include <stdlib.h>
#include <unistd.h>

#include "server/notify.c"
#include "tests/check_run.h"

START_TEST(addresses)
{
    struct sockaddr_un a;
    socklen_t len;
    ck_assert_int_eq(notify_parse_addr("/run/systemd/notify", &a, &len), 0);
    ck_assert_str_eq(a.sun_path, "/run/systemd/notify");
    ck_assert_uint_eq(len,
                      offsetof(struct sockaddr_un, sun_path) + strlen("/run/systemd/notify") + 1);
    ck_assert_int_eq(notify_parse_addr("@sd-notify", &a, &len), 0);
    ck_assert_int_eq(a.sun_path[0], 0);
    ck_assert_int_eq(memcmp(a.sun_path + 1, "sd-notify", 9), 0);
    ck_assert_uint_eq(len, offsetof(struct sockaddr_un, sun_path) + 10);
    ck_assert_int_eq(notify_parse_addr("relative", &a, &len), -1);
    ck_assert_int_eq(notify_parse_addr("@", &a, &len), -1);
    ck_assert_int_eq(notify_parse_addr("", &a, &len), -1);
    char longer[200];
    memset(longer, 'x', sizeof longer - 1);
    longer[0] = '/', longer[sizeof longer - 1] = 0;
    ck_assert_int_eq(notify_parse_addr(longer, &a, &len), -1);
}
END_TEST

START_TEST(watchdog_values)
{
    ck_assert_uint_eq(notify_parse_watchdog("30000000", NULL, 42), 30000000);
    ck_assert_uint_eq(notify_parse_watchdog("30000000", "42", 42), 30000000);
    ck_assert_uint_eq(notify_parse_watchdog("30000000", "43", 42), 0); /* meant for another pid */
    ck_assert_uint_eq(notify_parse_watchdog("", NULL, 42), 0);
    ck_assert_uint_eq(notify_parse_watchdog(NULL, NULL, 42), 0);
    ck_assert_uint_eq(notify_parse_watchdog("12s", NULL, 42), 0);
    ck_assert_uint_eq(notify_parse_watchdog("-5", NULL, 42), 0);
}
END_TEST

/* Receives one datagram, or "" after a short wait. */
static void recv_one(int fd, char *buf, size_t cap)
{
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t n = recv(fd, buf, cap - 1, 0);
    buf[n > 0 ? n : 0] = 0;
}

START_TEST(datagrams)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/tmp/seekd-notify-%d", (int)getpid());
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, path);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    setenv("NOTIFY_SOCKET", path, 1);
    setenv("WATCHDOG_USEC", "2000000", 1);
    unsetenv("WATCHDOG_PID");
    struct notify n;
    struct err e = {0};
    ck_assert_int_eq(notify_open(&n, &e), 0);
    ck_assert_uint_eq(n.watchdog_usec, 2000000);
    ck_assert_int_eq(notify_send(&n, "STATUS=%d%%", 40), 0);
    ck_assert_int_eq(notify_send(&n, "READY=1"), 0);
    recv_one(fd, buf, sizeof buf);
    ck_assert_str_eq(buf, "STATUS=40%");
    recv_one(fd, buf, sizeof buf);
    ck_assert_str_eq(buf, "READY=1");
    notify_close(&n);
    close(fd);
    unlink(path);
    unsetenv("NOTIFY_SOCKET");
    ck_assert_int_eq(notify_open(&n, &e), 0); /* not under systemd: sends are no-ops */
    ck_assert_int_eq(n.fd, -1);
    ck_assert_int_eq(notify_send(&n, "READY=1"), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("notify");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, addresses);
    tcase_add_test(tc, watchdog_values);
    tcase_add_test(tc, datagrams);
    suite_add_tcase(s, tc);
    return check_run(s, 1);
}
