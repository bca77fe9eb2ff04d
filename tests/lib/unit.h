/* A small unit-test runner: each TEST runs in a forked child with a
 * timeout, so a crash or hang fails that test only.  Assertions print both
 * sides.  The runner's last line is "N passed, N failed".
 *
 *   TEST(suite, name) { ASSERT_EQ(1 + 1, 2); return TEST_OK; }
 *   int main(int argc, char **argv) { return unit_main(argc, argv); }
 */
#ifndef QF_UNIT_H
#define QF_UNIT_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define TEST_OK 0
#define TEST_FAIL 1

typedef int (*unit_fn)(void);
void unit_register(const char *suite, const char *name, unit_fn fn);
int unit_main(int argc, char **argv);

#define TEST(suite, name)                                                   \
	static int test_##suite##_##name(void);                             \
	__attribute__((constructor)) static void reg_##suite##_##name(void) \
	{                                                                   \
		unit_register(#suite, #name, test_##suite##_##name);        \
	}                                                                   \
	static int test_##suite##_##name(void)

#define ASSERT_TRUE(c)                                                      \
	do {                                                                \
		if (!(c)) {                                                 \
			fprintf(stderr, "%s:%d: expected true: %s\n",       \
				__FILE__, __LINE__, #c);                    \
			return TEST_FAIL;                                   \
		}                                                           \
	} while (0)

#define ASSERT_EQ(a, b)                                                     \
	do {                                                                \
		long long a_ = (long long)(a), b_ = (long long)(b);         \
		if (a_ != b_) {                                             \
			fprintf(stderr, "%s:%d: %s == %s: %lld != %lld\n",  \
				__FILE__, __LINE__, #a, #b, a_, b_);        \
			return TEST_FAIL;                                   \
		}                                                           \
	} while (0)

#define ASSERT_U64_EQ(a, b)                                                 \
	do {                                                                \
		uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);            \
		if (a_ != b_) {                                             \
			fprintf(stderr, "%s:%d: %s == %s: %llx != %llx\n",  \
				__FILE__, __LINE__, #a, #b,                 \
				(unsigned long long)a_,                     \
				(unsigned long long)b_);                    \
			return TEST_FAIL;                                   \
		}                                                           \
	} while (0)

#define ASSERT_MEM_EQ(a, b, n)                                              \
	do {                                                                \
		if (memcmp((a), (b), (n)) != 0) {                           \
			fprintf(stderr, "%s:%d: memory %s != %s (%zu B)\n", \
				__FILE__, __LINE__, #a, #b, (size_t)(n));   \
			return TEST_FAIL;                                   \
		}                                                           \
	} while (0)

#define ASSERT_NULL(p) ASSERT_TRUE((p) == NULL)
#define ASSERT_NOT_NULL(p) ASSERT_TRUE((p) != NULL)

#endif /* QF_UNIT_H */
