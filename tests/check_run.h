/* check_run: runs one Check suite and turns the result into an exit status, for the main() of
 * every unit-test program. fork = 0 runs every test in this process (so LeakSanitizer sees them
 * all); fork = 1 isolates each test in a child (a crash fails one test, not the program). */
#ifndef SEEKD_TEST_CHECK_RUN_H
#define SEEKD_TEST_CHECK_RUN_H

#include <check.h>

static inline int check_run(Suite *s, int fork)
{
    SRunner *sr = srunner_create(s);
    if (!fork) srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int n_failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return n_failed ? 1 : 0;
}

#endif
