/* Fork-per-test runner for tests/lib/unit.h. */
#include "unit.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_TESTS 512
#define TIMEOUT_S 60

static struct {
	const char *suite, *name;
	unit_fn fn;
} tests[MAX_TESTS];
static int n_tests;

void unit_register(const char *suite, const char *name, unit_fn fn)
{
	if (n_tests == MAX_TESTS) {
		fprintf(stderr, "too many tests\n");
		exit(2);
	}
	tests[n_tests].suite = suite;
	tests[n_tests].name = name;
	tests[n_tests].fn = fn;
	n_tests++;
}

static int run_one(int i)
{
	pid_t pid = fork();
	int status;

	if (pid < 0) {
		perror("fork");
		return TEST_FAIL;
	}
	if (pid == 0) {
		alarm(TIMEOUT_S);
		_exit(tests[i].fn());
	}
	if (waitpid(pid, &status, 0) < 0)
		return TEST_FAIL;
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "  killed by signal %d%s\n", WTERMSIG(status),
			WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
		return TEST_FAIL;
	}
	return WEXITSTATUS(status) == 0 ? TEST_OK : TEST_FAIL;
}

int unit_main(int argc, char **argv)
{
	int passed = 0, failed = 0, i;
	const char *filter = argc > 1 ? argv[1] : NULL;

	for (i = 0; i < n_tests; i++) {
		char full[256];

		snprintf(full, sizeof full, "%s.%s", tests[i].suite,
			 tests[i].name);
		if (filter != NULL && strstr(full, filter) == NULL)
			continue;
		fflush(stdout);
		if (run_one(i) == TEST_OK) {
			printf("ok   %s\n", full);
			passed++;
		} else {
			printf("FAIL %s\n", full);
			failed++;
		}
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 && passed > 0 ? 0 : 1;
}
