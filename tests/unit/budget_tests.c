/*
 * Unit tests of the budget file's parser (user/budget.c): every valid form, every kind of
 * malformed line with its file:line, comments, size suffixes, duplicates.
 *
 * One line per test, "PASS <name>" or "FAIL <name>: <reason>", then "N passed, N failed";
 * the exit status is 0 only when nothing failed.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "budget.h"
#include "util.h"

#include "check.h"

static int parse(const char *text, struct budgets *b, char *err, size_t len)
{
	return budgets__parse(text, strlen(text), "budget.txt", b, err, len);
}

static bool is_budget(const struct budget *b, const char *func, enum budget_kind kind, double limit,
		      int line)
{
	CHECK_STR(b->func, func);
	CHECK_INT(b->kind, kind);
	CHECK(fabs(b->limit - limit) < 1e-9, "%s: limit %g, expected %g", func, b->limit, limit);
	CHECK_INT(b->line, line);
	return true;
}

TEST(budget_valid_forms)
{
	const char *text = "# budgets of the benchmark\n"
			   "\n"
			   "handle_request 12 allocs/op\n"
			   "handle_request 2k bytes/op   # both kinds for one function\n"
			   "  parse\t2.5\tallocs/op\r\n"
			   "ns::Foo<int>::bar(char*)#2 .5 allocs/op\n"
			   "frac 3. allocs/op\n"
			   "zero 0 allocs/op\n"
			   "   # indented comment\n"
			   "   \t\n"
			   "big 1.5MiB bytes/op\n"
			   "small 0.5 bytes/op\n"
			   "odd 1.3k bytes/op\n"
			   "g 1G bytes/op\n"
			   "last 4096 bytes/op"; /* no newline at the end */
	struct budgets b;
	char err[256];

	CHECK_INT(parse(text, &b, err, sizeof(err)), 0);
	CHECK_U64(b.n, 11);
	TRY(is_budget(&b.b[0], "handle_request", BUDGET_ALLOCS, 12, 3));
	TRY(is_budget(&b.b[1], "handle_request", BUDGET_BYTES, 2048, 4));
	TRY(is_budget(&b.b[2], "parse", BUDGET_ALLOCS, 2.5, 5));
	TRY(is_budget(&b.b[3], "ns::Foo<int>::bar(char*)#2", BUDGET_ALLOCS, 0.5, 6));
	TRY(is_budget(&b.b[4], "frac", BUDGET_ALLOCS, 3, 7));
	TRY(is_budget(&b.b[5], "zero", BUDGET_ALLOCS, 0, 8));
	TRY(is_budget(&b.b[6], "big", BUDGET_BYTES, 1.5 * 1048576, 11));
	TRY(is_budget(&b.b[7], "small", BUDGET_BYTES, 0.5, 12));
	TRY(is_budget(&b.b[8], "odd", BUDGET_BYTES, 1.3 * 1024, 13));
	TRY(is_budget(&b.b[9], "g", BUDGET_BYTES, 1073741824.0, 14));
	TRY(is_budget(&b.b[10], "last", BUDGET_BYTES, 4096, 15));
	budgets__free(&b);
	CHECK_STR(budget_unit(BUDGET_ALLOCS), "allocs/op");
	CHECK_STR(budget_unit(BUDGET_BYTES), "bytes/op");
	return true;
}

/* Every suffix --sample-bytes takes, in any case. */
TEST(budget_suffixes)
{
	static const struct {
		const char *s;
		double v;
	} cases[] = { { "10", 10 },	      { "10b", 10 },	       { "10B", 10 },
		      { "1k", 1024 },	      { "1kb", 1024 },	       { "1KiB", 1024 },
		      { "1m", 1048576 },      { "1MB", 1048576 },      { "1mib", 1048576 },
		      { "1g", 1073741824.0 }, { "1GB", 1073741824.0 }, { "1GiB", 1073741824.0 } };

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char text[64], err[256];
		struct budgets b;

		snprintf(text, sizeof(text), "f %s bytes/op\n", cases[i].s);
		CHECK(parse(text, &b, err, sizeof(err)) == 0, "%s: %s", cases[i].s, err);
		TRY(is_budget(&b.b[0], "f", BUDGET_BYTES, cases[i].v, 1));
		budgets__free(&b);
	}
	return true;
}

/* A malformed line refuses the file, in one line naming the file and the line. */
static bool refused(const char *text, const char *want)
{
	struct budgets b = { 0 };
	char err[512];

	CHECK(budgets__parse(text, strlen(text), "budget.txt", &b, err, sizeof(err)) == -EINVAL,
	      "accepted \"%s\"", text);
	CHECK(!strcmp(err, want), "\"%s\": said \"%s\", expected \"%s\"", text, err, want);
	CHECK(!strchr(err, '\n'), "two lines: %s", err);
	CHECK(!b.n && !b.b, "budgets left after an error");
	return true;
}

#define EXP "expected 'FUNCTION N allocs/op' or 'FUNCTION SIZE bytes/op'"

/* A C++ signature has spaces: FUNCTION is everything before the number and the unit. */
TEST(budget_cxx_signature)
{
	const char *text = "Server::handle(Request const&,  int)\t12 allocs/op  # the handler\n"
			   "Server::handle 1k bytes/op\n";
	struct budgets b;
	char err[256];

	CHECK(parse(text, &b, err, sizeof(err)) == 0, "%s", err);
	CHECK_INT(b.n, 2);
	TRY(is_budget(&b.b[0], "Server::handle(Request const&, int)", BUDGET_ALLOCS, 12, 1));
	TRY(is_budget(&b.b[1], "Server::handle", BUDGET_BYTES, 1024, 2));
	budgets__free(&b);
	return true;
}

TEST(budget_malformed)
{
	TRY(refused("a 1 allocs/op\n\nf 3\n", "budget.txt:3: " EXP));
	TRY(refused("f\n", "budget.txt:1: " EXP));
	TRY(refused("f 3 allocs/op extra\n", "budget.txt:1: unknown unit 'extra'; " EXP));
	TRY(refused("f 3 allocs/op extra # comment\n", "budget.txt:1: unknown unit 'extra'; " EXP));
	TRY(refused("# c\nf 3 allocs\n", "budget.txt:2: unknown unit 'allocs'; " EXP));
	TRY(refused("f 3 Allocs/op\n", "budget.txt:1: unknown unit 'Allocs/op'; " EXP));
	TRY(refused("f 3 kb/op\n", "budget.txt:1: unknown unit 'kb/op'; " EXP));
	TRY(refused("f x allocs/op\n", "budget.txt:1: 'x' is not a number of allocations (" EXP
				       "; N such as 3 or 2.5)"));
	TRY(refused("f -1 allocs/op\n", "budget.txt:1: '-1' is not a number of allocations (" EXP
					"; N such as 3 or 2.5)"));
	TRY(refused("f 1e3 allocs/op\n", "budget.txt:1: '1e3' is not a number of allocations (" EXP
					 "; N such as 3 or 2.5)"));
	TRY(refused("f 2k allocs/op\n", "budget.txt:1: '2k' is not a number of allocations (" EXP
					"; N such as 3 or 2.5)"));
	TRY(refused("f . allocs/op\n", "budget.txt:1: '.' is not a number of allocations (" EXP
				       "; N such as 3 or 2.5)"));
	TRY(refused("f 2q bytes/op\n",
		    "budget.txt:1: '2q' is not a size (" EXP "; SIZE such as 4096, 1.5k or 2MiB)"));
	TRY(refused("f k bytes/op\n",
		    "budget.txt:1: 'k' is not a size (" EXP "; SIZE such as 4096, 1.5k or 2MiB)"));
	TRY(refused("f 0x10 bytes/op\n", "budget.txt:1: '0x10' is not a size (" EXP
					 "; SIZE such as 4096, 1.5k or 2MiB)"));
	TRY(refused("f nan bytes/op\n", "budget.txt:1: 'nan' is not a size (" EXP
					"; SIZE such as 4096, 1.5k or 2MiB)"));
	/* a '#' inside a field is part of it, so this is four fields */
	TRY(refused("f 3 allocs/op#c\n", "budget.txt:1: unknown unit 'allocs/op#c'; " EXP));
	TRY(refused("", "budget.txt: no budgets in it (" EXP ")"));
	TRY(refused("# only comments\n\n", "budget.txt: no budgets in it (" EXP ")"));
	return true;
}

TEST(budget_nul_byte)
{
	static const char text[] = "f 1 allocs/op\ng 2\0 allocs/op\n";
	struct budgets b;
	char err[256];

	CHECK_INT(budgets__parse(text, sizeof(text) - 1, "b", &b, err, sizeof(err)), -EINVAL);
	CHECK_STR(err, "b:2: a NUL byte; " EXP);
	return true;
}

TEST(budget_duplicates)
{
	TRY(refused("f 1 allocs/op\ng 1 allocs/op\nf 2 allocs/op\n",
		    "budget.txt:3: a second allocs/op budget for 'f' (the first is on line 1)"));
	TRY(refused("f 1k bytes/op\nf 1 allocs/op\n\nf 1024 bytes/op\n",
		    "budget.txt:4: a second bytes/op budget for 'f' (the first is on line 1)"));
	return true;
}

TEST(budget_read)
{
	char path[4200], err[512];
	struct budgets b;
	FILE *f;

	snprintf(path, sizeof(path), "%s/budget.txt", tmp);
	CHECK_INT(budgets__read(path, &b, err, sizeof(err)), -ENOENT);
	CHECK(strstr(err, "cannot read ") && strstr(err, "No such file"), "%s", err);
	f = fopen(path, "w");
	CHECK(f, "%s", path);
	fputs("# x\nalloc_fn 7 allocs/op\n", f);
	fclose(f);
	CHECK_INT(budgets__read(path, &b, err, sizeof(err)), 0);
	CHECK_U64(b.n, 1);
	TRY(is_budget(&b.b[0], "alloc_fn", BUDGET_ALLOCS, 7, 2));
	budgets__free(&b);
	CHECK_INT(budgets__read(tmp, &b, err, sizeof(err)), -EISDIR);
	return true;
}

/* clang-format off */
static const struct unit_test tests[] = {
	T(budget_valid_forms),
	T(budget_suffixes),
	T(budget_cxx_signature),
	T(budget_malformed),
	T(budget_nul_byte),
	T(budget_duplicates),
	T(budget_read),
};
/* clang-format on */

int main(void)
{
	return run_tests(tests, ARRAY_SIZE(tests));
}
